"""Full-reference image quality: PSNR and SSIM between images and their originals.

Both take uint8 or float arrays (N, C, H, W) or (C, H, W) of the same shape and a data range
(255 for uint8 pixels). SSIM follows Wang et al. (2004): an 11x11 Gaussian window of
sigma 1.5, K1 = 0.01, K2 = 0.03, computed per channel on the valid part of the image and averaged.
"""
import numpy as np


def _pair(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f'images of shapes {a.shape} and {b.shape} cannot be compared: resize one first')
    if a.ndim == 3:
        a, b = a[None], b[None]
    if a.ndim != 4:
        raise ValueError(f'expected images (N, C, H, W) or (C, H, W), got shape {a.shape}')
    return a, b


def psnr(images, reference, data_range=255.0):
    """Peak signal-to-noise ratio in dB per image: 10 log10(range² / mean squared error)."""
    a, b = _pair(images, reference)
    mse = ((a - b) ** 2).mean(axis=(1, 2, 3))
    with np.errstate(divide='ignore'):
        return 10 * np.log10(data_range ** 2 / mse)


def _gaussian_window(size=11, sigma=1.5):
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-x ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def _blur(a, g):
    """Separable 'valid' filtering of the last two axes with the 1-D window g."""
    k = len(g)
    rows = sum(g[i] * a[..., i:a.shape[-2] - k + 1 + i, :] for i in range(k))
    return sum(g[i] * rows[..., i:rows.shape[-1] - k + 1 + i] for i in range(k))


def ssim(images, reference, data_range=255.0, window=11, sigma=1.5):
    """Structural similarity per image, in [-1, 1] (1: identical)."""
    a, b = _pair(images, reference)
    if min(a.shape[2:]) < window:
        raise ValueError(f'SSIM needs images of at least {window}x{window} pixels, got {a.shape[2:]}')
    g = _gaussian_window(window, sigma)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = _blur(a, g), _blur(b, g)
    var_a = _blur(a * a, g) - mu_a ** 2
    var_b = _blur(b * b, g) - mu_b ** 2
    cov = _blur(a * b, g) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.mean(axis=(1, 2, 3))

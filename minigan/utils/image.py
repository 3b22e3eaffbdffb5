"""make_grid and save_image with torchvision's layout and value rules.

Images are (B, C, H, W) floats in [0, 1] (or any range with normalize=True); one-channel
images are repeated to three; images fill rows of `nrow`, each framed by `padding` pixels
of `pad_value`; a single image gets no frame. save_image writes round(255 x) clamped to
[0, 255] with Pillow (the format from the file name)."""
import math

import numpy as np

from .. import backend
from ..tensor import Tensor


def _host(images):
    if isinstance(images, (list, tuple)):
        return np.stack([_host(i) for i in images])
    a = images.array if isinstance(images, Tensor) else images
    return np.asarray(backend.to_device(a, 'cpu'))


def _normalize(a, value_range):
    lo, hi = (float(a.min()), float(a.max())) if value_range is None else value_range
    a = np.clip(a, lo, hi)
    return (a - a.dtype.type(lo)) / a.dtype.type(max(hi - lo, 1e-5))


def make_grid(tensor, nrow=8, padding=2, normalize=False, value_range=None, scale_each=False,
              pad_value=0.0):
    """One (C, H', W') Tensor tiling a batch: `nrow` images a row, each framed by `padding` pixels."""
    a = _host(tensor)
    if a.dtype.kind != 'f':
        a = a.astype(np.float32)
    if a.ndim == 2:
        a = a[None]
    if a.ndim == 3:
        a = np.concatenate([a, a, a], 0)[None] if a.shape[0] == 1 else a[None]
    if a.ndim != 4:
        raise ValueError(f'make_grid takes (B, C, H, W), (C, H, W) or (H, W) images, got shape {a.shape}')
    if a.shape[1] == 1:
        a = np.concatenate([a, a, a], 1)
    if normalize:
        a = np.stack([_normalize(i, value_range) for i in a]) if scale_each else _normalize(a, value_range)
    if a.shape[0] == 1:
        return Tensor(a[0].copy())
    n, c, h, w = a.shape
    cols = min(nrow, n)
    rows = int(math.ceil(n / cols))
    grid = np.full((c, rows * (h + padding) + padding, cols * (w + padding) + padding), pad_value, a.dtype)
    for k in range(n):
        y, x = divmod(k, cols)
        top, left = y * (h + padding) + padding, x * (w + padding) + padding
        grid[:, top:top + h, left:left + w] = a[k]
    return Tensor(grid)


def save_image(tensor, fp, nrow=8, padding=2, normalize=False, value_range=None, scale_each=False,
               pad_value=0.0, format=None):
    """Write make_grid(tensor, ...) as an image file (PNG, JPEG, ... from the name, or `format`)."""
    from PIL import Image
    grid = make_grid(tensor, nrow, padding, normalize, value_range, scale_each, pad_value).array
    pixels = np.clip(grid * grid.dtype.type(255) + grid.dtype.type(0.5), 0, 255).astype(np.uint8)
    pixels = pixels.transpose(1, 2, 0)
    Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(fp, format=format)

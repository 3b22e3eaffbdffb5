"""Changing an image's resolution: pixel_shuffle / pixel_unshuffle (channels <-> space) and
interpolate (nearest and bilinear), with PyTorch's index rules.

Both interpolation modes are linear maps that act on the rows and the columns separately, so
each is one pair of matrices: y = Mh x Mwᵀ for every (n, c) image. Nearest has a single 1 in
each row of M, bilinear two weights that sum to 1. The gradient of a linear map is its
transpose, so the backward is the same Function with Mhᵀ and Mwᵀ, and that is differentiable
again: double backprop comes for free.

A Function here is named for its op, as the layer in minigan.nn that calls it is (nn.PixelShuffle is
the layer, PixelShuffle here the op it runs, and the name `grad_fn=<PixelShuffle>` shows).
"""
import numbers

import numpy as np

from ..autograd import Function
from ..backend import to_device
from ..tensor import Tensor


class PixelShuffle(Function):
    """(N, C·r², H, W) -> (N, C, H·r, W·r): channel c·r² + i·r + j goes to pixel (h·r + i, w·r + j)."""

    def __init__(self, r):
        self.r = r

    def forward(self, x):
        n, c, h, w = x.shape
        r = self.r
        y = x.reshape(n, c // (r * r), r, r, h, w).transpose(0, 1, 4, 2, 5, 3)
        return y.reshape(n, c // (r * r), h * r, w * r)

    def backward(self, gy):                      # a permutation: gx = the inverse permutation of gy
        return PixelUnshuffle(self.r)(gy)


class PixelUnshuffle(Function):
    """(N, C, H·r, W·r) -> (N, C·r², H, W), the inverse of PixelShuffle."""

    def __init__(self, r):
        self.r = r

    def forward(self, x):
        n, c, hr, wr = x.shape
        r = self.r
        y = x.reshape(n, c, hr // r, r, wr // r, r).transpose(0, 1, 3, 5, 2, 4)
        return y.reshape(n, c * r * r, hr // r, wr // r)

    def backward(self, gy):                      # gx = the inverse permutation of gy
        return PixelShuffle(self.r)(gy)


class Resample2d(Function):
    """y = Mh x Mwᵀ over the last two axes (Mh: OH x H, Mw: OW x W, raw arrays on x's device)."""

    def __init__(self, mh, mw):
        self.mh, self.mw = mh, mw

    def forward(self, x):
        return self.mh @ x @ self.mw.T

    def backward(self, gy):                      # d(Mh x Mwᵀ) = Mh dx Mwᵀ, so gx = Mhᵀ gy Mw
        return Resample2d(self.mh.T, self.mw.T)(gy)


def _check_4d(x, op):
    if not isinstance(x, Tensor):
        raise TypeError(f'{op} takes a Tensor, got {type(x).__name__}: wrap it with mg.tensor(...)')
    if x.ndim != 4:
        raise ValueError(f'{op} needs a 4-D (N, C, H, W) tensor, got shape {x.shape}')


def _factor(r, op):
    if isinstance(r, bool) or not isinstance(r, numbers.Integral) or r < 1:
        raise ValueError(f'{op}: the factor must be a positive integer, got {r!r}')
    return int(r)


def pixel_shuffle(x, upscale_factor):
    """(N, C·r², H, W) -> (N, C, H·r, W·r), in PyTorch's channel order (sub-pixel convolution)."""
    _check_4d(x, 'pixel_shuffle')
    r = _factor(upscale_factor, 'pixel_shuffle')
    if x.shape[1] % (r * r):
        raise ValueError(f'pixel_shuffle: {x.shape[1]} channels do not divide by upscale_factor² = {r * r}')
    return PixelShuffle(r)(x)


def pixel_unshuffle(x, downscale_factor):
    """(N, C, H·r, W·r) -> (N, C·r², H, W), the inverse of pixel_shuffle."""
    _check_4d(x, 'pixel_unshuffle')
    r = _factor(downscale_factor, 'pixel_unshuffle')
    if x.shape[2] % r or x.shape[3] % r:
        raise ValueError(f'pixel_unshuffle: height and width {x.shape[2:]} must divide by {r}')
    return PixelUnshuffle(r)(x)


def _nearest_matrix(n_in, n_out, scale, dtype):
    """Row o picks input floor(o · scale), PyTorch's 'nearest' (scale computed in float32 as it does)."""
    src = np.floor(np.arange(n_out, dtype=np.float32) * np.float32(scale)).astype(np.int64)
    m = np.zeros((n_out, n_in), dtype)
    m[np.arange(n_out), np.minimum(src, n_in - 1)] = 1
    return m


def _bilinear_matrix(n_in, n_out, scale, align_corners, dtype):
    """Row o mixes the two inputs around its source coordinate, with weights 1 - t and t."""
    o = np.arange(n_out, dtype=dtype)
    if align_corners:                            # the corner pixels' centres line up
        src = o * dtype.type((n_in - 1) / (n_out - 1) if n_out > 1 else 0)
    else:                                        # pixel centres line up; clamp at the left edge
        src = np.maximum((o + dtype.type(0.5)) * dtype.type(scale) - dtype.type(0.5), 0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    t = src - i0
    m = np.zeros((n_out, n_in), dtype)
    np.add.at(m, (np.arange(n_out), i0), 1 - t)
    np.add.at(m, (np.arange(n_out), i1), t)
    return m


def _out_size(x, size, scale_factor):
    if (size is None) == (scale_factor is None):
        raise ValueError('interpolate: give exactly one of size and scale_factor')
    if size is not None:
        size = (size, size) if isinstance(size, numbers.Integral) else tuple(size)
        if len(size) != 2 or any(int(s) < 1 for s in size):
            raise ValueError(f'interpolate: size must be one or two positive integers, got {size!r}')
        h, w = (int(s) for s in size)
        return (h, w), (x.shape[2] / h, x.shape[3] / w)
    sf = (scale_factor, scale_factor) if isinstance(scale_factor, numbers.Real) else tuple(scale_factor)
    if len(sf) != 2 or any(float(s) <= 0 for s in sf):
        raise ValueError(f'interpolate: scale_factor must be one or two positive numbers, got {scale_factor!r}')
    h, w = int(np.floor(x.shape[2] * float(sf[0]))), int(np.floor(x.shape[3] * float(sf[1])))
    if h < 1 or w < 1:
        raise ValueError(f'interpolate: scale_factor {scale_factor} makes an empty image from {x.shape[2:]}')
    return (h, w), (1 / float(sf[0]), 1 / float(sf[1]))       # the given factor sets the index map


def interpolate(x, size=None, scale_factor=None, mode='nearest', align_corners=None):
    """Resize (N, C, H, W) images to `size` or by `scale_factor`, as torch.nn.functional.interpolate.

    mode 'nearest': output pixel o takes input floor(o · in/out) (PyTorch's legacy nearest).
    mode 'bilinear': align_corners=False (the default) lines up pixel centres,
    align_corners=True the centres of the corner pixels.
    """
    _check_4d(x, 'interpolate')
    if x.dtype.kind != 'f':
        raise TypeError(f'interpolate needs a floating-point tensor, got {x.dtype}: convert it with .float()')
    if mode not in ('nearest', 'bilinear'):
        raise ValueError(f'interpolate: mode {mode!r} is not supported: use "nearest" or "bilinear"')
    if mode == 'nearest' and align_corners is not None:
        raise ValueError('interpolate: align_corners can only be set with mode="bilinear"')
    (oh, ow), (sh, sw) = _out_size(x, size, scale_factor)
    h, w = x.shape[2], x.shape[3]
    if mode == 'nearest':
        mh, mw = _nearest_matrix(h, oh, sh, x.dtype), _nearest_matrix(w, ow, sw, x.dtype)
    else:
        ac = bool(align_corners)
        mh, mw = _bilinear_matrix(h, oh, sh, ac, x.dtype), _bilinear_matrix(w, ow, sw, ac, x.dtype)
    return Resample2d(to_device(mh, x.device), to_device(mw, x.device))(x)

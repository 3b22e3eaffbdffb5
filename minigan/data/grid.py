"""Image grids: tile a batch of images into one picture and save it as PNG.

Accepts uint8 images in [0, 255] or float images in [-1, 1] (the range the
DataLoader and a tanh generator produce), NCHW or NHWC, on the CPU or GPU,
as NumPy/CuPy arrays or minigan Tensors.
"""
import math

import numpy as np

from ..atomic import save_image
from .errors import DatasetError


def _host_array(images):
    data = getattr(images, 'array', images)         # a minigan Tensor holds its raw array in .array
    if hasattr(data, 'get') and type(data).__module__.startswith('cupy'):
        data = data.get()
    return np.asarray(data)


def to_uint8(images, value_range=None):
    """uint8 copy of `images`: uint8 stays as is, floats are mapped from `value_range`
    (default (-1, 1)) to [0, 255] with clipping and rounding."""
    a = _host_array(images)
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if a.dtype.kind not in 'fiu':
        raise DatasetError(f'images must be numbers, got dtype {a.dtype}')
    lo, hi = (-1.0, 1.0) if value_range is None else value_range
    if a.dtype.kind in 'iu' and value_range is None:
        lo, hi = 0.0, 255.0
    a = (a.astype(np.float32) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def make_grid(images, nrow=8, padding=2, pad_value=0, value_range=None):
    """Tile N images into one (H', W', C) uint8 array, `nrow` images per row (as torchvision).

    images: (N, C, H, W) or (N, H, W, C) with C in {1, 3, 4}, or (N, H, W) grey.
    """
    a = to_uint8(images, value_range)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4:
        raise DatasetError(f'make_grid needs a batch of images (N, C, H, W), got shape {a.shape}')
    if a.shape[1] not in (1, 3, 4) and a.shape[-1] in (1, 3, 4):
        a = a.transpose(0, 3, 1, 2)                  # NHWC -> NCHW
    n, c, h, w = a.shape
    if c not in (1, 3, 4):
        raise DatasetError(f'make_grid: images need 1, 3 or 4 channels, got shape {a.shape}')
    if n == 0:
        raise DatasetError('make_grid: no images to tile')
    ncol = max(1, min(int(nrow), n))
    nrows = math.ceil(n / ncol)
    grid = np.full((c, nrows * (h + padding) + padding, ncol * (w + padding) + padding),
                   pad_value, dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, ncol)
        y, x = padding + r * (h + padding), padding + q * (w + padding)
        grid[:, y:y + h, x:x + w] = a[i]
    return grid.transpose(1, 2, 0)


def save_grid(images, path, nrow=8, padding=2, pad_value=0, value_range=None, scale=1):
    """Write a grid of `images` to the PNG file `path` (atomically) and return the path.

    `scale` enlarges the picture by an integer factor (nearest neighbour) for viewing.
    """
    from PIL import Image
    grid = make_grid(images, nrow, padding, pad_value, value_range)
    if scale != 1:
        grid = grid.repeat(int(scale), axis=0).repeat(int(scale), axis=1)
    mode = {1: 'L', 3: 'RGB', 4: 'RGBA'}[grid.shape[2]]
    img = Image.fromarray(grid[:, :, 0] if mode == 'L' else grid, mode)
    return save_image(img, path, format='PNG')

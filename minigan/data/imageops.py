"""Image conversions shared by the loaders: decode, colour mode, resize + centre crop, pad.

All results are uint8 arrays (C, H, W) or batches (N, C, H, W).
"""
import io

import numpy as np

from .errors import DatasetError

WHITE = (255, 255, 255)


def to_mode(img, channels):
    """A Pillow image as "RGB" (channels=3) or "L" (channels=1).

    Palette images are expanded, transparent ones (RGBA, LA, palette with a
    transparent colour) are laid on white, 16-bit and float grey images are
    scaled to 8 bits, CMYK/YCbCr/LAB are converted.
    """
    from PIL import Image
    mode = img.mode
    if mode == 'P':
        img = img.convert('RGBA' if 'transparency' in img.info else 'RGB')
    elif mode == 'PA':
        img = img.convert('RGBA')
    elif mode in ('I', 'F') or mode.startswith('I;16'):
        a = np.asarray(img).astype(np.float64)
        top = 65535.0 if mode.startswith('I;16') or a.max(initial=0) > 255 else 255.0
        if mode == 'F' and a.max(initial=0) <= 1.0:
            top = 1.0
        img = Image.fromarray(np.clip(a * (255.0 / top) + 0.5, 0, 255).astype(np.uint8), 'L')
    elif mode == '1':
        img = img.convert('L')
    if img.mode in ('RGBA', 'LA'):
        rgba = img.convert('RGBA')
        base = Image.new('RGBA', rgba.size, WHITE + (255,))
        img = Image.alpha_composite(base, rgba).convert('RGB')
    want = 'RGB' if channels == 3 else 'L'
    return img if img.mode == want else img.convert(want)


def fit(img, size):
    """Resize on the shorter side to `size` and crop the centre to size x size (a Pillow image)."""
    from PIL import Image
    w, h = img.size
    if (w, h) == (size, size):
        return img
    side = min(w, h)
    left, top = (w - side) / 2.0, (h - side) / 2.0
    return img.resize((size, size), Image.Resampling.BICUBIC,
                      box=(left, top, left + side, top + side), reducing_gap=3.0)


def decode(source, size, channels):
    """Decode one image file (a path or bytes) to uint8 (C, size, size). Raises on failure."""
    from PIL import Image
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)
    with Image.open(source) as img:
        if img.format == 'JPEG' and size is not None and min(img.size) >= 2 * size:
            img.draft('RGB' if channels == 3 else 'L', (size, size))   # decode at a reduced scale
        img.load()
        img = to_mode(img, channels)
        if size is not None:
            img = fit(img, size)
        a = np.asarray(img, dtype=np.uint8)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def to_channels(images, channels):
    """uint8 (N, C, H, W) with C converted to `channels` (grey repeated to RGB, RGB to luma)."""
    c = images.shape[1]
    if channels is None or channels == c:
        return images
    if channels == 3 and c == 1:
        return np.repeat(images, 3, axis=1)
    if channels == 1 and c == 3:
        # ITU-R 601-2 luma, as Pillow's convert("L")
        w = np.array([299, 587, 114], dtype=np.uint32)
        grey = (np.tensordot(w, images.astype(np.uint32), axes=([0], [1])) + 500) // 1000
        return grey.astype(np.uint8)[:, None]
    raise DatasetError(f'cannot convert images with {c} channels to {channels}: use channels=1 or 3')


def pad_to(images, size):
    """Centre zero-padding of uint8 (N, C, H, W) up to size x size (MNIST 28 -> 32)."""
    n, c, h, w = images.shape
    if h > size or w > size:
        raise DatasetError(f'cannot pad {h}x{w} images to {size}x{size}: use fit="resize"')
    out = np.zeros((n, c, size, size), dtype=np.uint8)
    top, left = (size - h) // 2, (size - w) // 2
    out[:, :, top:top + h, left:left + w] = images
    return out


def resize_all(images, size):
    """Resize (shorter side) and centre-crop every image of uint8 (N, C, H, W) to size x size."""
    from PIL import Image
    n, c, h, w = images.shape
    if (h, w) == (size, size):
        return images
    out = np.empty((n, c, size, size), dtype=np.uint8)
    for i in range(n):
        for ch in range(c):
            out[i, ch] = np.asarray(fit(Image.fromarray(images[i, ch], 'L'), size))
    return out

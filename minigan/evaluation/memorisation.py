"""Did the generator memorise its training images? Each sample beside its nearest training images.

    idx = nearest_neighbours(samples, train_images, k=4)      # (Q, k) indices, Euclidean in pixel space
    memorisation_figure(samples, train_images, idx).save('memorisation.png')
"""
import numpy as np


def nearest_neighbours(queries, pool, k=3, chunk=2048):
    """Indices (Q, k) of the k nearest rows of `pool` to each query, by Euclidean distance over
    the flattened images (float arrays in the same range: [-1, 1] or uint8 converted)."""
    q = _flat_unit(queries)
    qq = (q * q).sum(1)
    best_d = np.full((len(q), 0), np.inf)
    best_i = np.zeros((len(q), 0), np.int64)
    for start in range(0, len(pool), chunk):
        p = _flat_unit(pool[start:start + chunk])
        d = qq[:, None] + (p * p).sum(1)[None] - 2 * q @ p.T
        d_all = np.concatenate([best_d, d], axis=1)
        i_all = np.concatenate([best_i, np.arange(start, start + len(p))[None].repeat(len(q), 0)], axis=1)
        order = np.argsort(d_all, axis=1, kind='stable')[:, :k]
        best_d, best_i = np.take_along_axis(d_all, order, 1), np.take_along_axis(i_all, order, 1)
    return best_i


def _flat_unit(images):
    a = np.asarray(images)
    a = a.astype(np.float64) / 127.5 - 1 if a.dtype == np.uint8 else a.astype(np.float64)
    return a.reshape(len(a), -1)


def _uint8_hwc(images):
    a = np.asarray(images)
    if a.dtype != np.uint8:
        a = np.clip(np.rint((a.astype(np.float64) + 1) * 127.5), 0, 255).astype(np.uint8)
    a = a.transpose(0, 2, 3, 1)
    return np.repeat(a, 3, axis=3) if a.shape[3] == 1 else a


def memorisation_figure(samples, train_images, neighbours, scale=2, blocks=2):
    """A PIL image: each row is one sample (left, framed in red) then its nearest training
    images, left to right; rows are laid out in `blocks` side-by-side columns."""
    from PIL import Image, ImageDraw, ImageFont
    s, n_idx = _uint8_hwc(samples), np.asarray(neighbours)
    q, k = n_idx.shape
    h, w = s.shape[1] * scale, s.shape[2] * scale
    gap, sep, head = 2, 10, 16
    row_w = (k + 1) * (w + gap) + sep
    rows = -(-q // blocks)
    img = Image.new('RGB', (blocks * row_w + sep, head + rows * (h + gap) + gap), 'white')
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    for b in range(min(blocks, q)):
        draw.text((sep + b * row_w, 2), f'sample | {k} nearest training images', fill='black', font=font)
    for i in range(q):
        x0 = sep + (i // rows) * row_w
        y0 = head + (i % rows) * (h + gap)
        tiles = [s[i]] + [t for t in _uint8_hwc(train_images[n_idx[i]])]
        for j, t in enumerate(tiles):
            img.paste(Image.fromarray(t).resize((w, h), Image.NEAREST), (x0 + j * (w + gap) + (sep // 2 if j else 0), y0))
        draw.rectangle([x0 - 1, y0 - 1, x0 + w, y0 + h], outline=(220, 30, 30))
    return img

""""synth": an SVHN-like set of house-number crops, generated on the spot (no download).

Each image is a 32x32 RGB crop centred on one digit (its label), drawn with a
TrueType font at a random size, weight (stroke width), width, rotation, shear
and position, with parts of neighbouring digits at the left and right edges as
in SVHN's crops. Colours: a background with a lighting gradient and a
low-frequency texture, sometimes a number plate on a wall, a foreground of
random colour and contrast (dark on light or light on dark), sometimes a drop
shadow; then blur and noise.

Generation works in chunks of CHUNK images; chunk k of a split is drawn from
its own seed (seed, split, k), so the images depend only on the seed, the
split, the image size and the fonts, never on the number of worker processes.
Classes are balanced: every full chunk holds each digit CHUNK/10 times.
"""
import functools

import numpy as np

from . import fonts as _fonts
from .errors import DatasetError

SYNTH_VERSION = 2                 # bump when the drawing changes: it is part of the cache key
SIZES = {'train': 50_000, 'test': 10_000}
CHUNK = 500
_SPLIT_CODE = {'train': 1, 'test': 2}
_REF = 28                         # font size (px) of the glyph masks: near the drawn size, so the
_CANVAS_H = 44                    # affine warp never shrinks much (bilinear would alias); the
_BASELINE = 34                    # glyph masks are 44 px high with the baseline at row 34
CLASSES = [str(d) for d in range(10)]


# ---------------------------------------------------------------- glyphs
@functools.lru_cache(maxsize=None)
def _glyphs(font_path):
    """For one font: per stroke width (0, 1, 2) a list of 10 digit masks (uint8 (44, w)),
    plus the digits' top and bottom rows (the box a digit occupies)."""
    from PIL import Image, ImageDraw
    font = _fonts.load_font(font_path, _REF)
    top, bottom = font.getbbox('0123456789', anchor='ls')[1::2]
    top, bottom = _BASELINE + top, _BASELINE + bottom
    out = []
    for stroke in (0, 1, 2):
        masks = []
        for d in CLASSES:
            img = Image.new('L', (2 * _REF + 16, _CANVAS_H), 0)
            ImageDraw.Draw(img).text((8, _BASELINE), d, fill=255, font=font, anchor='ls',
                                     stroke_width=stroke, stroke_fill=255)
            a = np.asarray(img, dtype=np.uint8)
            cols = np.flatnonzero(a.max(axis=0) > 4)
            if cols.size == 0:
                raise DatasetError(f'font {font_path} draws no glyph for the digit {d}: '
                                   'pass other fonts (fonts="bundled" uses Pillow\'s own)')
            masks.append(np.ascontiguousarray(a[:, cols[0]:cols[-1] + 1]))
        out.append(masks)
    return out, float(top), float(bottom)


# ---------------------------------------------------------------- colours
def _hsv_to_rgb(h, s, v):
    """Vectorised HSV -> RGB, all in [0, 1]; returns (..., 3)."""
    i = np.floor(h * 6.0) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    choices = [np.stack(c, -1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))]
    out = np.zeros(np.shape(h) + (3,), dtype=np.float32)
    for k, c in enumerate(choices):
        out = np.where((i == k)[..., None], c, out)
    return out


def _upsample_matrix(n_in, n_out):
    """(n_out, n_in) linear interpolation weights (smooth low-frequency textures)."""
    pos = np.linspace(0, n_in - 1, n_out)
    lo = np.clip(np.floor(pos).astype(int), 0, n_in - 2)
    w = pos - lo
    m = np.zeros((n_out, n_in), dtype=np.float32)
    m[np.arange(n_out), lo] = 1 - w
    m[np.arange(n_out), lo + 1] = w
    return m


# ---------------------------------------------------------------- one chunk
def _masks(labels, rng, font_list, size):
    """The foreground coverage (n, size, size) in [0, 1] and each digit's box (y centre, height).

    Per image: the centre digit and maybe its neighbours are pasted side by side from the glyph
    masks, then one affine warp (scale, stretch, shear, rotation, shift) maps them into the crop.
    """
    from PIL import Image
    n = len(labels)
    slanted = ('oblique', 'italic')
    font_w = np.array([3.0 if f == _fonts.BUNDLED else 0.3 if any(w in f.lower() for w in slanted)
                       else 1.0 for f in font_list])
    font_idx = rng.choice(len(font_list), size=n, p=font_w / font_w.sum())
    stroke = rng.choice(3, size=n, p=[0.5, 0.35, 0.15])
    bold = np.array(['bold' in f.lower() for f in font_list])
    stroke = np.where(bold[font_idx], np.minimum(stroke, 1), stroke)     # bold + thick = blobs
    has_left, has_right = rng.random(n) < 0.75, rng.random(n) < 0.75
    left_digit, right_digit = rng.integers(0, 10, n), rng.integers(0, 10, n)
    gap_l, gap_r = rng.uniform(-0.04, 0.35, n), rng.uniform(-0.04, 0.35, n)
    height = rng.uniform(0.55, 0.9, n) * size         # digit height in the output
    stretch = np.exp(rng.normal(0, 0.16, n))          # condensed ... wide
    angle = np.clip(rng.normal(0, 0.07, n), -0.25, 0.25)
    shear = np.clip(rng.normal(0, 0.1, n), -0.3, 0.3)
    jitter = np.clip(rng.normal(0, 0.05, (n, 2)), -0.12, 0.12) * size
    # inverse of  rotate(angle) . shear . scale(stretch * height, height)  per image, in units of
    # the digit height: diag(1/stretch, 1) . [[1, -shear], [0, 1]] . rotate(-angle) / height
    c, sn = np.cos(angle), np.sin(angle)
    inv = np.stack([(c + shear * sn) / stretch, (sn - shear * c) / stretch, -sn, c]) / height
    out_c = size / 2.0 + jitter
    masks = np.empty((n, size, size), dtype=np.float32)
    for i in range(n):
        glyphs, top, bottom = _glyphs(font_list[font_idx[i]])
        g = glyphs[stroke[i]]
        dh = bottom - top
        parts = [(g[labels[i]], gap_r[i] if has_right[i] else 0.0)]
        if has_left[i]:
            parts.insert(0, (g[left_digit[i]], gap_l[i]))
        if has_right[i]:
            parts.append((g[right_digit[i]], 0.0))
        centre = 1 if has_left[i] else 0
        width = sum(p.shape[1] + max(int(round(gap * dh)), 0) for p, gap in parts) + 4
        canvas = np.zeros((_CANVAS_H, width), dtype=np.uint8)
        x = 2
        for k, (p, gap) in enumerate(parts):
            x = max(x, 0)
            if k == centre:
                centre_x = x + p.shape[1] / 2.0
            np.maximum(canvas[:, x:x + p.shape[1]], p, out=canvas[:, x:x + p.shape[1]])
            x += p.shape[1] + int(round(gap * dh))
        centre_y = (top + bottom) / 2.0
        a, b, d, e = inv[:, i] * dh          # output pixel -> glyph canvas pixel
        ox, oy = out_c[i]
        img = Image.fromarray(canvas, 'L').transform(
            (size, size), Image.Transform.AFFINE,
            (a, b, centre_x - a * ox - b * oy, d, e, centre_y - d * ox - e * oy),
            resample=Image.Resampling.BILINEAR)
        masks[i] = np.frombuffer(img.tobytes(), dtype=np.uint8).reshape(size, size)
    masks *= 1.0 / 255.0
    return masks, size / 2.0 + jitter[:, 1], height


def _hues(rng, n):
    """Hues as on house fronts: mostly warm (brick, wood, sand), some blue, the rest anything."""
    kind = rng.choice(3, n, p=[0.45, 0.25, 0.30])
    return np.choose(kind, [rng.uniform(0.02, 0.16, n), rng.uniform(0.52, 0.68, n),
                            rng.uniform(0, 1, n)]).astype(np.float32)


def _colourise(masks, centre_y, text_h, rng):
    """Paint coverage masks into RGB house-number crops; returns uint8 (n, 3, size, size)."""
    from scipy.ndimage import gaussian_filter
    n, size, _ = masks.shape
    u = lambda lo, hi, shape=n: rng.uniform(lo, hi, shape).astype(np.float32)   # noqa: E731
    # background: muted colours mostly, now and then a saturated number plate
    hue = _hues(rng, n)
    sat = (rng.beta(1.2, 4.0, n) * 0.65).astype(np.float32)
    val = u(0.15, 0.95)
    plate = rng.random(n) < 0.12
    k = int(plate.sum())
    hue[plate] = rng.choice([0.0, 0.36, 0.6, 0.63, 0.66], k)
    sat[plate], val[plate] = u(0.45, 0.85, k), u(0.2, 0.55, k)
    bg = _hsv_to_rgb(hue, sat, val)
    # foreground: dark on light or light on dark, contrast between 0.15 and 0.7
    contrast = u(0.15, 0.7)
    dark_text = ~plate & (val > rng.uniform(0.35, 0.75, n))
    fval = np.clip(np.where(dark_text, val - contrast, val + contrast), 0.03, 1.0)
    fval[plate] = u(0.8, 1.0, k)
    fhue = np.where(rng.random(n) < 0.5, hue, _hues(rng, n))
    fsat = (rng.beta(1.0, 5.0, n) * 0.6).astype(np.float32)
    fsat[plate] = u(0, 0.1, k)
    fg = _hsv_to_rgb(fhue, fsat, fval)

    bg, fg = bg.astype(np.float32), fg.astype(np.float32)
    yy = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    # lighting gradient and a low-frequency (mostly grey) texture; arrays are NCHW
    gy, gx = u(-0.4, 0.4), u(-0.4, 0.4)
    light = 1 + gy[:, None, None, None] * yy[:, None] + gx[:, None, None, None] * yy      # (n, 1, S, S)
    up = _upsample_matrix(5, size)
    noise = rng.standard_normal((n, 3, 5, 5), dtype=np.float32) * 0.25
    noise += rng.standard_normal((n, 1, 5, 5), dtype=np.float32)
    noise *= u(0.0, 0.07)[:, None, None, None]
    canvas = up @ noise @ up.T                                                           # (n, 3, S, S)
    canvas += bg[:, :, None, None] * light
    # a number plate on a wall: rows above and below the digits get the wall's colour
    wall = rng.random(n) < 0.3
    margin = u(0.04, 0.2) * size
    rows = np.arange(size, dtype=np.float32)[None, :] + 0.5
    outside = ((rows < (centre_y - text_h / 2 - margin)[:, None])
               | (rows > (centre_y + text_h / 2 + margin)[:, None])) & wall[:, None]
    wall_col = _hsv_to_rgb(_hues(rng, n), (rng.beta(1.2, 4.0, n) * 0.5).astype(np.float32), u(0.15, 0.9))
    for i in np.flatnonzero(wall):
        o = outside[i]
        canvas[i][:, o] = wall_col[i][:, None, None] * light[i][:, o]
    # drop shadow below-right of the strokes
    m = masks[:, None]                                                                   # (n, 1, S, S)
    shadow = np.flatnonzero(rng.random(n) < 0.2)
    if shadow.size:
        canvas[shadow, :, 1:, 1:] *= 1 - 0.6 * m[shadow, :, :-1, :-1]
    # the text, lit like the rest
    text = fg[:, :, None, None] * (0.5 + 0.5 * light)
    text -= canvas
    text *= m
    img = canvas
    img += text
    # blur, in groups of equal strength
    sigma = rng.choice([0.0, 0.45, 0.7, 0.95, 1.25], n, p=[0.12, 0.23, 0.3, 0.23, 0.12])
    for s in np.unique(sigma):
        if s > 0:
            sel = sigma == s
            img[sel] = gaussian_filter(img[sel], sigma=(0, 0, s, s), mode='nearest', truncate=3.0)
    # sensor noise
    img += rng.standard_normal(img.shape, dtype=np.float32) * u(0.0, 0.035)[:, None, None, None]
    img *= 255.0
    img += 0.5
    return np.clip(img, 0, 255, out=img).astype(np.uint8)


def render_chunk(labels, entropy, font_list, size=32):
    """Images (n, 3, size, size) uint8 for `labels`, drawn from the seed `entropy` (a tuple)."""
    rng = np.random.default_rng(np.random.SeedSequence(list(entropy)))
    labels = np.asarray(labels, dtype=np.int64)
    masks, centre_y, text_h = _masks(labels, rng, font_list, size)
    return _colourise(masks, centre_y, text_h, rng)


def _render_job(args):
    return render_chunk(*args)


def synth_labels(n, seed, split):
    """Balanced labels: each chunk of CHUNK images holds every digit CHUNK/10 times, shuffled
    by the chunk's seed (so a smaller set is the start of a larger one, chunk by chunk)."""
    out = []
    for k, start in enumerate(range(0, n, CHUNK)):
        m = min(CHUNK, n - start)
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), _SPLIT_CODE[split], 0, k]))
        out.append(rng.permutation(np.arange(m) % 10))
    return np.concatenate(out).astype(np.int64)


def generate(n=None, split='train', seed=0, image_size=32, fonts='auto', workers=None):
    """Generate the synthetic set: (images uint8 (n, 3, S, S), labels int64 (n,)).

    n defaults to 50,000 for "train" and 10,000 for "test"; `workers` processes
    (default: all cores, none for small sets) share the chunks.
    """
    if split not in _SPLIT_CODE:
        raise DatasetError(f'synth has the splits "train" and "test", not {split!r}')
    n = SIZES[split] if n is None else int(n)
    if n <= 0:
        raise DatasetError(f'synth: the number of images must be positive, got {n}')
    image_size = int(image_size)
    if image_size < 8:
        raise DatasetError(f'synth: image_size must be at least 8, got {image_size}')
    font_list = _fonts.resolve_fonts(fonts)
    labels = synth_labels(n, seed, split)
    jobs = [(labels[i:i + CHUNK], (int(seed), _SPLIT_CODE[split], 1 + i // CHUNK), font_list, image_size)
            for i in range(0, n, CHUNK)]
    from .pool import map_jobs
    parts = map_jobs(_render_job, jobs, workers=workers)
    return np.concatenate(parts), labels

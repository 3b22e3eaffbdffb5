"""What a training run writes besides checkpoints: metrics.jsonl, the loss plot,
the sample-quality plot, the progress animation, the diversity (mode-collapse) measure and the
classifier's confusion matrix. Pillow only: no plotting library needed."""
import json
import math
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .atomic import atomic_write, save_image
from .errors import write_error

TIMING_KEYS = ('step_time', 'images_per_s', 'elapsed', 'eval_time')   # fields that differ between identical runs
SAMPLE_METRICS = ('fd', 'classifier_score', 'kid', 'modes', 'label_kl')  # an 'eval' line's metrics (--eval-every)


# ---- metrics.jsonl ----------------------------------------------------------------
class MetricsLog:
    """Appends one JSON object per line and flushes it, so a crash loses at most a line."""

    def __init__(self, path, resume_step=None):
        self.path = path
        if resume_step is not None and os.path.exists(path):
            self.truncate_after(resume_step)
        try:
            self._f = open(path, 'a', encoding='utf-8')
        except OSError as e:
            raise write_error(path, e) from e

    def truncate_after(self, step):
        """Drop the lines a crashed run wrote after the checkpoint we resume from."""
        kept = [r for r in read_jsonl(self.path) if r.get('step', 0) <= step]
        with atomic_write(self.path, 'w', encoding='utf-8') as f:
            for r in kept:
                f.write(json.dumps(r) + '\n')

    def write(self, record):
        try:
            self._f.write(json.dumps(record, allow_nan=True) + '\n')
            self._f.flush()
        except OSError as e:                   # a full disk: at most this line is cut short
            raise write_error(self.path, e) from e

    def close(self):
        self._f.close()


def read_jsonl(path):
    """The records of a metrics.jsonl; a line cut short (by a crash, or a run writing it now) is skipped."""
    records = []
    with open(path, encoding='utf-8', errors='replace') as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:       # a line cut short
                    continue
                if isinstance(record, dict):
                    records.append(record)
    return records


def without_timing(record):
    """The record without the fields that depend on wall-clock time."""
    return {k: v for k, v in record.items() if k not in TIMING_KEYS}


# ---- diversity: the mode-collapse watch ------------------------------------------------
def mean_pairwise_distance(x):
    """Mean Euclidean distance between all pairs of samples in x (N, ...)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if n < 2:
        return 0.0
    x = x.reshape(n, -1)
    sq = (x * x).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)
    iu = np.triu_indices(n, 1)
    return float(np.sqrt(d2[iu]).mean())


# ---- drawing helpers ---------------------------------------------------------------
def _font(size):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:                          # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


def _text_size(draw, text, font):
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def _nice_ticks(lo, hi, n=6):
    span = hi - lo
    if not math.isfinite(span) or span <= 0:
        return [lo]
    raw = span / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        ticks.append(0.0 if abs(t) < step * 1e-9 else t)
        t += step
    return ticks


def _fmt(v, step):
    if step >= 1 and float(v).is_integer():
        return f'{int(v)}'
    digits = max(0, -int(math.floor(math.log10(step))) + 1) if step > 0 else 2
    return f'{v:.{min(digits, 6)}f}'


PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]


def _light(c, f=0.6):
    return tuple(int(v + (255 - v) * f) for v in c)


def plot_losses(step_records, epoch_records, keys, path, title='losses', ylabel='loss'):
    """A PNG with one thin line per key over the steps and its per-epoch means over it."""
    w, h = 1000, 580
    left, right, top, bottom = 90, 30, 84, 70
    img = Image.new('RGB', (w, h), 'white')
    draw = ImageDraw.Draw(img)
    font, small, big = _font(15), _font(13), _font(18)
    series = {}
    for k in keys:
        pts = [(r['step'], r[k]) for r in step_records
               if isinstance(r.get(k), (int, float)) and math.isfinite(r[k])]
        if pts:
            series[k] = pts
    tw, _ = _text_size(draw, title, big)
    draw.text(((w - tw) // 2, 12), title, fill='black', font=big)
    if not series:
        draw.text((left, h // 2), 'no steps logged yet', fill='black', font=font)
        return save_image(img, path)
    xs = [s for pts in series.values() for s, _ in pts]
    ys = np.array([v for pts in series.values() for _, v in pts])
    x0, x1 = min(0, min(xs)), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    lo, hi = (np.percentile(ys, [0.5, 99.5]) if len(ys) >= 100 else (ys.min(), ys.max()))
    lo, hi = float(lo), float(hi)
    pad = (hi - lo) * 0.06 or 1.0
    lo, hi = lo - pad, hi + pad
    pw, ph = w - left - right, h - top - bottom

    def px(s):
        return left + (s - x0) / (x1 - x0) * pw

    def py(v):
        return top + (hi - min(max(v, lo), hi)) / (hi - lo) * ph

    # grid, ticks and their labels
    yt = _nice_ticks(lo, hi)
    ystep = yt[1] - yt[0] if len(yt) > 1 else 1.0
    for t in yt:
        y = py(t)
        draw.line([(left, y), (left + pw, y)], fill=(228, 228, 228))
        label = _fmt(t, ystep)
        lw, lh = _text_size(draw, label, small)
        draw.text((left - 8 - lw, y - lh / 2 - 2), label, fill='black', font=small)
    xt = [t for t in _nice_ticks(x0, x1) if x0 <= t <= x1]
    xstep = xt[1] - xt[0] if len(xt) > 1 else 1.0
    for t in xt:
        x = px(t)
        draw.line([(x, top), (x, top + ph)], fill=(228, 228, 228))
        label = _fmt(t, max(xstep, 1))
        lw, _ = _text_size(draw, label, small)
        draw.text((x - lw / 2, top + ph + 6), label, fill='black', font=small)
    draw.rectangle([left, top, left + pw, top + ph], outline='black')
    # axis titles
    lw, lh = _text_size(draw, 'step', font)
    draw.text((left + (pw - lw) / 2, h - bottom + 34), 'step', fill='black', font=font)
    lw, lh = _text_size(draw, ylabel, font)
    label_img = Image.new('RGB', (lw + 4, lh + 8), 'white')
    ImageDraw.Draw(label_img).text((2, 0), ylabel, fill='black', font=font)
    label_img = label_img.rotate(90, expand=True)
    img.paste(label_img, (12, int(top + (ph - label_img.height) / 2)))
    # the curves: per step (light, thin), per-epoch means (dark, thick, with dots)
    legend = []
    for i, (k, pts) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        line = [(px(s), py(v)) for s, v in pts]
        if len(line) > 1:
            draw.line(line, fill=_light(color), width=1)
        else:
            draw.ellipse([line[0][0] - 2, line[0][1] - 2, line[0][0] + 2, line[0][1] + 2], fill=_light(color))
        legend.append((f'{k} (per step)', _light(color), 1))
        means = [(r['step'], r[k]) for r in epoch_records
                 if isinstance(r.get(k), (int, float)) and math.isfinite(r[k])]
        if means:
            mline = [(px(s), py(v)) for s, v in means]
            if len(mline) > 1:
                draw.line(mline, fill=color, width=3)
            for x, y in mline:
                draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=color)
            legend.append((f'{k} (epoch mean)', color, 3))
    # legend: one row between the title and the plot, centred
    widths = [36 + _text_size(draw, t, small)[0] + 22 for t, _, _ in legend]
    x = left + max(0, (pw - sum(widths)) / 2)
    y = top - 22
    for (text, color, width), wd in zip(legend, widths):
        draw.line([(x, y), (x + 28, y)], fill=color, width=width)
        draw.text((x + 34, y - 9), text, fill='black', font=small)
        x += wd
    return save_image(img, path)


def make_gif(frame_paths, path, ms_per_frame=300, max_frames=120):
    """An animated GIF of the sample grids, oldest first; the last frame lingers."""
    frame_paths = list(frame_paths)
    if not frame_paths:
        return None
    if len(frame_paths) > max_frames:            # keep the first, the last, and evenly spaced ones
        idx = np.unique(np.linspace(0, len(frame_paths) - 1, max_frames).round().astype(int))
        frame_paths = [frame_paths[i] for i in idx]
    frames = []
    for p in frame_paths:
        with Image.open(p) as im:              # fast octree palettes: 25x quicker than median cut
            frames.append(im.convert('RGB').quantize(256, method=Image.Quantize.FASTOCTREE))
    durations = [ms_per_frame] * (len(frames) - 1) + [2000]
    return save_image(frames[0], path, format='GIF', save_all=True, append_images=frames[1:],
                      duration=durations, loop=0)


# ---- confusion matrices ----------------------------------------------------------------
def confusion_matrix(labels, predictions, n_classes):
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)), 1)
    return m


def confusion_text(matrix, row_names, col_names, title):
    """A fixed-width table; rows are the true classes."""
    names = [str(n)[:12] for n in row_names]
    cols = [str(n)[:8] for n in col_names]
    width = max(6, max(len(c) for c in cols), len(str(int(matrix.max()))) if matrix.size else 1)
    nw = max(len('true \\ pred'), max(len(n) for n in names))
    lines = [title, '', ' ' * 0 + 'true \\ pred'.ljust(nw) + ' ' + ' '.join(c.rjust(width) for c in cols)]
    for name, row in zip(names, matrix):
        lines.append(name.ljust(nw) + ' ' + ' '.join(str(int(v)).rjust(width) for v in row))
    return '\n'.join(lines) + '\n'


def draw_matrix(matrix, row_names, col_names, path, title, xlabel='predicted', ylabel='true'):
    """A heat map of a count matrix (shaded by row fraction) with the counts written in the cells."""
    matrix = np.asarray(matrix)
    r, c = matrix.shape
    cell = 44 if max(r, c) <= 12 else max(14, 528 // max(r, c))
    font, small, big = _font(14), _font(12 if cell >= 30 else 9), _font(17)
    left, top = 130, 70
    w, h = left + c * cell + 30, top + r * cell + 60
    img = Image.new('RGB', (w, h), 'white')
    draw = ImageDraw.Draw(img)
    draw.text((left, 18), title, fill='black', font=big)
    row_sum = np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    frac = matrix / row_sum
    for i in range(r):
        for j in range(c):
            shade = int(255 - 200 * frac[i, j])
            color = (shade, shade, 255)
            x, y = left + j * cell, top + i * cell
            draw.rectangle([x, y, x + cell, y + cell], fill=color, outline=(200, 200, 200))
            if cell >= 24:
                t = str(int(matrix[i, j]))
                tw, th = _text_size(draw, t, small)
                draw.text((x + (cell - tw) / 2, y + (cell - th) / 2 - 2), t,
                          fill='white' if frac[i, j] > 0.6 else 'black', font=small)
    for i, name in enumerate(row_names):
        t = str(name)[:14]
        tw, th = _text_size(draw, t, small)
        draw.text((left - 8 - tw, top + i * cell + (cell - th) / 2 - 2), t, fill='black', font=small)
    for j, name in enumerate(col_names):
        t = str(name)[:6]
        tw, th = _text_size(draw, t, small)
        draw.text((left + j * cell + (cell - tw) / 2, top - 18), t, fill='black', font=small)
    tw, _ = _text_size(draw, xlabel, font)
    draw.text((left + (c * cell - tw) / 2, top + r * cell + 14), xlabel, fill='black', font=font)
    draw.text((12, top - 20), ylabel, fill='black', font=font)
    return save_image(img, path)


# ---- sample quality over the steps (--eval-every) ------------------------------------------
def plot_metric_history(records, path, title='sample quality during training'):
    """One small panel per metric over the steps (with its floor dashed), for metrics.jsonl's
    eval records ({'step': ..., 'fd': ..., 'fd_floor': ...})."""
    records = [r for r in records if all(k in r for k in SAMPLE_METRICS)]
    font = ImageFont.load_default()
    pw, ph, pad = 300, 180, 40
    img = Image.new('RGB', (len(SAMPLE_METRICS) * (pw + pad) + pad, ph + 2 * pad + 10), 'white')
    draw = ImageDraw.Draw(img)
    draw.text((pad, 6), title, fill='black', font=font)
    for i, k in enumerate(SAMPLE_METRICS):
        x0, y0 = pad + i * (pw + pad), pad
        draw.rectangle([x0, y0, x0 + pw, y0 + ph], outline='black')
        draw.text((x0, y0 - 14), k, fill='black', font=font)
        pts = [(r['step'], float(r[k])) for r in records]
        floors = [float(r[k + '_floor']) for r in records if r.get(k + '_floor') is not None]
        if not pts:
            continue
        ys = [v for _, v in pts] + floors
        lo, hi = min(ys), max(ys)
        lo, hi = (lo - 1, hi + 1) if hi == lo else (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
        s0, s1 = pts[0][0], max(pts[-1][0], pts[0][0] + 1)
        fx = lambda s: x0 + (s - s0) / (s1 - s0) * pw          # noqa: E731
        fy = lambda v: y0 + ph - (v - lo) / (hi - lo) * ph     # noqa: E731
        if floors:
            for xa in range(int(x0), int(x0 + pw), 8):
                draw.line([(xa, fy(floors[-1])), (xa + 4, fy(floors[-1]))], fill=(150, 150, 150))
        line = [(fx(s), fy(v)) for s, v in pts]
        if len(line) > 1:
            draw.line(line, fill=(31, 119, 180), width=2)
        for x, y in line:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(31, 119, 180))
        draw.text((x0 + 2, y0 + ph + 2), f'step {s0}..{pts[-1][0]}', fill='black', font=font)
        draw.text((x0 + 2, y0 + 2), f'{hi:.3g}', fill='gray', font=font)
        draw.text((x0 + 2, y0 + ph - 12), f'{lo:.3g}', fill='gray', font=font)
    return save_image(img, path)

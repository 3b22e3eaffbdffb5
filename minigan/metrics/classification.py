"""Classifier metrics: confusion matrix, per-class precision / recall / F1 for single-label
and multi-label predictions, and the confusion matrix drawn as a PNG with class names.

Conventions (scikit-learn's): confusion rows are true classes, columns predicted ones;
a ratio whose denominator is 0 (no predictions of a class, no examples of it) is 0.
"""
import numpy as np


def _host(a):
    return np.asarray(a.numpy() if hasattr(a, 'numpy') else a)


def confusion_matrix(true_labels, pred_labels, num_classes):
    """(K, K) int64 counts: entry [i, j] is how many examples of class i were predicted j."""
    t, p = _host(true_labels).reshape(-1), _host(pred_labels).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f'{t.size} true labels but {p.size} predictions: they must pair up')
    for name, y in (('true_labels', t), ('pred_labels', p)):
        if y.size and (y.dtype.kind not in 'iu' or y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f'{name} must be integer classes in [0, {num_classes})')
    return np.bincount(t.astype(np.int64) * num_classes + p, minlength=num_classes ** 2
                       ).reshape(num_classes, num_classes).astype(np.int64)


def _ratio(num, den):
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _scores(tp, fp, fn):
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    return precision, recall, f1


def _summary(tp, fp, fn, support):
    precision, recall, f1 = _scores(tp, fp, fn)
    micro = _scores(tp.sum(), fp.sum(), fn.sum())
    return {'precision': precision, 'recall': recall, 'f1': f1, 'support': support,
            'macro_precision': float(precision.mean()), 'macro_recall': float(recall.mean()),
            'macro_f1': float(f1.mean()),
            'micro_precision': float(micro[0]), 'micro_recall': float(micro[1]), 'micro_f1': float(micro[2])}


def per_class_scores(true_labels, pred_labels, num_classes):
    """Single-label precision, recall, F1 and support per class (arrays of K), plus
    macro (mean over classes) and micro (pooled) averages."""
    cm = confusion_matrix(true_labels, pred_labels, num_classes)
    tp = np.diag(cm).astype(np.float64)
    return _summary(tp, cm.sum(0) - tp, cm.sum(1) - tp, cm.sum(1))


def multilabel_scores(scores, targets, threshold=0.5, from_logits=False):
    """Multi-label precision, recall, F1 and support per class.

    scores: (N, K) probabilities (or logits with from_logits=True); class k is predicted
    for example n when its probability is >= threshold. targets: (N, K) 0/1 labels.
    """
    s, y = _host(scores).astype(np.float64), _host(targets)
    if s.ndim != 2 or s.shape != y.shape:
        raise ValueError(f'scores {s.shape} and targets {y.shape} must both be (samples, classes)')
    if not 0 < threshold < 1:
        raise ValueError(f'threshold is a probability in (0, 1), got {threshold}')
    if not np.isin(y, (0, 1)).all():
        raise ValueError('multi-label targets must be 0/1 per class')
    if from_logits:
        s = 1 / (1 + np.exp(-s))
    pred, y = s >= threshold, y.astype(bool)
    tp = (pred & y).sum(0).astype(np.float64)
    return _summary(tp, (pred & ~y).sum(0), (~pred & y).sum(0), y.sum(0).astype(np.int64))


def format_scores(result, class_names=None):
    """A plain-text table of per_class_scores / multilabel_scores output."""
    k = len(result['f1'])
    names = [str(c) for c in (class_names or range(k))]
    width = max(8, *(len(n) for n in names))
    lines = [f'{"class":<{width}} precision   recall       f1  support']
    for i, n in enumerate(names):
        lines.append(f'{n:<{width}} {result["precision"][i]:9.3f} {result["recall"][i]:8.3f} '
                     f'{result["f1"][i]:8.3f} {int(result["support"][i]):8d}')
    for avg in ('macro', 'micro'):
        lines.append(f'{avg + " avg":<{width}} {result[avg + "_precision"]:9.3f} '
                     f'{result[avg + "_recall"]:8.3f} {result[avg + "_f1"]:8.3f}')
    return '\n'.join(lines)


def confusion_matrix_image(cm, class_names=None, normalize=True, cell=34):
    """A PIL image of the confusion matrix: rows true, columns predicted, shaded by the
    row-normalised rate, each cell printed with its count, class names on both axes."""
    from PIL import Image, ImageDraw, ImageFont
    cm = _host(cm)
    k = cm.shape[0]
    names = [str(c) for c in (class_names or range(k))]
    if len(names) != k:
        raise ValueError(f'{len(names)} class names for a {k}x{k} confusion matrix')
    font = ImageFont.load_default()
    draw0 = ImageDraw.Draw(Image.new('RGB', (1, 1)))
    text_w = lambda s: draw0.textbbox((0, 0), s, font=font)[2]   # noqa: E731
    left = max(text_w(n) for n in names) + 12 + 14
    top = max(text_w(n) for n in names) + 12 + 14
    img = Image.new('RGB', (left + k * cell + 10, top + k * cell + 10), 'white')
    draw = ImageDraw.Draw(img)
    rates = _ratio(cm, cm.sum(1, keepdims=True)) if normalize else _ratio(cm, cm.max())
    for i in range(k):
        for j in range(k):
            v = rates[i, j]
            shade = (int(255 - 200 * v), int(255 - 140 * v), 255)      # white to blue
            x0, y0 = left + j * cell, top + i * cell
            draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=shade, outline=(200, 200, 200))
            s = str(int(cm[i, j]))
            draw.text((x0 + (cell - text_w(s)) // 2, y0 + cell // 2 - 6), s,
                      fill='white' if v > 0.6 else 'black', font=font)
        draw.text((left - text_w(names[i]) - 6, top + i * cell + cell // 2 - 6), names[i], fill='black', font=font)
    for j, n in enumerate(names):                # column names, written vertically
        label = Image.new('RGB', (text_w(n) + 2, 14), 'white')
        ImageDraw.Draw(label).text((0, 0), n, fill='black', font=font)
        label = label.rotate(90, expand=True)
        img.paste(label, (left + j * cell + cell // 2 - 7, top - label.height - 6))
    draw.text((2, 2), 'rows: true  cols: predicted', fill='black', font=font)
    return img


def save_confusion_matrix(cm, path, class_names=None, normalize=True):
    """Write confusion_matrix_image(...) to `path` (PNG)."""
    confusion_matrix_image(cm, class_names, normalize).save(path)
    return path

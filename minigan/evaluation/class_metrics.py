"""Does a conditional generator draw the class it is asked for? Per-class scores of its samples.

    labels = balanced_labels(num_classes, n)                 # each class asked for n / K times
    rows = per_class_metrics(features, probs, labels, ref)   # one dict per class

For each asked-for class c, over the samples drawn with label c:
  accuracy   the share the evaluator classifies as c (a requested 7 read as a 7)
  fd         Fréchet distance between their features and those of the real test images of class c
The summary is the mean accuracy over all samples and the mean per-class FD.
"""
import numpy as np

from .. import metrics as M


def balanced_labels(num_classes, n):
    """n labels, each class equally often (to within one): 0, 1, ..., K-1, 0, 1, ..."""
    return np.arange(n) % num_classes


def per_class_metrics(features, probs, labels, ref, names):
    """[{'class', 'index', 'n', 'accuracy', 'fd', 'n_real'}] per asked-for class; fd is None when the
    class has fewer than 2 generated or 2 real test images."""
    labels = np.asarray(labels)
    pred = probs.argmax(axis=1)
    rows = []
    for c in np.unique(labels):
        mine = labels == c
        real = ref.labels == c
        fd = None
        if mine.sum() >= 2 and real.sum() >= 2:
            fd = float(M.fd(features[mine], ref.features[real]))
        rows.append({'class': names[c] if c < len(names) else str(c), 'index': int(c), 'n': int(mine.sum()),
                     'accuracy': float((pred[mine] == c).mean()), 'fd': fd, 'n_real': int(real.sum())})
    return rows


def summary(rows, labels, probs):
    """class_accuracy (over all samples) and mean_class_fd (over the classes that have one)."""
    fds = [r['fd'] for r in rows if r['fd'] is not None]
    return {'class_accuracy': float((probs.argmax(axis=1) == np.asarray(labels)).mean()),
            'mean_class_fd': float(np.mean(fds)) if fds else None}


def format_class_table(rows):
    lines = [f'{"class":<10}{"asked":>8}{"accuracy":>10}{"fd":>12}{"real":>8}', '-' * 48]
    for r in rows:
        fd = f'{r["fd"]:>12.4f}' if r['fd'] is not None else f'{"-":>12}'
        lines.append(f'{r["class"]:<10}{r["n"]:>8d}{r["accuracy"]:>10.3f}{fd}{r["n_real"]:>8d}')
    return '\n'.join(lines)

"""How good is a classifier run? Per-class precision, recall and F1, and its confusion matrix.

    summary = evaluate_classifier_run('runs/clf', 'runs/clf/eval')

Multi-label runs (a --labels-file) are scored per class at a probability threshold.
"""
import os

import numpy as np

from .. import metrics as M
from ..autograd import no_grad
from ..data import load_dataset
from ..run_folder import load_run_model, read_config
from .sample_metrics import as_float_batch


def evaluate_classifier_run(run_dir, out_dir, threshold=0.5, device='cpu', root=None, say=print):
    """Per-class precision, recall and F1 (multi-label: at `threshold`), and the confusion matrix
    PNG with class names, of a classifier run on its test split (its train split if it has none)."""
    cfg = read_config(run_dir)
    model, names, _, _ = load_run_model(run_dir, 'classifier', device)
    options = {'labels_file': cfg['labels_file']} if cfg.get('labels_file') else {}
    if str(cfg['data']).lower() == 'synth':
        options['n'] = min(2000, cfg['subset']) if cfg.get('subset') else 2000
    try:
        ds = load_dataset(cfg['data'], root=root or cfg.get('data_dir'), split='test',
                          image_size=cfg['image_size'], **options)
    except Exception as e:
        say(f'note: no test split ({e}); scoring on the training set')
        if str(cfg['data']).lower() == 'synth':
            options['n'] = cfg.get('subset') or 50_000
        ds = load_dataset(cfg['data'], root=root or cfg.get('data_dir'), split='train',
                          image_size=cfg['image_size'], **options)
    names = list(ds.classes)
    with no_grad():
        logits = np.concatenate([model(as_float_batch(ds.images[i:i + 500], device)).numpy()
                                 for i in range(0, len(ds), 500)])
    os.makedirs(out_dir, exist_ok=True)
    if ds.multilabel:
        r = M.multilabel_scores(logits, ds.labels, threshold=threshold, from_logits=True)
        summary = {'threshold': threshold, 'label_accuracy': float(((logits > np.log(threshold / (1 - threshold)))
                                                                   == (ds.labels > 0.5)).mean())}
    else:
        pred = logits.argmax(1)
        r = M.per_class_scores(ds.labels, pred, len(names))
        cm = M.confusion_matrix(ds.labels, pred, len(names))
        M.save_confusion_matrix(cm, os.path.join(out_dir, 'confusion.png'), names)
        summary = {'accuracy': float((pred == ds.labels).mean())}
    summary.update({k: v for k, v in r.items() if not isinstance(v, np.ndarray)})
    summary['per_class'] = {n: {'precision': float(r['precision'][i]), 'recall': float(r['recall'][i]),
                                'f1': float(r['f1'][i]), 'support': int(r['support'][i])}
                            for i, n in enumerate(names)}
    say(M.format_scores(r, names))
    say(' '.join(f'{k} {v:.4f}' for k, v in summary.items() if isinstance(v, float)))
    return summary

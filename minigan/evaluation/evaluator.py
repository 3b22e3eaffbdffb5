"""The evaluator classifier of the sample-quality metrics: trained once per dataset, cached, reused.

    run_dir = get_evaluator(cfg, n_train)        # a classifier-32 run on the GAN run's data (cached)
    score = TrainingEvaluator(cfg, n=2000)       # what --eval-every calls: score(G) -> fd, kid, ... and floors

The evaluator is an ordinary classifier run of the training loop (minigan.training),
kept in a cache folder keyed by the dataset, image size, image count and epochs.
"""
import hashlib
import json
import os
from typing import NamedTuple

import numpy as np

from .. import checkpoint, runlog
from ..errors import UsageError
from ..run_config import DATASETS, new_config, resume_config
from ..run_folder import channels, keeping_random_state, load_run_data_cfg, load_run_model
from ..training import train_run
from .sample_metrics import RealReference, evaluate_generator


class EvaluateError(UsageError):
    """A problem with the evaluation (its data, its evaluator, the options): reported in one line."""


# ---- the real data the metrics compare with ----------------------------------------------------
class RealSplits(NamedTuple):
    """The real images the metrics compare with; the evaluator trains on the first n_evaluator
    training images of the dataset."""
    train_x: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: list
    note: str
    n_evaluator: int


HOLDOUT_EVERY = 5      # without a test split, every 5th training image is held out as one


def real_splits(cfg, root=None):
    """RealSplits(train images, test images, test labels, classes, note, n_evaluator).

    When the dataset has no test split (the SVHN sample, a folder without test/), every
    HOLDOUT_EVERY-th training image (the 5th, 10th, ...) is held out as the test split: taken
    across the whole set, not from its end, because a folder lists its images class by class
    and its last fifth would hold only the last classes. The evaluator, which trains on the
    first n images of a dataset, then trains on all of them (it has seen the held-out ones).
    """
    train_x, train_y, classes = load_run_data_cfg(cfg, 'train', root)
    try:
        test_x, test_y, _ = load_run_data_cfg(cfg, 'test', root)
        note, n_evaluator = 'test split', len(train_x)
    except Exception:
        held = np.arange(len(train_x)) % HOLDOUT_EVERY == HOLDOUT_EVERY - 1
        if held.sum() < 2 or (~held).sum() < 2:
            raise EvaluateError(f'{cfg["data"]} has {len(train_x)} images and no test split: too few to hold '
                                f'out every {HOLDOUT_EVERY}th image as test images')
        n_evaluator = len(train_x)
        train_x, train_y, test_x, test_y = train_x[~held], train_y[~held], train_x[held], train_y[held]
        note = (f'no test split: every {HOLDOUT_EVERY}th training image ({len(test_x)}) held out as the test '
                'split; the evaluator trained on all of them')
    if np.asarray(test_y).ndim != 1:
        raise EvaluateError('the GAN metrics need one class per image; this dataset is multi-label')
    return RealSplits(train_x, test_x, np.asarray(test_y, np.int64), classes, note, n_evaluator)


def subsample(images, labels, n, seed=0):
    """At most n of (images, labels), drawn without replacement and kept in order (seeded)."""
    if len(images) <= n:
        return images, labels
    keep = np.sort(np.random.default_rng(seed + 2).choice(len(images), n, replace=False))
    return images[keep], labels[keep]


# ---- training and caching the evaluator --------------------------------------------------------
def default_cache_dir():
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.environ.get('MINIGAN_EVAL_CACHE') or os.path.join(base, 'minigan', 'evaluators')


def _finished_run(run_dir, epochs):
    path = os.path.join(run_dir, 'metrics.jsonl')
    if not os.path.isfile(path):
        return False
    return any(r.get('type') == 'epoch' and r.get('epoch', 0) >= epochs for r in runlog.read_jsonl(path))


def _stable_hash(obj):
    return hashlib.sha1(json.dumps(obj).encode()).hexdigest()[:8]


def _evaluator_config(cfg, data, n_train, epochs, device, root, run_dir):
    """The settings of the evaluator's run: classifier-32 on the first n_train images, seed 0."""
    settings = {'model': 'classifier', 'data': data, 'epochs': int(epochs), 'subset': int(n_train),
                'batch_size': min(64, int(n_train)), 'image_size': int(cfg['image_size']), 'device': device,
                'seed': 0, 'quiet': True, 'log_every': 100, 'out': run_dir}
    if root or cfg.get('data_dir'):
        settings['data_dir'] = str(root or cfg['data_dir'])
    return new_config(settings)


def get_evaluator(cfg, n_train, cache_dir=None, epochs=5, device='cpu', root=None, quiet=True, say=print):
    """A classifier-32 trained by the training loop (as `python -m minigan.train --model classifier`
    would) on the first n_train training images of the run's dataset, trained once and cached under
    cache_dir; returns its run folder. minigan's random state is left as it was."""
    data = str(cfg['data'])
    data_key = data if data.lower() in DATASETS else os.path.abspath(os.path.expanduser(data))
    key = [data_key, int(cfg['image_size']), channels(cfg), int(n_train), int(epochs)]
    tag = ''.join(c if c.isalnum() or c in '-_' else '_' for c in os.path.basename(data_key.rstrip('/')))
    run_dir = os.path.join(cache_dir or default_cache_dir(),
                           f'{tag}-{cfg["image_size"]}px-{n_train}img-{epochs}ep-{_stable_hash(key)}')
    if _finished_run(run_dir, epochs):
        return run_dir
    say(f'training the evaluator classifier-32 on {n_train} {data} images for {epochs} epochs '
        f'(once; cached in {run_dir})')
    try:
        resume = checkpoint.find_latest(run_dir) is not None
        if resume:
            settings = resume_config(run_dir, {'epochs': int(epochs), 'quiet': True, 'device': device})
        else:
            settings = _evaluator_config(cfg, data, n_train, epochs, device, root, run_dir)
        with keeping_random_state():              # training it must not disturb the caller's randomness
            status = train_run(settings, run_dir, resume)
    except Exception as e:
        raise EvaluateError(f'training the evaluator failed ({" ".join(str(e).split())}); see {run_dir}') from e
    if status != 0 or not _finished_run(run_dir, epochs):
        raise EvaluateError(f'training the evaluator failed (exit status {status}); see the messages above '
                            f'and {run_dir}')
    return run_dir


def evaluator_accuracy(run_dir):
    """The last test accuracy the evaluator's run logged (None if it logged none)."""
    path = os.path.join(run_dir, 'metrics.jsonl')
    if not os.path.isfile(path):
        return None
    accs = [r.get('test_acc') for r in runlog.read_jsonl(path)
            if r.get('type') == 'epoch' and r.get('test_acc') is not None]
    return accs[-1] if accs else None


def load_evaluator(run_dir, n_classes, device='cpu'):
    """The evaluator network of a classifier run, checked to know the n_classes of the data it judges."""
    evaluator = load_run_model(run_dir, 'classifier', device)[0]
    if evaluator.n_classes != n_classes:
        raise EvaluateError(f'the evaluator {run_dir} has {evaluator.n_classes} classes, the run\'s data '
                            f'{n_classes}')
    return evaluator


class TrainingEvaluator:
    """What `--eval-every N` needs: built once at the start of training, called with G every N steps.

        ev = TrainingEvaluator(cfg, n=2000, device=device)      # trains/loads the evaluator, real features
        record = ev(G)                                            # fd, classifier_score, kid, modes, label_kl
                                                                  # and their *_floor keys
    """

    def __init__(self, cfg, n=2000, device='cpu', classifier=None, cache_dir=None, evaluator_epochs=5,
                 root=None, batch_size=500, seed=0, say=print):
        train_x, test_x, test_y, self.classes, self.note, n_evaluator = real_splits(cfg, root)
        test_x, test_y = subsample(test_x, test_y, n, seed)        # as many real test images as samples
        self.evaluator_dir = classifier or get_evaluator(cfg, n_evaluator, cache_dir, evaluator_epochs,
                                                         device, root, say=say)
        self.evaluator = load_evaluator(self.evaluator_dir, len(self.classes), device)
        self.n, self.seed, self.batch_size = int(n), seed, batch_size
        self.train_images = train_x
        self.reference = RealReference(self.evaluator, test_x, test_y, train_x, batch_size,
                                       kid_subset_size=min(1000, self.n), seed=seed)

    def __call__(self, G, n=None):
        return evaluate_generator(G, self.evaluator, self.reference, n or self.n, batch_size=self.batch_size,
                                  seed=self.seed, floors=True, kid_subset_size=min(1000, n or self.n))

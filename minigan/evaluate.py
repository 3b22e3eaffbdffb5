"""Is a generator any good, and did it collapse? `python -m minigan.evaluate RUN_DIR`.

An evaluator network (a classifier-32 trained by minigan on the run's real data,
cached and reused; or any classifier run given with --classifier) looks at n
generated samples and at the real test split. From its penultimate-layer
features and its class probabilities:

  fd                Fréchet distance of the features (lower is better)
  classifier_score  exp(E KL(p(y|x) || p(y)))  (higher is better, at most the class count)
  kid               unbiased kernel distance, cubic polynomial kernel, over subsets (lower)
  modes             classes produced at least 1% of the time (the real data: all of them)
  label_kl          KL(real label distribution || generated) (lower)

Each comes with its floor: the same metric for real train images (as many as the
generated ones, or all there are) against the test split, i.e. what a perfect
generator would score with this evaluator and this many samples.

During training, the trainer calls evaluate_generator(G, evaluator, reference, n)
every --eval-every steps with a RealReference built once.
"""
import argparse
import contextlib
import json
import os
import sys
import time

import numpy as np

import minigan as mg
from . import metrics as M

METRIC_KEYS = ('fd', 'classifier_score', 'kid', 'modes', 'label_kl')


# ---- running the evaluator ------------------------------------------------------
def _last_linear(model):
    """The last module with a 2-D weight (the classifier head); its input is the feature vector."""
    last = None
    for _, m in model.named_modules():
        w = getattr(m, 'weight', None)
        if w is not None and len(w.shape) == 2:
            last = m
    if last is None:
        raise ValueError(f'{type(model).__name__} has no Linear layer: the evaluator must be a classifier '
                         'whose last layer is a Linear (its input is the feature vector)')
    return last


def _model_device(model):
    for p in model.parameters():
        return p.device
    return 'cpu'


def _as_float_batch(images, device):
    """uint8 images -> float32 in [-1, 1]; float images are taken to be in [-1, 1] already."""
    a = images.array if isinstance(images, mg.Tensor) else images
    a = a.astype(np.float32) / 127.5 - 1 if a.dtype == np.uint8 else a.astype(np.float32, copy=False)
    return mg.tensor(a, device=device)


def evaluator_outputs(evaluator, images, batch_size=500):
    """(features (N, D) float64, probabilities (N, K) float64) of the evaluator on `images`
    (uint8 (N, C, H, W) or float in [-1, 1]). Features are the input of the last Linear layer."""
    head = _last_linear(evaluator)
    device = _model_device(evaluator)
    store = {}
    original = head.forward

    def hooked(x, *args, **kwargs):
        store['features'] = x
        return original(x, *args, **kwargs)

    was_training = evaluator.training
    evaluator.eval()
    object.__setattr__(head, 'forward', hooked)
    feats, probs = [], []
    try:
        with mg.no_grad():
            for start in range(0, len(images), batch_size):
                x = _as_float_batch(images[start:start + batch_size], device)
                logits = evaluator(x)
                logits = logits.reshape(logits.shape[0], -1).numpy().astype(np.float64)
                feats.append(store['features'].reshape(x.shape[0], -1).numpy().astype(np.float64))
                e = np.exp(logits - logits.max(axis=1, keepdims=True))
                probs.append(e / e.sum(axis=1, keepdims=True))
    finally:
        object.__delattr__(head, 'forward')
        evaluator.train(was_training)
    if not feats:
        raise ValueError('no images to evaluate')
    return np.concatenate(feats), np.concatenate(probs)


def latent_size(G):
    """nz: G.nz if set, else the input size of G's first layer (ConvTranspose2d or Linear)."""
    nz = getattr(G, 'nz', None)
    if nz is not None:
        return int(nz)
    for _, m in G.named_modules():
        w = getattr(m, 'weight', None)
        if w is not None:
            return int(w.shape[0] if len(w.shape) == 4 else w.shape[1])
    raise ValueError('cannot tell the generator\'s latent size: set G.nz')


def sample_generator(G, n, batch_size=500, seed=0, nz=None, mode='batch'):
    """n samples (float32 NumPy (n, C, H, W) in [-1, 1]) from z ~ N(0, 1) of shape (B, nz, 1, 1).

    z comes from its own seeded generator, so minigan's global random state (and a training
    run's reproducibility) is untouched. mode='batch' runs G's batch norm on batch statistics,
    as the training command draws its sample grids, and restores G's running statistics
    afterwards; mode='eval' uses the running statistics. G's train/eval mode is restored.
    """
    if mode not in ('batch', 'eval'):
        raise ValueError(f"mode is 'batch' or 'eval', got {mode!r}")
    nz = latent_size(G) if nz is None else nz
    device = _model_device(G)
    rng = np.random.default_rng(seed)
    saved = [(b, b.array.copy()) for b in G.buffers()]
    was_training = G.training
    G.train(mode == 'batch')
    out = []
    try:
        with mg.no_grad():
            for start in range(0, n, batch_size):
                b = min(batch_size, n - start)
                z = mg.tensor(rng.standard_normal((b, nz, 1, 1)).astype(np.float32), device=device)
                out.append(G(z).numpy().astype(np.float32))
    finally:
        for buf, data in saved:
            buf.array = data
        G.train(was_training)
    return np.concatenate(out)


# ---- the metrics --------------------------------------------------------------------
def compare(features, probs, ref_features, ref_probs, real_labels, num_classes,
            kid_subsets=100, kid_subset_size=1000, seed=0):
    """The five metrics of one sample set (features, probs) against the real test set."""
    pred = probs.argmax(axis=1)
    return {
        'fd': M.fd(features, ref_features),
        'classifier_score': M.classifier_score(probs),
        'kid': M.kid(features, ref_features, subsets=kid_subsets, subset_size=kid_subset_size, seed=seed),
        'modes': M.mode_count(pred, num_classes),
        'label_kl': M.label_kl(real_labels, pred, num_classes),
    }


class RealReference:
    """What the metrics need from the real data, computed once: the evaluator's features and
    probabilities on the test images, the test label distribution, and (when train images are
    given) the real-versus-real floors.

    test_labels default to the evaluator's own predictions on the test images.
    """

    def __init__(self, evaluator, test_images, test_labels=None, train_images=None, batch_size=500,
                 kid_subsets=100, kid_subset_size=1000, seed=0):
        self.features, self.probs = evaluator_outputs(evaluator, test_images, batch_size)
        self.num_classes = self.probs.shape[1]
        self.labels = (self.probs.argmax(1) if test_labels is None
                       else np.asarray(test_labels, np.int64).reshape(-1))
        if len(self.labels) != len(self.features):
            raise ValueError(f'{len(self.labels)} test labels for {len(self.features)} test images')
        self.train_images = train_images
        self.batch_size, self.seed = batch_size, seed
        self.kid_subsets, self.kid_subset_size = kid_subsets, kid_subset_size
        self._evaluator = evaluator
        self._floors = {}

    def __len__(self):
        return len(self.features)

    def metrics(self, features, probs):
        return compare(features, probs, self.features, self.probs, self.labels, self.num_classes,
                       self.kid_subsets, self.kid_subset_size, self.seed)

    def floors(self, n):
        """The metrics of min(n, N_train) real train images against the test set (cached per count)."""
        if self.train_images is None:
            raise ValueError('the floors need real train images: pass train_images to RealReference')
        m = min(int(n), len(self.train_images))
        if m not in self._floors:
            idx = np.sort(np.random.default_rng(self.seed + 1).choice(len(self.train_images), m, replace=False))
            f, p = evaluator_outputs(self._evaluator, self.train_images[idx], self.batch_size)
            self._floors[m] = dict(self.metrics(f, p), n=m)
        return self._floors[m]


def evaluate_generator(G, evaluator, real_test_images, n=10000, real_test_labels=None, batch_size=500,
                       seed=0, floors=False, kid_subsets=100, kid_subset_size=1000, mode='batch'):
    """fd, classifier_score, kid, modes, label_kl of n samples from G (a dict of Python numbers).

    real_test_images: a RealReference (built once, the fast way to call this during training)
    or uint8 test images (N, C, H, W). floors=True adds the *_floor keys (the reference needs
    train images). G's and the evaluator's train/eval modes and minigan's random state are kept.
    """
    ref = real_test_images
    if not isinstance(ref, RealReference):
        ref = RealReference(evaluator, real_test_images, real_test_labels, batch_size=batch_size,
                            kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, seed=seed)
    samples = sample_generator(G, n, batch_size, seed, mode=mode)
    result = ref.metrics(*evaluator_outputs(evaluator, samples, batch_size))
    if floors:
        floor = ref.floors(n)
        result.update({k + '_floor': floor[k] for k in METRIC_KEYS})
    return {k: (int(v) if k.startswith('modes') else float(v)) for k, v in result.items()}


# ---- memorisation ---------------------------------------------------------------------
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


# ---- output ---------------------------------------------------------------------------
def format_table(result):
    """The console table: metric, value, real-vs-real floor, and which way is better."""
    better = {'fd': 'lower', 'classifier_score': 'higher', 'kid': 'lower', 'modes': 'higher',
              'label_kl': 'lower'}
    lines = [f'{"metric":<18}{"generated":>12}{"real floor":>12}   better', '-' * 50]
    for k in METRIC_KEYS:
        v, f = result.get(k), result.get(k + '_floor')
        fmt = (lambda x: f'{x:>12d}') if k == 'modes' else (lambda x: f'{x:>12.4f}')
        lines.append(f'{k:<18}{fmt(v) if v is not None else "":>12}{fmt(f) if f is not None else "-":>12}'
                     f'   {better[k]}')
    return '\n'.join(lines)


# ---- runs on disk ---------------------------------------------------------------------
class EvaluateError(Exception):
    """A problem with the run folder or the options: reported in one line."""


def read_config(run_dir):
    path = os.path.join(run_dir, 'config.json')
    if not os.path.isfile(path):
        raise EvaluateError(f'{run_dir} has no config.json: give the folder of a run written by '
                            'python -m minigan.train')
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def load_state(run_dir, checkpoint_path=None):
    from . import checkpoint
    path = checkpoint_path or checkpoint.find_latest(run_dir)
    if path is None:
        raise EvaluateError(f'{run_dir} has no checkpoint yet (checkpoints/latest.npz): train it first')
    return checkpoint.load(path), path


def _channels(cfg):
    return int(cfg['dataset']['image_shape'][0])


@contextlib.contextmanager
def keeping_random_state():
    """Run the block without changing minigan's random state (building a model draws its initial
    weights from it, even when a checkpoint replaces them), so loading or training an evaluator
    in the middle of a training run leaves that run as it would have been."""
    from . import random as mgr
    state = mgr.get_rng_state()
    try:
        yield
    finally:
        mgr.set_rng_state(state)


def load_generator(run_dir, device='cpu', checkpoint_path=None):
    """The generator of a GAN run, with its latest (or the given) checkpoint's weights."""
    from .train import build_generator
    cfg = read_config(run_dir)
    if cfg['model'] == 'classifier':
        raise EvaluateError(f'{run_dir} is a classifier run: it has no generator to evaluate')
    st, _ = load_state(run_dir, checkpoint_path)
    with keeping_random_state():
        G = build_generator(cfg, _channels(cfg))
    G.load_state_dict(st['G'])
    G.nz = int(cfg['nz'])
    return G.to(device)


def load_run_model(run_dir, net='auto', device='cpu', checkpoint_path=None):
    """(model, class_names, image_shape, kind): a classifier run's network, or a GAN run's
    discriminator (kind 'D', whose one score is named 'real'); in eval mode, on `device`."""
    from .train import build_classifier, build_discriminator
    cfg = read_config(run_dir)
    st, _ = load_state(run_dir, checkpoint_path)
    nc, shape = _channels(cfg), tuple(cfg['dataset']['image_shape'])
    if cfg['model'] == 'classifier':
        if net == 'D':
            raise EvaluateError(f'{run_dir} is a classifier run: it has no discriminator')
        with keeping_random_state():
            model = build_classifier(cfg, nc, int(cfg['dataset']['classes']))
        model.load_state_dict(st['net'])
        names, kind = _class_names(cfg), 'classifier'
    else:
        if net == 'classifier':
            raise EvaluateError(f'{run_dir} is a {cfg["model"]} run: use its discriminator (--net D)')
        with keeping_random_state():
            model = build_discriminator(cfg, nc)
        model.load_state_dict(st['D'])
        names, kind = ['real'], 'D'
    return model.to(device).eval(), names, shape, kind


def _class_names(cfg):
    if str(cfg['data']).lower() in ('synth', 'svhn', 'mnist'):
        return [str(d) for d in range(10)]
    try:
        return list(load_run_data_cfg(cfg, 'train', n=1)[2])
    except Exception:
        return [str(i) for i in range(int(cfg['dataset']['classes']))]


def load_run_data_cfg(cfg, split='test', root=None, n=None):
    """(images uint8 NCHW, labels, class names) of the run's dataset, as the run loaded it."""
    from .data import load_dataset
    options = {}
    name = str(cfg['data'])
    if name.lower() == 'synth':
        default = (cfg.get('subset') or 50_000) if split == 'train' else 10_000
        options['n'] = n or default
    ds = load_dataset(name, root=root or cfg.get('data_dir'), split=split, download=False,
                      image_size=cfg['image_size'], channels=_channels(cfg), **options)
    if split == 'train' and cfg.get('subset') and cfg['subset'] < len(ds):
        ds = ds.subset(slice(0, cfg['subset']))
    if n is not None and n < len(ds):
        ds = ds.subset(slice(0, n))
    return ds.images, ds.labels, list(ds.classes)


def load_run_data(run_dir, split='test', root=None, n=None):
    """load_run_data_cfg for a run folder; a dataset without a test split gives its train split."""
    cfg = read_config(run_dir)
    try:
        return load_run_data_cfg(cfg, split, root, n)
    except Exception:
        if split != 'test':
            raise
        return load_run_data_cfg(cfg, 'train', root, n)


def real_splits(cfg, root=None, holdout=0.2):
    """(train images, test images, test labels, classes, note) for the metrics and the evaluator.

    When the dataset has no test split (the SVHN sample holds train images only), the last
    `holdout` fraction of the run's training images is held out as the test split, and the
    evaluator is trained on the rest.
    """
    train_x, train_y, classes = load_run_data_cfg(cfg, 'train', root)
    try:
        test_x, test_y, _ = load_run_data_cfg(cfg, 'test', root)
        note = 'test split'
    except Exception:
        k = max(2, int(round(len(train_x) * holdout)))
        train_x, train_y, test_x, test_y = train_x[:-k], train_y[:-k], train_x[-k:], train_y[-k:]
        note = f'no test split: the last {k} training images held out as the test split'
    if np.asarray(test_y).ndim != 1:
        raise EvaluateError('the GAN metrics need one class per image; this dataset is multi-label')
    return train_x, test_x, np.asarray(test_y, np.int64), classes, note


def subsample(images, labels, n, seed=0):
    """At most n of (images, labels), drawn without replacement and kept in order (seeded)."""
    if len(images) <= n:
        return images, labels
    keep = np.sort(np.random.default_rng(seed + 2).choice(len(images), n, replace=False))
    return images[keep], labels[keep]


# ---- the evaluator classifier --------------------------------------------------------------
def default_cache_dir():
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.environ.get('MINIGAN_EVAL_CACHE') or os.path.join(base, 'minigan', 'evaluators')


def _finished_run(run_dir, epochs):
    from . import runlog
    path = os.path.join(run_dir, 'metrics.jsonl')
    if not os.path.isfile(path):
        return False
    return any(r.get('type') == 'epoch' and r.get('epoch', 0) >= epochs for r in runlog.read_jsonl(path))


def get_evaluator(cfg, n_train, cache_dir=None, epochs=5, device='cpu', root=None, quiet=True, say=print):
    """A classifier-32 trained by `python -m minigan.train --model classifier` on the first n_train
    training images of the run's dataset, trained once and cached under cache_dir; returns its run folder."""
    from . import train
    data = str(cfg['data'])
    data_key = data if data.lower() in train.DATASETS else os.path.abspath(os.path.expanduser(data))
    key = [data_key, int(cfg['image_size']), _channels(cfg), int(n_train), int(epochs)]
    tag = ''.join(c if c.isalnum() or c in '-_' else '_' for c in os.path.basename(data_key.rstrip('/')))
    digest = _stable_hash(key)
    run_dir = os.path.join(cache_dir or default_cache_dir(),
                           f'{tag}-{cfg["image_size"]}px-{n_train}img-{epochs}ep-{digest}')
    if _finished_run(run_dir, epochs):
        return run_dir
    argv = ['--model', 'classifier', '--data', data, '--epochs', str(epochs), '--subset', str(n_train),
            '--batch-size', str(min(64, int(n_train))),
            '--image-size', str(cfg['image_size']), '--device', device, '--seed', '0', '--quiet',
            '--log-every', '100']
    if root or cfg.get('data_dir'):
        argv += ['--data-dir', str(root or cfg['data_dir'])]
    from . import checkpoint
    if checkpoint.find_latest(run_dir):
        argv = ['--resume', run_dir, '--epochs', str(epochs), '--quiet', '--device', device]
    else:
        argv += ['--out', run_dir]
    say(f'training the evaluator classifier-32 on {n_train} {data} images for {epochs} epochs '
        f'(once; cached in {run_dir})')
    with keeping_random_state():                  # training it must not disturb the caller's randomness
        status = train.main(argv)
    if status != 0 or not _finished_run(run_dir, epochs):
        raise EvaluateError(f'training the evaluator failed (exit status {status}); see the messages above '
                            f'and {run_dir}')
    return run_dir


def _stable_hash(obj):
    import hashlib
    return hashlib.sha1(json.dumps(obj).encode()).hexdigest()[:8]


def evaluator_accuracy(run_dir):
    """The last test accuracy the evaluator's run logged (None if it logged none)."""
    from . import runlog
    path = os.path.join(run_dir, 'metrics.jsonl')
    if not os.path.isfile(path):
        return None
    accs = [r.get('test_acc') for r in runlog.read_jsonl(path)
            if r.get('type') == 'epoch' and r.get('test_acc') is not None]
    return accs[-1] if accs else None


class TrainingEvaluator:
    """What `--eval-every N` needs: built once at the start of training, called with G every N steps.

        ev = TrainingEvaluator(cfg, n=2000, device=device)      # trains/loads the evaluator, real features
        record = ev(G)                                            # fd, classifier_score, kid, modes, label_kl
                                                                  # and their *_floor keys
    """

    def __init__(self, cfg, n=2000, device='cpu', classifier=None, cache_dir=None, evaluator_epochs=5,
                 root=None, batch_size=500, seed=0, say=print):
        train_x, test_x, test_y, self.classes, self.note = real_splits(cfg, root)
        test_x, test_y = subsample(test_x, test_y, n, seed)        # as many real test images as samples
        self.evaluator_dir = classifier or get_evaluator(cfg, len(train_x), cache_dir, evaluator_epochs,
                                                         device, root, say=say)
        self.evaluator = load_run_model(self.evaluator_dir, 'classifier', device)[0]
        if self.evaluator.n_classes != len(self.classes):
            raise EvaluateError(f'the evaluator {self.evaluator_dir} has {self.evaluator.n_classes} classes, '
                                f'the run\'s data {len(self.classes)}')
        self.n, self.seed, self.batch_size = int(n), seed, batch_size
        self.train_images = train_x
        self.reference = RealReference(self.evaluator, test_x, test_y, train_x, batch_size,
                                       kid_subset_size=min(1000, self.n), seed=seed)

    def __call__(self, G, n=None):
        return evaluate_generator(G, self.evaluator, self.reference, n or self.n, batch_size=self.batch_size,
                                  seed=self.seed, floors=True, kid_subset_size=min(1000, n or self.n))


def plot_metric_history(records, path, title='sample quality during training'):
    """One small panel per metric over the steps (with its floor dashed), for metrics.jsonl's
    eval records ({'step': ..., 'fd': ..., 'fd_floor': ...})."""
    from PIL import Image, ImageDraw, ImageFont
    records = [r for r in records if all(k in r for k in METRIC_KEYS)]
    font = ImageFont.load_default()
    pw, ph, pad = 300, 180, 40
    img = Image.new('RGB', (len(METRIC_KEYS) * (pw + pad) + pad, ph + 2 * pad + 10), 'white')
    draw = ImageDraw.Draw(img)
    draw.text((pad, 6), title, fill='black', font=font)
    for i, k in enumerate(METRIC_KEYS):
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
    img.save(path)
    return path


# ---- classifier runs ------------------------------------------------------------------------
def evaluate_classifier_run(run_dir, out_dir, threshold=0.5, device='cpu', root=None, say=print):
    """Per-class precision, recall and F1 (multi-label: at `threshold`), and the confusion matrix
    PNG with class names, of a classifier run on its test split (its train split if it has none)."""
    cfg = read_config(run_dir)
    model, names, _, _ = load_run_model(run_dir, 'classifier', device)
    from .data import load_dataset
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
    with mg.no_grad():
        logits = np.concatenate([model(_as_float_batch(ds.images[i:i + 500], device)).numpy()
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


# ---- command line -------------------------------------------------------------------------
def build_parser():
    p = argparse.ArgumentParser(prog='python -m minigan.evaluate',
                                description='Sample-quality and mode-coverage metrics of a GAN run '
                                            '(or per-class scores of a classifier run).')
    p.add_argument('run_dir', help='a run folder written by python -m minigan.train')
    p.add_argument('--n', type=int, default=10000, help='generated samples (default: 10000)')
    p.add_argument('--n-test', type=int, default=None,
                   help='real test images to compare with (default: as many as --n, or all there are)')
    p.add_argument('--classifier', default=None, metavar='RUN_DIR',
                   help='evaluator: a classifier run of minigan.train on the same classes (default: a '
                        'classifier-32 trained on the run\'s training images, cached)')
    p.add_argument('--json', default=None, metavar='FILE', help='write the metrics to FILE as JSON')
    p.add_argument('--evaluator-epochs', type=int, default=5, help='epochs of the evaluator (default: 5)')
    p.add_argument('--cache-dir', default=None, help=f'evaluator cache (default: {default_cache_dir()})')
    p.add_argument('--data-dir', default=None, help='where the run\'s dataset is (default: as trained)')
    p.add_argument('--checkpoint', default=None, help='checkpoint file (default: the run\'s latest)')
    p.add_argument('--g-mode', default='batch', choices=['batch', 'eval'],
                   help='generator batch norm: batch statistics, as the sample grids (default), or running')
    p.add_argument('--kid-subsets', type=int, default=100)
    p.add_argument('--kid-subset-size', type=int, default=1000)
    p.add_argument('--neighbours', type=int, default=4, help='nearest training images per sample (default: 4)')
    p.add_argument('--threshold', type=float, default=0.5,
                   help='classifier runs, multi-label: probability at which a class is predicted')
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda', 'auto'])
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default=None, help='output folder (default: RUN_DIR/eval)')
    return p


def main(argv=None):
    a = build_parser().parse_args(argv)
    try:
        return _main(a)
    except (EvaluateError, FileNotFoundError) as e:
        print(f'minigan.evaluate: error: {e}', file=sys.stderr)
        return 2


def _main(a):
    device = ('cuda' if mg.cuda_available() else 'cpu') if a.device == 'auto' else a.device
    cfg = read_config(a.run_dir)
    out = a.out or os.path.join(a.run_dir, 'eval')
    os.makedirs(out, exist_ok=True)
    if cfg['model'] == 'classifier':
        result = evaluate_classifier_run(a.run_dir, out, a.threshold, device, a.data_dir)
        if a.json:
            _write_json(a.json, result)
        return 0
    if a.n < 2:
        raise EvaluateError('--n must be at least 2')
    t0 = time.perf_counter()
    train_x, test_x, test_y, classes, note = real_splits(cfg, a.data_dir)
    ev_dir = a.classifier or get_evaluator(cfg, len(train_x), a.cache_dir, a.evaluator_epochs, device,
                                           a.data_dir)
    evaluator = load_run_model(ev_dir, 'classifier', device)[0]
    if evaluator.n_classes != len(classes):
        raise EvaluateError(f'the evaluator {ev_dir} has {evaluator.n_classes} classes, the run\'s data '
                            f'{len(classes)}')
    print(f'evaluator: {ev_dir} (test accuracy {evaluator_accuracy(ev_dir)}); real data: {note}')
    test_x, test_y = subsample(test_x, test_y, a.n_test or a.n, a.seed)
    G = load_generator(a.run_dir, device, a.checkpoint)
    subset = min(a.kid_subset_size, a.n, len(test_x))
    ref = RealReference(evaluator, test_x, test_y, train_x, kid_subsets=a.kid_subsets,
                        kid_subset_size=subset, seed=a.seed)
    samples = sample_generator(G, a.n, seed=a.seed, mode=a.g_mode)
    result = ref.metrics(*evaluator_outputs(evaluator, samples))
    floor = ref.floors(a.n)
    result.update({k + '_floor': floor[k] for k in METRIC_KEYS})
    result = {k: (int(v) if k.startswith('modes') else float(v)) for k, v in result.items()}
    print(format_table(result))
    print(f'{a.n} generated samples; floors from {floor["n"]} real train images; '
          f'{len(test_x)} real test images; KID over {a.kid_subsets} subsets of {subset}')
    from .data import save_grid
    save_grid(samples[:64], os.path.join(out, 'samples.png'), nrow=8)
    q = samples[:16]
    idx = nearest_neighbours(q, train_x, k=a.neighbours)
    memorisation_figure(q, train_x, idx).save(os.path.join(out, 'memorisation.png'))
    details = dict(result, n=a.n, n_floor=floor['n'], n_test=len(test_x), evaluator=os.path.abspath(ev_dir),
                   evaluator_test_accuracy=evaluator_accuracy(ev_dir), real_data=note,
                   checkpoint=a.checkpoint or 'latest', g_mode=a.g_mode, seconds=time.perf_counter() - t0)
    _write_json(os.path.join(out, 'metrics.json'), details)
    if a.json:
        _write_json(a.json, {k: result[k] for k in METRIC_KEYS + tuple(k + '_floor' for k in METRIC_KEYS)})
    print(f'wrote {out}/metrics.json, samples.png, memorisation.png'
          + (f' and {a.json}' if a.json else ''))
    return 0


def _write_json(path, obj):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path + '.tmp', 'w', encoding='utf-8') as f:
        json.dump(obj, f, indent=2)
        f.write('\n')
    os.replace(path + '.tmp', path)


if __name__ == '__main__':
    sys.exit(main())

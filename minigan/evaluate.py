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
    a = images.data if isinstance(images, mg.Tensor) else images
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


def sample_generator(G, n, batch_size=500, seed=0, nz=None, train_mode=False):
    """n samples (float32 NumPy (n, C, H, W) in [-1, 1]) from z ~ N(0, 1) of shape (B, nz, 1, 1).

    Draws z from its own seeded generator, so minigan's global random state (and a
    training run's reproducibility) is untouched. G runs in eval mode unless train_mode
    (G's own mode is restored afterwards).
    """
    nz = latent_size(G) if nz is None else nz
    device = _model_device(G)
    rng = np.random.default_rng(seed)
    was_training = G.training
    G.train(bool(train_mode))
    out = []
    try:
        with mg.no_grad():
            for start in range(0, n, batch_size):
                b = min(batch_size, n - start)
                z = mg.tensor(rng.standard_normal((b, nz, 1, 1)).astype(np.float32), device=device)
                out.append(G(z).numpy().astype(np.float32))
    finally:
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
                       seed=0, floors=False, kid_subsets=100, kid_subset_size=1000, train_mode=False):
    """fd, classifier_score, kid, modes, label_kl of n samples from G (a dict of Python numbers).

    real_test_images: a RealReference (built once, the fast way to call this during training)
    or uint8 test images (N, C, H, W). floors=True adds the *_floor keys (the reference needs
    train images). G's and the evaluator's train/eval modes and minigan's random state are kept.
    """
    ref = real_test_images
    if not isinstance(ref, RealReference):
        ref = RealReference(evaluator, real_test_images, real_test_labels, batch_size=batch_size,
                            kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, seed=seed)
    samples = sample_generator(G, n, batch_size, seed, train_mode=train_mode)
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

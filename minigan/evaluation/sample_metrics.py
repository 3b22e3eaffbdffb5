"""The sample-quality metrics of a generator, seen through an evaluator classifier.

    ref = RealReference(evaluator, test_images, test_labels, train_images)   # once: real features, floors
    result = evaluate_generator(G, evaluator, ref, n=10000, floors=True)      # fd, kid, ... and *_floor

The evaluator's features are the input of its last Linear layer, its probabilities the
softmax of its logits; minigan.metrics turns them into numbers:

  fd                Fréchet distance of the features (lower is better)
  classifier_score  exp(E KL(p(y|x) || p(y)))  (higher is better, at most the class count)
  kid               unbiased kernel distance, cubic polynomial kernel, over subsets (lower)
  modes             classes produced at least 1% of the time (the real data: all of them)
  label_kl          KL(real label distribution || generated) (lower)

A floor is the same metric for real train images against the test split: what a perfect
generator would score with this evaluator and this many samples.
"""
import numpy as np

from .. import metrics as M
from ..autograd import no_grad
from ..gan.sampling import model_device, sample_generator
from ..runlog import SAMPLE_METRICS as METRIC_KEYS
from ..tensor import Tensor, tensor


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


def as_float_batch(images, device):
    """uint8 images -> float32 in [-1, 1]; float images are taken to be in [-1, 1] already."""
    a = images.array if isinstance(images, Tensor) else images
    a = a.astype(np.float32) / 127.5 - 1 if a.dtype == np.uint8 else a.astype(np.float32, copy=False)
    return tensor(a, device=device)


def evaluator_outputs(evaluator, images, batch_size=500):
    """(features (N, D) float64, probabilities (N, K) float64) of the evaluator on `images`
    (uint8 (N, C, H, W) or float in [-1, 1]). Features are the input of the last Linear layer."""
    head = _last_linear(evaluator)
    device = model_device(evaluator)
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
        with no_grad():
            for start in range(0, len(images), batch_size):
                x = as_float_batch(images[start:start + batch_size], device)
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

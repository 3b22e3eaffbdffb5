"""Drawing images from a generator without disturbing it.

A DCGAN generator has batch norm. The training command draws its sample grids
in training mode (batch statistics, as the generator was trained), so each call
here saves G's running statistics and puts them back afterwards: looking at the
samples never changes the model. No graph is recorded (no_grad).

A conditional generator (models.conditional.ConditionalGenerator) also takes the class of
each sample: `labels`, or classes drawn uniformly when none are given.
"""
import numpy as np

from ..autograd import no_grad
from ..models.conditional import ConditionalGenerator
from ..tensor import tensor


def is_conditional(G):
    return isinstance(G, ConditionalGenerator)


def row_labels(num_classes, n, nrow=8):
    """One class per row of a grid of n images nrow wide: row r shows class r mod num_classes."""
    return (np.arange(n) // nrow) % num_classes


def _call(G, z, labels):
    if not is_conditional(G):
        return G(z)
    if labels is None:
        raise ValueError('a conditional generator needs the class of each sample (labels)')
    return G(z, labels)


def model_device(model):
    """The device of a model's first parameter ('cpu' for a model without parameters)."""
    for p in model.parameters():
        return p.device
    return 'cpu'


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


def generate(G, z, labels=None):
    """G(z) (G(z, labels) for a conditional G) with batch statistics, without a graph and without
    touching G's running statistics."""
    saved = [(b, b.array.copy()) for b in G.buffers()]
    was_training = G.training
    G.train()
    try:
        with no_grad():
            out = _call(G, z, labels)
    finally:
        for b, data in saved:
            b.array = data
        G.train(was_training)
    return out


def sample_generator(G, n, batch_size=500, seed=0, nz=None, mode='batch', labels=None):
    """n samples (float32 NumPy (n, C, H, W) in [-1, 1]) from z ~ N(0, 1) of shape (B, nz, 1, 1).

    z comes from its own seeded generator, so minigan's global random state (and a training
    run's reproducibility) is untouched. mode='batch' runs G's batch norm on batch statistics,
    as the training command draws its sample grids, and restores G's running statistics
    afterwards; mode='eval' uses the running statistics. G's train/eval mode is restored.
    A conditional G draws the classes `labels` (n ints), or classes uniform over its classes
    (from the same seeded generator, after the noise).
    """
    if mode not in ('batch', 'eval'):
        raise ValueError(f"mode is 'batch' or 'eval', got {mode!r}")
    nz = latent_size(G) if nz is None else nz
    device = model_device(G)
    rng = np.random.default_rng(seed)
    if is_conditional(G) and labels is None:
        labels = np.random.default_rng([seed, 7]).integers(0, G.num_classes, n)
    saved = [(b, b.array.copy()) for b in G.buffers()]
    was_training = G.training
    G.train(mode == 'batch')
    out = []
    try:
        with no_grad():
            for start in range(0, n, batch_size):
                b = min(batch_size, n - start)
                z = tensor(rng.standard_normal((b, nz, 1, 1)).astype(np.float32), device=device)
                y = None if labels is None else tensor(np.asarray(labels[start:start + b], np.int64), device=device)
                out.append(_call(G, z, y).numpy().astype(np.float32))
    finally:
        for buf, data in saved:
            buf.array = data
        G.train(was_training)
    return np.concatenate(out)

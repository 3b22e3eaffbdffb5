"""minigan's random numbers: one NumPy Generator, reseeded by manual_seed.

Tensors made on "cuda" are drawn on the host and copied, so a seed gives the
same numbers on either device."""
import numpy as np

from . import backend
from .tensor import Tensor

_generator = np.random.default_rng()
_batch_shard = (0, 1)        # (k, n): this process holds shard k of n of every batch (minigan.distributed)


def manual_seed(seed):
    """Reseed the generator behind randn, rand, dropout masks and weight init."""
    global _generator
    _generator = np.random.default_rng(seed)


def generator():
    return _generator


class Generator:
    """PyTorch's torch.Generator: a stream of its own, e.g. for DataLoader(..., generator=g)."""

    def __init__(self, device='cpu'):
        self.rng = np.random.default_rng()
        self._seed = None

    def manual_seed(self, seed):
        self.rng, self._seed = np.random.default_rng(seed), seed
        return self

    def initial_seed(self):
        return self._seed

    def get_state(self):
        return self.rng.bit_generator.state

    def set_state(self, state):
        self.rng.bit_generator.state = state


def get_rng_state():
    return _generator.bit_generator.state


def set_rng_state(state):
    _generator.bit_generator.state = state


def set_batch_shard(k, n):
    """Declare that this process trains on shard k of n of every global batch (data parallel)."""
    global _batch_shard
    _batch_shard = (int(k), int(n))


def draw_for_batch(draw, shape):
    """draw(shape) for a batch whose first axis is examples. Under data parallel (shard k of n)
    the numbers of the whole global batch are drawn, the same on every process since they
    share the seed, and shard k is returned: a run then draws the same numbers for each
    example whatever the number of processes."""
    k, n = _batch_shard
    if n == 1:
        return draw(shape)
    return np.split(draw((shape[0] * n,) + tuple(shape[1:])), n)[k]


def _shape(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)


def _make(arr, dtype, device, requires_grad):
    arr = arr.astype(np.float32 if dtype is None else dtype, copy=False)   # None: the default, float32
    if device is not None:
        arr = backend.to_device(arr, device)
    return Tensor(arr, requires_grad=requires_grad)


def _refuse_draw_in_capture(call, device):
    """A draw for "cuda" is made on the host and copied: a CUDA graph would replay the same numbers."""
    if device is not None and backend.check_device(device) == 'cuda':
        backend.refuse_during_capture(
            f'{call}(..., device="cuda"), a random draw on the host',
            'a graph records its copy once, so every replay would reuse one draw (or stale data); draw it '
            'before each replay and pass it in as an input of the step, as GraphedGANStep does with its noise')


def randn(*shape, dtype=np.float32, device=None, requires_grad=False):
    _refuse_draw_in_capture('mg.randn', device)
    return _make(_generator.standard_normal(_shape(shape)), dtype, device, requires_grad)


def rand(*shape, dtype=np.float32, device=None, requires_grad=False):
    _refuse_draw_in_capture('mg.rand', device)
    return _make(_generator.random(_shape(shape)), dtype, device, requires_grad)


def randint(low, high=None, size=None, dtype=np.int64, device=None, *, shape=None):
    """Integers in [low, high); randint(high, size) draws from [0, high), as in PyTorch."""
    size = shape if size is None else size
    if size is None:
        low, high, size = 0, low, high
    _refuse_draw_in_capture('mg.randint', device)
    return _make(_generator.integers(low, high, size=_shape((size,))), dtype or np.int64, device, False)


def batch_randn(*shape, dtype=np.float32, device=None):
    """randn for one batch of examples (noise z): the same numbers per example on any number of processes."""
    return _make(draw_for_batch(_generator.standard_normal, _shape(shape)), dtype, device, False)


def batch_rand(*shape, dtype=np.float32, device=None):
    """rand for one batch of examples (WGAN-GP's mixing weights), sharded like batch_randn."""
    return _make(draw_for_batch(_generator.random, _shape(shape)), dtype, device, False)


def batch_randint(low, high, batch, dtype=np.int64, device=None):
    """randint in [low, high) for one batch of examples (a conditional GAN's fake labels), sharded
    like batch_randn."""
    return _make(draw_for_batch(lambda shape: _generator.integers(low, high, size=shape), (int(batch),)),
                 dtype, device, False)


def zeros(*shape, dtype=np.float32, device=None, requires_grad=False):
    return _make(np.zeros(_shape(shape)), dtype, device, requires_grad)


def ones(*shape, dtype=np.float32, device=None, requires_grad=False):
    return _make(np.ones(_shape(shape)), dtype, device, requires_grad)


def full(shape, value, dtype=None, device=None, requires_grad=False):
    """dtype None follows the value, as in PyTorch: float -> float32, int -> int64, bool -> bool."""
    if dtype is None:
        dtype = np.bool_ if isinstance(value, (bool, np.bool_)) else \
            np.int64 if isinstance(value, (int, np.integer)) else np.float32
    return _make(np.full(_shape((shape,)), value), dtype, device, requires_grad)


def empty(*shape, dtype=np.float32, device=None, requires_grad=False):
    """PyTorch leaves empty() uninitialised; minigan fills it with zeros, so runs stay reproducible."""
    return zeros(*shape, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(x, value, dtype=None, device=None, requires_grad=False):
    return full(x.shape, value, dtype=dtype or x.dtype, device=device or x.device, requires_grad=requires_grad)


def zeros_like(x, dtype=None, device=None, requires_grad=False):
    return full_like(x, 0, dtype, device, requires_grad)


def ones_like(x, dtype=None, device=None, requires_grad=False):
    return full_like(x, 1, dtype, device, requires_grad)


empty_like = zeros_like


def randn_like(x, dtype=None, device=None, requires_grad=False):
    return randn(*x.shape, dtype=dtype or x.dtype, device=device or x.device, requires_grad=requires_grad)


def rand_like(x, dtype=None, device=None, requires_grad=False):
    return rand(*x.shape, dtype=dtype or x.dtype, device=device or x.device, requires_grad=requires_grad)


def randperm(n, dtype=np.int64, device=None):
    """A random permutation of 0..n-1."""
    return _make(_generator.permutation(n), dtype or np.int64, device, False)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """start, start + step, ... below end; int64 when all three are integers, else float32 (as PyTorch)."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = np.int64 if all(isinstance(v, (int, np.integer)) for v in (start, end, step)) else np.float32
    return _make(np.arange(start, end, step), dtype, device, requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    return _make(np.linspace(start, end, steps), dtype, device, requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    return _make(np.eye(n, m), dtype, device, requires_grad)

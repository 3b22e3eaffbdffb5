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
    arr = arr.astype(dtype, copy=False)
    if device is not None:
        arr = backend.to_device(arr, device)
    return Tensor(arr, requires_grad=requires_grad)


def randn(*shape, dtype=np.float32, device=None, requires_grad=False):
    return _make(_generator.standard_normal(_shape(shape)), dtype, device, requires_grad)


def rand(*shape, dtype=np.float32, device=None, requires_grad=False):
    return _make(_generator.random(_shape(shape)), dtype, device, requires_grad)


def randint(low, high, shape, dtype=np.int64, device=None):
    return _make(_generator.integers(low, high, size=_shape((shape,))), dtype, device, False)


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


def full(shape, value, dtype=np.float32, device=None, requires_grad=False):
    return _make(np.full(_shape((shape,)), value), dtype, device, requires_grad)


def zeros_like(x, requires_grad=False):
    return Tensor(backend.get_array_module(x.array).zeros_like(x.array), requires_grad=requires_grad)


def ones_like(x, requires_grad=False):
    return Tensor(backend.get_array_module(x.array).ones_like(x.array), requires_grad=requires_grad)


def randn_like(x, requires_grad=False):
    return randn(*x.shape, dtype=x.dtype, device=x.device, requires_grad=requires_grad)

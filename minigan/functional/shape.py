"""Ops that move elements around without changing them: reshape, permute,
broadcast, sum_to, indexing, cat, stack. Their gradients move them back."""
import numpy as np

from ..autograd import Function
from ..backend import get_array_module
from ..tensor import Tensor


def _dim(d, ndim, extra=0):
    """Dimension `d` of a tensor with `ndim` dims as 0..ndim-1+extra; an IndexError when out of range."""
    n = max(ndim + extra, 1)                     # a 0-d tensor accepts dims 0 and -1, as in PyTorch
    if not -n <= int(d) < n:
        raise IndexError(f'dimension {d} is out of range for a tensor with {ndim} dimensions '
                         f'(expected a dim in [{-n}, {n - 1}])')
    return int(d) % n


class Reshape(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):                      # gx = gy with x's shape
        return reshape(gy, self.in_shape)


def reshape(x, shape):
    shape = tuple(int(s) for s in shape)
    n, known = x.numel(), int(np.prod([s for s in shape if s != -1]))
    if shape.count(-1) > 1 or any(s < -1 for s in shape) or \
            (n != known if -1 not in shape else (known == 0 or n % known)):
        raise ValueError(f'cannot reshape a tensor of shape {x.shape} ({n} elements) into {shape}')
    shape = tuple(n // known if s == -1 else s for s in shape)
    return x if shape == x.shape else Reshape(shape)(x)


class Permute(Function):
    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):                      # gx = gy permuted back
        return permute(gy, tuple(np.argsort(self.axes)))


def permute(x, axes):
    axes = tuple(_dim(a, x.ndim) for a in axes) if x.ndim else tuple(axes)
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f'permute needs a permutation of 0..{x.ndim - 1} for shape {x.shape}, got {axes}')
    return x if axes == tuple(range(x.ndim)) else Permute(axes)(x)


class BroadcastTo(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return get_array_module(x).broadcast_to(x, self.shape)

    def backward(self, gy):                      # gx = sum of gy over the broadcast axes
        return sum_to(gy, self.in_shape)


def broadcast_to(x, shape):
    """x broadcast to `shape` (PyTorch's expand: -1 keeps that dim's size)."""
    shape = tuple(int(s) for s in shape)
    lead = len(shape) - x.ndim
    if lead >= 0:
        shape = tuple(x.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(shape))
    try:
        ok = lead >= 0 and min(shape, default=0) >= 0 and np.broadcast_shapes(x.shape, shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f'cannot broadcast shape {x.shape} to {shape}: each dim must match or be 1 '
                         '(size-1 dims are expanded; new dims go in front)')
    return x if x.shape == shape else BroadcastTo(shape)(x)


class SumTo(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return _sum_to(x, self.shape)

    def backward(self, gy):                      # gx = gy broadcast back to x's shape
        return broadcast_to(gy, self.in_shape)


def _sum_to(a, shape):
    """Sum array `a` over leading and size-1 axes so that it has `shape`."""
    lead = a.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and a.shape[lead + i] != 1)
    out = a.sum(axis=axes, keepdims=True) if axes else a
    return out.reshape(shape)


def sum_to(x, shape):
    """The adjoint of broadcasting: sum `x` down to `shape`."""
    shape = tuple(shape)
    return x if x.shape == shape else SumTo(shape)(x)


def _raw_index(index):
    if isinstance(index, tuple):
        return tuple(_raw_index(i) for i in index)
    if isinstance(index, list):
        return np.asarray(index)
    return index.array if isinstance(index, Tensor) else index


class GetItem(Function):
    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.in_shape = x.shape
        return x[self.index]

    def backward(self, gy):                      # gx = zeros with gy scattered (added) at index
        return GetItemGrad(self.index, self.in_shape)(gy)


class GetItemGrad(Function):
    def __init__(self, index, shape):
        self.index, self.shape = index, shape

    def forward(self, gy):
        xp = get_array_module(gy)
        gx = xp.zeros(self.shape, dtype=gy.dtype)
        if _is_basic(self.index):
            gx[self.index] = gy                  # ints and slices never repeat an element: a plain write
        else:
            xp.add.at(gx, self.index, gy)        # add.at: repeated indices accumulate
        return gx

    def backward(self, ggx):                     # the adjoint of a scatter is a gather
        return getitem(ggx, self.index)


def _is_basic(index):
    """True for an index made only of ints, slices, None and Ellipsis (no index arrays, no masks)."""
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (slice, int, np.integer)) and not isinstance(i, bool)
               for i in items)


def getitem(x, index):
    return GetItem(_raw_index(index))(x)


class Cat(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        self.sizes = [x.shape[self.axis] for x in xs]
        return get_array_module(xs[0]).concatenate(xs, axis=self.axis)

    def backward(self, gy):                      # each input gets its slice of gy
        bounds = np.cumsum([0] + self.sizes)
        return tuple(getitem(gy, (slice(None),) * self.axis + (slice(int(a), int(b)),)) if need else None
                     for a, b, need in zip(bounds[:-1], bounds[1:], self.needs_input_grad))


def cat(tensors, dim=0, *, axis=None):
    tensors = list(tensors)
    if not tensors:
        raise ValueError('cat needs at least one tensor')
    if tensors[0].ndim == 0:
        raise ValueError('cat cannot join 0-d tensors: use mg.stack, or reshape them to 1-d first')
    axis = _dim(dim if axis is None else axis, tensors[0].ndim)
    for t in tensors[1:]:
        if t.ndim != tensors[0].ndim or any(a != b for i, (a, b) in enumerate(zip(t.shape, tensors[0].shape))
                                            if i != axis):
            raise ValueError(f'cat along dim {axis}: shapes {tensors[0].shape} and {t.shape} do not match')
    return Cat(axis)(*tensors)


def stack(tensors, dim=0, *, axis=None):
    tensors = list(tensors)
    if not tensors:
        raise ValueError('stack needs at least one tensor')
    axis = _dim(dim if axis is None else axis, tensors[0].ndim, extra=1)
    if any(t.shape != tensors[0].shape for t in tensors):
        raise ValueError(f'stack needs tensors of one shape, got {[t.shape for t in tensors]}')
    return cat([unsqueeze(t, axis) for t in tensors], axis)


def flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return reshape(x, (1,))
    start, end = _dim(start_dim, x.ndim), _dim(end_dim, x.ndim)
    if start > end:
        raise ValueError(f'flatten: start_dim {start_dim} comes after end_dim {end_dim} for shape {x.shape}')
    return reshape(x, x.shape[:start] + (-1,) + x.shape[end + 1:])


def squeeze(x, dim=None):
    """Drop size-1 dims: all of them, or those of `dim` (an int or a tuple) that have size 1."""
    if dim is None:
        return reshape(x, tuple(n for n in x.shape if n != 1))
    dims = {_dim(d, x.ndim) for d in (dim if isinstance(dim, (tuple, list)) else (dim,))}
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if not (i in dims and n == 1)))


def unsqueeze(x, dim):
    dim = _dim(dim, x.ndim, extra=1)
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])

"""Reductions: sum, mean, max/min, var. The gradient of a reduction is its
upstream gradient broadcast back over the reduced axes."""
import numpy as np

from .. import kernel_table
from ..autograd import Function
from ..tensor import Tensor
from .shape import broadcast_to, reshape


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axis = (int(axis),) if isinstance(axis, (int, np.integer)) else tuple(int(a) for a in axis)
    for a in axis:
        if not -ndim <= a < ndim and not (ndim == 0 and a in (0, -1)):
            raise ValueError(f'axis {a} is out of range for a tensor with {ndim} dimensions')
    return tuple(sorted(a % ndim for a in axis)) if ndim else ()


def _kept_shape(shape, axes):
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Sum(Function):
    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.in_shape = x.shape
        if self.axes == (0, 2, 3) and x.ndim == 4 and not self.keepdims and x.dtype in (np.float32, np.float64):
            return kernel_table.channel_sum(x)            # per-channel sums: a conv bias's gradient
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):                      # gx[i] = gy[reduced i]
        gy = reshape(gy, _kept_shape(self.in_shape, self.axes))
        return broadcast_to(gy, self.in_shape)


class Max(Function):
    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        return x.max(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):                      # gy goes to the maxima, split evenly between ties
        x = self.inputs[0]
        kept = _kept_shape(x.shape, self.axes)
        hit = x.array == self.output().array.reshape(kept)
        share = hit / hit.sum(axis=self.axes, keepdims=True)
        return broadcast_to(reshape(gy, kept), x.shape) * Tensor(share.astype(x.dtype))


def sum(x, axis=None, keepdims=False):
    return Sum(_axes(axis, x.ndim), keepdims)(x)


def mean(x, axis=None, keepdims=False):
    axes = _axes(axis, x.ndim)
    count = 1
    for a in axes:
        count *= x.shape[a]
    return sum(x, axes, keepdims) / count


def max(x, axis=None, keepdims=False):
    if x.numel() == 0:
        raise ValueError('max of an empty tensor')
    return Max(_axes(axis, x.ndim), keepdims)(x)


def min(x, axis=None, keepdims=False):
    return -max(-x, axis, keepdims)


def var(x, axis=None, keepdims=False, unbiased=True):
    axes = _axes(axis, x.ndim)
    count = 1
    for a in axes:
        count *= x.shape[a]
    centred = x - mean(x, axes, keepdims=True)
    return sum(centred * centred, axes, keepdims) / (count - 1 if unbiased else count)



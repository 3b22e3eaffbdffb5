"""Activations: relu, leaky_relu, tanh, sigmoid, softplus, softmax, log_softmax,
dropout, log1p. One Function each; every backward is written with minigan ops,
so all of them can be differentiated twice (and more).

A Function here is named for its op, as the layer in minigan.nn that calls it is (nn.ReLU is
the layer, ReLU here the op it runs, and the name `grad_fn=<ReLU>` shows).
"""
import numbers

import numpy as np

from .. import kernel_table
from ..autograd import Function
from ..backend import get_array_module, to_device
from ..random import draw_for_batch, generator
from ..tensor import Tensor
from .reduce import sum as _sum


def _check_tensor(x, op):
    if not isinstance(x, Tensor):
        raise TypeError(f'{op} takes a Tensor, got {type(x).__name__}: wrap it with mg.tensor(...)')
    if x.dtype.kind != 'f':
        raise TypeError(f'{op} needs a floating-point tensor, got {x.dtype}: convert it with .float()')


class ReLU(Function):
    def forward(self, x):                        # max(x, 0): NaN stays NaN
        return kernel_table.leaky_relu(x, 0.0)

    def backward(self, gy):                      # dy = [x > 0] dx  (the mask is a constant)
        return LeakyReLUGrad(self.inputs[0].array, 0.0)(gy)


class LeakyReLU(Function):
    def __init__(self, slope):
        self.slope = slope

    def forward(self, x):
        return kernel_table.leaky_relu(x, self.slope)

    def backward(self, gy):                      # dy = (1 if x > 0 else slope) dx
        return LeakyReLUGrad(self.inputs[0].array, self.slope)(gy)


class LeakyReLUGrad(Function):
    """gy -> gy * (1 if x > 0 else slope) for a fixed x: one pass (kernel_table.leaky_relu_grad)."""

    def __init__(self, x, slope):
        self.x, self.slope = x, slope

    def forward(self, gy):
        return kernel_table.leaky_relu_grad(gy, self.x, self.slope)

    def backward(self, ggx):                     # linear in gy with a constant mask
        return LeakyReLUGrad(self.x, self.slope)(ggx)


class Tanh(Function):
    def forward(self, x):
        return get_array_module(x).tanh(x)

    def backward(self, gy):                      # d tanh(x) = (1 - y²) dx
        y = self.output()
        return gy * (1 - y * y)


class Sigmoid(Function):
    def forward(self, x):                        # e = exp(-|x|) never overflows
        xp = get_array_module(x)
        e = xp.exp(-xp.abs(x))
        r = 1 / (1 + e)
        return xp.where(x >= 0, r, e * r)

    def backward(self, gy):                      # d sigmoid(x) = y (1 - y) dx
        y = self.output()
        return gy * y * (1 - y)


class Softplus(Function):
    def forward(self, x):                        # log(1 + e^x) = max(x, 0) + log1p(e^-|x|)
        xp = get_array_module(x)
        return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, gy):                      # d softplus(x) = sigmoid(x) dx
        return gy * sigmoid(self.inputs[0])


class Log1p(Function):
    def forward(self, x):
        return get_array_module(x).log1p(x)

    def backward(self, gy):                      # d log(1 + x) = dx / (1 + x)
        return gy / (1 + self.inputs[0])


class Softmax(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):                        # shift by the max so exp cannot overflow
        e = get_array_module(x).exp(x - x.max(axis=self.axis, keepdims=True))
        return e / e.sum(axis=self.axis, keepdims=True)

    def backward(self, gy):                      # dx = y (gy - <gy, y>)
        y = self.output()
        return y * (gy - _sum(gy * y, self.axis, keepdims=True))


class LogSoftmax(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):                        # x - logsumexp(x), with the max taken out first
        xp = get_array_module(x)
        shifted = x - x.max(axis=self.axis, keepdims=True)
        return shifted - xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True))

    def backward(self, gy):                      # dx = gy - softmax(x) sum(gy)
        return gy - self.output().exp() * _sum(gy, self.axis, keepdims=True)


class Dropout(Function):
    def __init__(self, mask):
        self.mask = mask

    def forward(self, x):
        return x * self.mask

    def backward(self, gy):                      # dy = mask dx  (the mask is a constant)
        return gy * Tensor(self.mask)


def relu(x):
    """max(x, 0) elementwise."""
    _check_tensor(x, 'relu')
    return ReLU()(x)


def leaky_relu(x, negative_slope=0.01):
    """x where x > 0, else negative_slope * x (F.leaky_relu(x, 0.2) in the GAN discriminators)."""
    _check_tensor(x, 'leaky_relu')
    if not isinstance(negative_slope, numbers.Real):
        raise TypeError(f'leaky_relu: negative_slope must be a number, got {type(negative_slope).__name__}')
    return LeakyReLU(float(negative_slope))(x)


def tanh(x):
    _check_tensor(x, 'tanh')
    return Tanh()(x)


def sigmoid(x):
    """1 / (1 + exp(-x)), computed without overflow for any x."""
    _check_tensor(x, 'sigmoid')
    return Sigmoid()(x)


def softplus(x, beta=1.0):
    """log(1 + exp(beta x)) / beta, in a form that is finite for any x."""
    _check_tensor(x, 'softplus')
    if beta == 1:
        return Softplus()(x)
    return Softplus()(x * beta) / beta


def logsigmoid(x):
    """log(sigmoid(x)) = -softplus(-x), finite for any x."""
    _check_tensor(x, 'logsigmoid')
    return -Softplus()(-x)


def log1p(x):
    """log(1 + x), accurate for small x."""
    _check_tensor(x, 'log1p')
    return Log1p()(x)


def _softmax_axis(x, dim, axis, op):
    _check_tensor(x, op)
    if dim is not None and axis is not None and dim != axis:
        raise TypeError(f'{op}: give dim or axis, not both')
    dim = dim if dim is not None else axis
    if dim is None:
        raise TypeError(f'{op} needs the dimension to normalise over: {op}(x, dim=1) for (N, C) logits')
    if x.ndim == 0:
        raise ValueError(f'{op} needs a tensor with at least one dimension')
    if not isinstance(dim, numbers.Integral) or not -x.ndim <= dim < x.ndim:
        raise ValueError(f'{op}: dim {dim} is out of range for a tensor of shape {x.shape}')
    return int(dim) % x.ndim


def softmax(x, dim=None, *, axis=None):
    """exp(x) / sum(exp(x)) along dim."""
    return Softmax(_softmax_axis(x, dim, axis, 'softmax'))(x)


def log_softmax(x, dim=None, *, axis=None):
    """x - logsumexp(x) along dim: finite even for logits of +-1000."""
    return LogSoftmax(_softmax_axis(x, dim, axis, 'log_softmax'))(x)


def dropout(x, p=0.5, training=True):
    """Zero each element with probability p and scale the others by 1 / (1 - p).

    The mask is drawn from minigan.random.generator(), so mg.manual_seed fixes it.
    Identity when not training or p == 0; all zeros when p == 1.
    """
    _check_tensor(x, 'dropout')
    if not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ValueError(f'dropout probability has to be between 0 and 1, but got {p}')
    if not training or p == 0:
        return x
    keep = draw_for_batch(generator().random, x.shape) < 1 - p   # on the host: a seed fixes it on any device
    if p == 1:
        mask = np.zeros(x.shape, dtype=x.dtype)
    else:
        mask = keep.astype(x.dtype) / x.dtype.type(1 - p)
    return Dropout(to_device(mask, x.device))(x)


class PReLU(Function):
    """y = x for x > 0, w·x otherwise, with a learned slope w per channel (axis 1) or one for all."""

    def forward(self, x, w):
        self.mask = (x > 0).astype(x.dtype)
        return x * (self.mask + (1 - self.mask) * _channel_view(w, x.ndim))

    def backward(self, gy):                      # dx = (1 if x > 0 else w) dy;  dw = Σ gy·x over x ≤ 0
        x, w = self.inputs
        neg = Tensor(1 - self.mask)
        gx = gy * (Tensor(self.mask) + neg * w.reshape(_channel_shape(w, x.ndim))) \
            if self.needs_input_grad[0] else None
        gw = _sum_to_channels(gy * x * neg, w.shape) if self.needs_input_grad[1] else None
        return gx, gw


def _channel_shape(w, ndim):
    """The shape that broadcasts a slope of shape (C,) along axis 1 of an ndim-d input (or (1,) everywhere)."""
    return (1, w.shape[0]) + (1,) * (ndim - 2) if w.shape[0] > 1 else (1,) * max(ndim, 1)


def _channel_view(w, ndim):
    return w.reshape(_channel_shape(w, ndim))


def _sum_to_channels(t, w_shape):
    """Sum over every axis but the channel axis (all of them for a single slope), to w's shape."""
    axes = tuple(i for i in range(t.ndim) if not (w_shape[0] > 1 and i == 1))
    return _sum(t, axes).reshape(w_shape)


def prelu(x, weight):
    """max(0, x) + weight · min(0, x); weight has shape (1,) or (C,) for C = x.shape[1]."""
    _check_tensor(x, 'prelu')
    if not isinstance(weight, Tensor) or weight.ndim != 1:
        raise ValueError('prelu: weight must be a 1-D Tensor of shape (1,) or (channels,)')
    c = weight.shape[0]
    if c != 1 and (x.ndim < 2 or x.shape[1] != c):
        raise ValueError(f'prelu: a weight of {c} slopes needs an input with {c} channels on axis 1, '
                         f'got shape {x.shape}')
    return PReLU()(x, weight)


def dropout2d(x, p=0.5, training=True):
    """Zero each whole channel (an (H, W) plane) with probability p, scale the others by 1 / (1 - p).

    Input (N, C, H, W), or (C, H, W); the mask is drawn from minigan.random.generator()."""
    _check_tensor(x, 'dropout2d')
    if not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ValueError(f'dropout probability has to be between 0 and 1, but got {p}')
    if x.ndim not in (3, 4):
        raise ValueError(f'dropout2d takes (N, C, H, W) or (C, H, W) input, got shape {x.shape}')
    if not training or p == 0:
        return x
    planes = x.shape[:-2] + (1, 1)
    keep = generator().random(planes) < 1 - p
    mask = np.zeros(planes, x.dtype) if p == 1 else keep.astype(x.dtype) / x.dtype.type(1 - p)
    return x * Tensor(to_device(mask, x.device))

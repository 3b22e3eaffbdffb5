"""Weight initialisers, in place on a tensor's data, with PyTorch's names and formulas.

Random values come from minigan.random.generator() (reseeded by mg.manual_seed),
are drawn on the host in float64, then cast to the tensor's dtype and copied to
its device, so a seed gives the same weights on CPU and GPU.
"""
import math

import numpy as np

from .. import backend
from .. import random as _random
from ..tensor import Tensor


def _fill(tensor, values):
    if not isinstance(tensor, Tensor):
        raise TypeError(f'init functions take a minigan Tensor, got {type(tensor).__name__}')
    values = np.asarray(values)
    tensor.array[...] = backend.to_device(values.astype(tensor.dtype, copy=False), tensor.device)
    return tensor


def calculate_gain(nonlinearity, param=None):
    """The std gain PyTorch recommends for a nonlinearity (relu: sqrt 2, tanh: 5/3, ...)."""
    linear = ('linear', 'conv1d', 'conv2d', 'conv3d', 'conv_transpose1d', 'conv_transpose2d',
              'conv_transpose3d', 'sigmoid')
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == 'tanh':
        return 5.0 / 3
    if nonlinearity == 'relu':
        return math.sqrt(2.0)
    if nonlinearity == 'leaky_relu':
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f'negative_slope {param!r} is not a valid number')
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == 'selu':
        return 3.0 / 4
    raise ValueError(f'unsupported nonlinearity {nonlinearity!r}')


def _calculate_fan_in_and_fan_out(tensor):
    """fan_in = size(1) * receptive field, fan_out = size(0) * receptive field (PyTorch's rule;
    for a ConvTranspose2d weight (C_in, C_out, k, k) this makes fan_in = C_out k k)."""
    shape = tensor.shape
    if len(shape) < 2:
        raise ValueError(f'fan in and fan out need a tensor with at least 2 dims, got shape {shape}')
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _calculate_correct_fan(tensor, mode):
    mode = mode.lower()
    if mode not in ('fan_in', 'fan_out'):
        raise ValueError(f'mode {mode!r} is not supported: use "fan_in" or "fan_out"')
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == 'fan_in' else fan_out


def uniform_(tensor, a=0.0, b=1.0):
    """Fill with U(a, b)."""
    if not a <= b:
        raise ValueError(f'uniform_ needs a <= b, got a={a}, b={b}')
    return _fill(tensor, _random.generator().uniform(a, b, size=tensor.shape))


def normal_(tensor, mean=0.0, std=1.0):
    """Fill with N(mean, std^2)."""
    if std < 0:
        raise ValueError(f'normal_ needs std >= 0, got {std}')
    return _fill(tensor, _random.generator().normal(mean, std, size=tensor.shape))


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0):
    """Fill with N(mean, std^2) restricted to [a, b] (rejection sampling)."""
    if not a < b:
        raise ValueError(f'trunc_normal_ needs a < b, got a={a}, b={b}')
    gen = _random.generator()
    out = np.empty(tensor.shape).ravel()
    filled = 0
    while filled < out.size:
        draw = gen.normal(mean, std, size=max(2 * (out.size - filled), 16))
        draw = draw[(draw >= a) & (draw <= b)][:out.size - filled]
        out[filled:filled + draw.size] = draw
        filled += draw.size
    return _fill(tensor, out.reshape(tensor.shape))


def constant_(tensor, val):
    return _fill(tensor, np.full(tensor.shape, val))


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor, gain=1.0):
    """U(-a, a) with a = gain sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(2.0 / float(fan_in + fan_out)) * math.sqrt(3.0)
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain=1.0):
    """N(0, std^2) with std = gain sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)))


def kaiming_uniform_(tensor, a=0, mode='fan_in', nonlinearity='leaky_relu'):
    """U(-bound, bound) with bound = gain sqrt(3 / fan) (He et al., 2015).
    Linear and Conv layers use a = sqrt(5), which gives bound = 1 / sqrt(fan_in)."""
    fan = _calculate_correct_fan(tensor, mode)
    if fan == 0:
        return tensor
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a=0, mode='fan_in', nonlinearity='leaky_relu'):
    """N(0, std^2) with std = gain / sqrt(fan)."""
    fan = _calculate_correct_fan(tensor, mode)
    if fan == 0:
        return tensor
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan))


def orthogonal_(tensor, gain=1.0):
    """A (semi-)orthogonal matrix over the flattened trailing dims, times gain (Saxe et al., 2013)."""
    if tensor.ndim < 2:
        raise ValueError(f'orthogonal_ needs a tensor with at least 2 dims, got shape {tensor.shape}')
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    flat = _random.generator().standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, gain * q.reshape(tensor.shape))


# PyTorch's older names without the trailing underscore
uniform, normal, constant = uniform_, normal_, constant_
xavier_uniform, xavier_normal = xavier_uniform_, xavier_normal_
kaiming_uniform, kaiming_normal = kaiming_uniform_, kaiming_normal_

"""Batch normalisation, as torch.nn.functional.batch_norm, for (N, C) and (N, C, H, W) inputs.

Statistics are per channel C, over the other axes (M values per channel).
Training mode normalises with the batch mean and biased variance, so the
gradient flows *through* the statistics; its backward is the fused
BatchNormGrad kernel, whose own backward (written with minigan ops) gives
exact second and higher derivatives, as the WGAN-GP penalty needs.

A Function here is named for its op, as the layer in minigan.nn that calls it is (nn.BatchNorm is
the layer, BatchNorm here the op it runs, and the name `grad_fn=<BatchNorm>` shows).
"""
import numbers

from .. import kernel_table
from ..autograd import Function
from ..backend import get_array_module
from ..tensor import Tensor
from .reduce import mean, sum as _sum
from .shape import reshape


class BatchNorm(Function):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, statistics per channel."""

    def __init__(self, training, momentum, eps, running_mean, running_var):
        self.training, self.momentum, self.eps = training, momentum, eps
        self.running_mean, self.running_var = running_mean, running_var   # arrays or None

    def forward(self, x, weight, bias):
        xp = get_array_module(x)
        self.bshape = (1, x.shape[1]) + (1,) * (x.ndim - 2)   # broadcasts a (C,) vector against x
        count = x.size // x.shape[1]
        if self.training:                        # batch statistics; var is biased: used to normalise
            y, self.mean, var, self.invstd = kernel_table.batch_norm_forward(x, weight, bias, self.eps)
            m = self.momentum                                 # torch's update, in place on the buffers
            if self.running_mean is not None:
                self.running_mean[...] = m * self.mean + (1 - m) * self.running_mean
            if self.running_var is not None:                  # unbiased variance, as torch keeps it
                self.running_var[...] = m * var * (count / (count - 1)) + (1 - m) * self.running_var
            return y
        self.mean, var = self.running_mean.copy(), self.running_var   # copied: later calls update them
        centred = x - self.mean.reshape(self.bshape)
        self.invstd = 1 / xp.sqrt(var + self.eps)
        scale = self.invstd if weight is None else self.invstd * weight
        y = centred
        y *= scale.reshape(self.bshape)
        if bias is not None:
            y += bias.reshape(self.bshape)
        return y

    def backward(self, gy):
        x, weight, bias = self.inputs
        need_x, need_w, need_b = self.needs_input_grad
        if self.training:                        # through the batch statistics: see BatchNormGrad
            gx, gw, gb = BatchNormGrad(self.eps, self.mean, self.invstd)(x, weight, gy)
        else:                                    # constant statistics: y = w (x - mean) invstd + b
            mean_, invstd = Tensor(self.mean.reshape(self.bshape)), Tensor(self.invstd.reshape(self.bshape))
            scale = invstd if weight is None else invstd * reshape(weight, self.bshape)
            gx = gy * scale if need_x else None
            gw = _sum(gy * ((x - mean_) * invstd), (0,) + tuple(range(2, x.ndim))) if need_w else None
            gb = _sum(gy, (0,) + tuple(range(2, x.ndim))) if need_b else None
        return (gx if need_x else None), (gw if need_w else None), (gb if need_b else None)


class BatchNormGrad(Function):
    """(x, w, g) -> (gx, gw, gb), the training-mode gradients of batch norm, as one array kernel.

    With x̂ = (x - μ) r, r = 1 / sqrt(σ² + eps), per-channel means mean(.) and
    P(v) = v - mean(v) - x̂ mean(x̂ v) (the projection that the statistics impose):
        gx = w r P(g),   gw = sum(g x̂),   gb = sum(g).
    """

    def __init__(self, eps, mean, invstd):
        self.eps, self.mean, self.invstd = eps, mean, invstd

    def forward(self, x, w, g):
        return kernel_table.batch_norm_backward(x, w, g, self.mean, self.invstd)

    def backward(self, ggx, ggw, ggb):
        """Cotangents a = ggx, c = ggw, d = ggb of L = <a, gx> + <c, gw> + <d, gb>. P is self-adjoint and
        dx̂ = r P(dx), dr = -r² mean(x̂ dx), which give (all means per channel; ḡ = mean(g), m = mean(g x̂),
        n = mean(a x̂), q = mean(a (g - ḡ))):
            dL/dg = w r P(a) + c x̂ + d
            dL/dw = r sum(a P(g))
            dL/dx = -w r² (q - m n) x̂ + r (c - w r n) P(g) - w r² m P(a)
        The statistics are recomputed here from x with minigan ops, so every order stays exact."""
        x, w, g = self.inputs
        need_x, need_w, need_g = self.needs_input_grad
        axes = (0,) + tuple(range(2, x.ndim))
        bshape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        avg = lambda v: mean(v, axes, keepdims=True)                            # noqa: E731
        centred = x - avg(x)
        r = (avg(centred * centred) + self.eps) ** -0.5
        xhat = centred * r
        wb = 1 if w is None else reshape(w, bshape)
        a, c, d = ggx, reshape(ggw, bshape), reshape(ggb, bshape)
        g_mean, m, n = avg(g), avg(g * xhat), avg(a * xhat)
        p_g = g - g_mean - xhat * m
        p_a = a - avg(a) - xhat * n
        gx = gw = gg = None
        if need_x:
            q = avg(a * (g - g_mean))
            gx = -wb * r * r * (q - m * n) * xhat + r * (c - wb * r * n) * p_g - wb * r * r * m * p_a
        if need_w:
            gw = reshape(_sum(a * p_g * r, axes, keepdims=True), w.shape)
        if need_g:
            gg = wb * r * p_a + c * xhat + d
        return gx, gw, gg


def _check_vector(t, name, channels, dtype):
    if t is None:
        return None
    if not isinstance(t, Tensor):
        raise TypeError(f'batch_norm: {name} must be a Tensor of shape ({channels},) or None, '
                        f'got {type(t).__name__}')
    if t.shape != (channels,):
        raise ValueError(f'batch_norm: {name} has shape {t.shape}, but the input has {channels} channels: '
                         f'it needs shape ({channels},)')
    if t.dtype != dtype:
        raise TypeError(f'batch_norm: {name} is {t.dtype} but the input is {dtype}: convert one of them')
    return t


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """torch.nn.functional.batch_norm for (N, C) and (N, C, H, W) inputs.

    training=True: normalise with the batch statistics (biased variance), and when
    running_mean/running_var are given update them in place (running_var with the
    unbiased variance): r <- (1 - momentum) r + momentum stat.
    training=False: normalise with running_mean/running_var.
    weight (scale) and bias (shift) are optional (C,) tensors.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f'batch_norm takes a Tensor, got {type(x).__name__}')
    if x.dtype.kind != 'f':
        raise TypeError(f'batch_norm needs a floating-point input, got {x.dtype}')
    if x.ndim < 2:
        raise ValueError(f'batch_norm takes (N, C), (N, C, L) or (N, C, H, W) input, got shape {x.shape}: '
                         'add a batch axis with x.reshape(1, -1)')
    channels = x.shape[1]
    running_mean = _check_vector(running_mean, 'running_mean', channels, x.dtype)
    running_var = _check_vector(running_var, 'running_var', channels, x.dtype)
    weight = _check_vector(weight, 'weight', channels, x.dtype)
    bias = _check_vector(bias, 'bias', channels, x.dtype)
    for name, t in (('running_mean', running_mean), ('running_var', running_var)):
        if t is not None and t.requires_grad:
            raise ValueError(f'batch_norm: {name} requires grad, but running statistics are buffers: '
                             'pass a tensor with requires_grad=False')
    for name, t in (('running_mean', running_mean), ('running_var', running_var),
                    ('weight', weight), ('bias', bias)):
        if t is not None and t.device != x.device:
            raise ValueError(f'batch_norm: {name} is on {t.device} but the input is on {x.device}: move it with .to()')
    if not isinstance(momentum, numbers.Real) or not isinstance(eps, numbers.Real) or eps < 0:
        raise ValueError(f'batch_norm: momentum and eps must be numbers (eps >= 0), got {momentum!r} and {eps!r}')
    if training:
        count = x.numel() // channels
        if count <= 1:
            raise ValueError(f'Expected more than 1 value per channel when training, got input size {x.shape}: '
                             'use a batch larger than 1, or eval mode')
    elif running_mean is None or running_var is None:
        raise ValueError('batch_norm in eval mode (training=False) needs running_mean and running_var')
    fn = BatchNorm(bool(training), float(momentum), float(eps),
                   None if running_mean is None else running_mean.array,
                   None if running_var is None else running_var.array)
    return fn(x, weight, bias)

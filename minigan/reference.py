"""The NumPy reference of every fused kernel: the readable code that the C++, numba and CUDA
kernels replace, and that tests/test_kernel_table.py checks each of them against.

The convolution's reference is functional/im2col.py. These work on raw arrays, NumPy or
CuPy (the array module is read from the input), so on the GPU they are the 'cupy' column
of kernel_table.py's table. Each computes exactly what the op that calls it needs:

    leaky_relu(x, slope) -> y                      max(x, 0) for slope 0 (NaN stays NaN)
    leaky_relu_grad(gy, x, slope) -> gx            gy * (1 if x > 0 else slope)
    batch_norm_forward(x, weight, bias, eps)       -> (y, mean, biased var, invstd), training mode
    batch_norm_backward(x, weight, g, mean, invstd) -> (gx, gw, gb)
    max_pool2d(x, kernel, stride, padding)         -> (y, arg): arg = i * kw + j of each maximum
    max_pool2d_grad(gy, arg, hw, kernel, stride, padding) -> gx
    channel_sum(x), add_channel_bias(y, b), matmul(a, b)
    adam_step, rmsprop_step, sgd_momentum_step     the optimisers' updates, in place
"""
import math

import numpy as np

from .backend import get_array_module
from .functional.im2col import conv_output_size


# ---- activations ---------------------------------------------------------------------------------

def leaky_relu(x, slope):
    """x where x > 0, else slope * x; slope 0 is relu as maximum(x, 0): NaN stays NaN, -inf gives 0."""
    xp = get_array_module(x)
    if slope == 0:
        return xp.maximum(x, 0)
    return xp.where(x > 0, x, x * x.dtype.type(slope))


def leaky_relu_grad(gy, x, slope):
    """gy * (1 if x > 0 else slope), the gradient of leaky_relu at x."""
    return gy * get_array_module(x).where(x > 0, x.dtype.type(1), x.dtype.type(slope))


# ---- per-channel sums (the conv bias and its gradient) -------------------------------------------

def channel_sum(x):
    """x.sum over (N, H, W) of an (N, C, H, W) array: a conv bias's gradient."""
    return x.sum(axis=(0, 2, 3))


def add_channel_bias(y, b):
    """y += b over the channel axis 1, in place (y is a conv's fresh output); returns y."""
    y += b.reshape(1, -1, 1, 1)
    return y


def matmul(a, b):
    """a @ b of 2-D arrays."""
    return a @ b


# ---- batch norm, training mode: statistics per channel (axis 1) over the other axes ---------------

def _per_channel(a):
    """Array a of shape (N, C, ...) viewed as (N, C, M')."""
    return a.reshape(a.shape[0], a.shape[1], -1)


def _channel_sums(a):
    """Sum of array a over every axis but the channel axis 1 (einsum: one pass)."""
    return get_array_module(a).einsum('nci->c', _per_channel(a))


def _channel_dot(a, b):
    """Per-channel sum of a * b, without making the product."""
    return get_array_module(a).einsum('nci,nci->c', _per_channel(a), _per_channel(b))


def batch_norm_forward(x, weight, bias, eps):
    """(y, mean, var, invstd): y = (x - mean) invstd weight + bias, with the batch mean and the
    biased variance per channel, invstd = 1 / sqrt(var + eps). weight and bias may be None."""
    bshape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    count = x.size // x.shape[1]
    mean = _channel_sums(x) / count
    centred = x - mean.reshape(bshape)
    var = _channel_dot(centred, centred) / count
    invstd = 1 / get_array_module(x).sqrt(var + eps)
    scale = invstd if weight is None else invstd * weight
    y = centred
    y *= scale.reshape(bshape)
    if bias is not None:
        y += bias.reshape(bshape)
    return y, mean, var, invstd


def batch_norm_backward(x, weight, g, mean, invstd):
    """(gx, gw, gb) of training-mode batch norm, with x̂ = (x - mean) invstd and r = invstd:
    gx = w r (g - mean(g) - x̂ mean(g x̂)), gw = sum(g x̂), gb = sum(g) (means and sums per channel)."""
    bshape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    count = x.size // x.shape[1]
    centred = x - mean.reshape(bshape)
    gb = _channel_sums(g)
    gw = _channel_dot(g, centred) * invstd
    scale = invstd if weight is None else invstd * weight
    # gx = (w r) g + k1 (x - mean) + k0, with k1, k0 per channel
    k1, k0 = -scale * invstd * gw / count, -scale * gb / count
    gx = g * scale.reshape(bshape)
    centred *= k1.reshape(bshape)
    gx += centred
    gx += k0.reshape(bshape)
    return gx, gw, gb


# ---- max pooling over (N, C, H, W) ---------------------------------------------------------------

class PoolGeometry:
    """Kernel, stride, padding and the input's spatial size: where each window offset reads."""

    def __init__(self, kernel, stride, padding, hw):
        (self.kh, self.kw), (self.sh, self.sw), (self.ph, self.pw) = kernel, stride, padding
        self.h, self.w = hw
        self.oh = conv_output_size(self.h, self.kh, self.sh, self.ph)
        self.ow = conv_output_size(self.w, self.kw, self.sw, self.pw)

    def offsets(self):
        """(index, slice) for each window offset: slice picks that offset of every window."""
        for i in range(self.kh):
            for j in range(self.kw):
                yield i * self.kw + j, (Ellipsis, slice(i, i + self.sh * (self.oh - 1) + 1, self.sh),
                                        slice(j, j + self.sw * (self.ow - 1) + 1, self.sw))

    def pad(self, x, value):
        """x (N, C, H, W) padded with `value` (only as far as a window reads)."""
        if self.ph == 0 and self.pw == 0:
            return x
        xp = get_array_module(x)
        hp, wp = max(self.h + self.ph, (self.oh - 1) * self.sh + self.kh), \
            max(self.w + self.pw, (self.ow - 1) * self.sw + self.kw)
        out = xp.full(x.shape[:2] + (hp, wp), value, dtype=x.dtype)
        out[..., self.ph:self.ph + self.h, self.pw:self.pw + self.w] = x
        return out

    def scatter_add(self, parts, like, copy=None):
        """sum over offsets k of parts(k) (shaped like `like`, N C OH OW) added at offset k's slice -> NCHW.

        copy(k, dst), when given, writes offset k's part into dst itself (for windows that do not overlap).
        """
        xp = get_array_module(like)
        hp = max(self.h + self.ph, (self.oh - 1) * self.sh + self.kh)
        wp = max(self.w + self.pw, (self.ow - 1) * self.sw + self.kw)
        g = xp.zeros(like.shape[:2] + (hp, wp), dtype=like.dtype)
        for k, sl in self.offsets():
            if copy is not None:
                copy(k, g[sl])
            else:
                g[sl] += parts(k)
        return xp.ascontiguousarray(g[..., self.ph:self.ph + self.h, self.pw:self.pw + self.w])


def max_pool2d(x, kernel, stride, padding):
    """(y, arg): the maximum of each window and which offset (i * kw + j) held it, the first on ties."""
    g = PoolGeometry(kernel, stride, padding, x.shape[2:])
    xp = get_array_module(x)
    xpad = g.pad(x, -np.inf)
    slices = [xpad[sl] for _, sl in g.offsets()]
    best = slices[0].copy()
    for v in slices[1:]:
        xp.maximum(best, v, out=best)            # maximum propagates NaN, as torch does
    arg = xp.zeros(best.shape, dtype=np.uint8 if len(slices) < 256 else np.int32)
    for k in range(len(slices) - 1, -1, -1):      # the last write wins: ties go to the first maximum
        xp.copyto(arg, arg.dtype.type(k), where=slices[k] == best)
    return best, arg


def max_pool2d_grad(gy, arg, hw, kernel, stride, padding):
    """gx (N, C, H, W) for an input of spatial size hw: each gy added at its window's argmax."""
    g = PoolGeometry(kernel, stride, padding, hw)
    xp = get_array_module(gy)
    if g.sh >= g.kh and g.sw >= g.kw:            # windows do not overlap: gy * mask written into each slice
        return g.scatter_add(None, gy, copy=lambda k, dst: xp.multiply(gy, arg == k, out=dst))
    zero = gy.dtype.type(0)
    return g.scatter_add(lambda k: xp.where(arg == k, gy, zero), gy)


# ---- optimiser updates, in place (the formulas are in optim/adam.py, rmsprop.py, sgd.py) ----------

def adam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step, v_max=None):
    """One Adam (decoupled: AdamW) update of p, m, v in place; with v_max (amsgrad) the running
    maximum of v is kept there and used. Returns True (done), as the fused kernels do."""
    xp = get_array_module(p)
    if weight_decay != 0:
        if decoupled:
            p *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * p
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * (g * g)
    if v_max is not None:
        xp.maximum(v_max, v, out=v_max)
        v = v_max
    denom = xp.sqrt(v) / math.sqrt(1 - beta2 ** step) + eps
    p -= (lr / (1 - beta1 ** step)) * (m / denom)
    return True


def rmsprop_step(p, g, s, lr, alpha, eps, weight_decay):
    """One RMSprop update of p and the square average s in place (not centred, no momentum)."""
    if weight_decay != 0:
        g = g + weight_decay * p
    s *= alpha
    s += (1 - alpha) * (g * g)
    p -= lr * (g / (get_array_module(p).sqrt(s) + eps))
    return True


def sgd_momentum_step(p, g, buf, lr, momentum, weight_decay):
    """One SGD update with momentum (no dampening, not Nesterov) of p and buf in place."""
    if weight_decay != 0:
        g = g + weight_decay * p
    buf *= momentum
    buf += g
    p -= lr * buf
    return True

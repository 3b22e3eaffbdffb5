"""The C++ column of kernel_table.py's table: thin wrappers over the extension minigan._cpu (csrc/).

Each function takes the arguments of its NumPy reference (functional/im2col.py, reference.py)
and gives the same result. The extension takes C-contiguous float32/float64 arrays of one
dtype; these wrappers make them so (a copy only for non-contiguous or mixed inputs).

Channels last. The conv primitives compute in NHWC, so their results come back as
NCHW-shaped views of NHWC memory (`y.transpose(0, 3, 1, 2)` of an (N, H, W, C)
array): same shapes and values, other strides. The kernels here take such views
without a copy (batch norm, leaky ReLU, max pooling have NHWC variants), so a whole
network runs without a layout change between layers (bench/RESULTS.md has what that
saves); NumPy code that meets such a view works as usual. CHANNELS_LAST = False
restores NCHW results everywhere.
"""
import numpy as np

from . import cpu_ext, reference

CHANNELS_LAST = True
_FLOATS = (np.float32, np.float64)          # the dtypes the extension computes in; others go to the reference
_cpu = cpu_ext.ext()        # minigan._cpu, or None where it was not built (then kernel_table.py never picks these)


def _nhwc(a):
    """The (N, H, W, C) buffer behind `a` when `a` is an NCHW view of channels-last memory, else None."""
    if a.ndim == 4 and not a.flags.c_contiguous:
        t = a.transpose(0, 2, 3, 1)
        if t.flags.c_contiguous:
            return t
    return None


def _act(a, dtype):
    """(array, is_nhwc): an activation as the extension takes it, copying only when needed: the
    NHWC buffer behind an NCHW view of channels-last memory (as _nhwc), else C-contiguous NCHW."""
    if a.ndim == 4 and not a.flags.c_contiguous and a.dtype == dtype:
        t = a.transpose(0, 2, 3, 1)
        if t.flags.c_contiguous:
            return t, True
    return np.ascontiguousarray(a, dtype=dtype), False


def _like(a, t_is_nhwc, dtype):
    """`a` in the same memory order as another activation (NHWC buffer or C-contiguous NCHW)."""
    if t_is_nhwc:
        t = _nhwc(a)
        return t if t is not None and t.dtype == dtype else np.ascontiguousarray(a.transpose(0, 2, 3, 1), dtype)
    return np.ascontiguousarray(a, dtype=dtype)


def _nchw(t, is_nhwc):
    return t.transpose(0, 3, 1, 2) if is_nhwc else t


def _c(a, dtype):
    return np.ascontiguousarray(a, dtype=dtype)


def _dtype(*arrays):
    dt = np.result_type(*arrays)
    if dt not in (np.float32, np.float64):
        raise TypeError(f'the C++ kernels take float32 or float64 arrays, got {dt}')
    return dt


def conv2d_forward(x, w, stride, padding):
    dt = _dtype(x, w)
    xb, xn = _act(x, dt)
    y = _cpu.conv2d_forward(xb, np.ascontiguousarray(w, dt), stride[0], stride[1], padding[0], padding[1], xn,
                            CHANNELS_LAST)
    return y.transpose(0, 3, 1, 2) if CHANNELS_LAST else y


def conv2d_backward_data(gy, w, x_shape, stride, padding):
    dt = _dtype(gy, w)
    if x_shape[0] != gy.shape[0] or x_shape[1] != w.shape[1]:
        raise ValueError(f'conv2d_backward_data: x_shape {x_shape} does not match gy {gy.shape} '
                         f'and w {w.shape}')
    gb, gn = _act(gy, dt)
    gx = _cpu.conv2d_backward_data(gb, _c(w, dt), x_shape[2], x_shape[3], stride[0], stride[1],
                                   padding[0], padding[1], gn, CHANNELS_LAST)
    return gx.transpose(0, 3, 1, 2) if CHANNELS_LAST else gx


def conv2d_backward_weight(x, gy, w_shape, stride, padding):
    dt = _dtype(x, gy)
    if w_shape[0] != gy.shape[1] or w_shape[1] != x.shape[1]:
        raise ValueError(f'conv2d_backward_weight: w_shape {w_shape} does not match x {x.shape} '
                         f'and gy {gy.shape}')
    (xb, xn), (gb, gn) = _act(x, dt), _act(gy, dt)
    return _cpu.conv2d_backward_weight(xb, gb, w_shape[2], w_shape[3], stride[0], stride[1],
                                       padding[0], padding[1], xn, gn)


# ---- fused element-wise kernels: the same math as the NumPy code they replace ----------------------

def _inplace_ok(*arrays):
    """In-place kernels need C-contiguous, writeable arrays of one float dtype (else they return False,
    and kernel_table.py runs the reference)."""
    dt = arrays[0].dtype
    return dt in (np.float32, np.float64) and all(
        a.dtype == dt and a.flags.c_contiguous and a.flags.writeable for a in arrays)


def leaky_relu(x, slope):
    if x.dtype not in _FLOATS:
        return reference.leaky_relu(x, slope)
    xb, xn = _act(x, x.dtype)
    return _nchw(_cpu.leaky_relu(xb, float(slope)), xn)


def leaky_relu_grad(gy, x, slope):
    if x.dtype not in _FLOATS:
        return reference.leaky_relu_grad(gy, x, slope)
    xb, xn = _act(x, x.dtype)
    return _nchw(_cpu.leaky_relu_grad(_like(gy, xn, x.dtype), xb, float(slope)), xn)


def channel_sum(x):
    """x.sum(axis=(0, 2, 3)) of a 4-D float activation (a conv's bias gradient) in one threaded pass."""
    t = _nhwc(x)
    if t is not None:
        return _cpu.channel_sum(t.reshape(-1, t.shape[3]), True)
    x = _c(x, _dtype(x))
    return _cpu.channel_sum(x.reshape(x.shape[0], x.shape[1], -1), False)


def add_channel_bias(y, b):
    """y += b.reshape(1, -1, 1, 1) in place, for a conv's fresh output (NCHW, or an NCHW view of NHWC)."""
    t = _nhwc(y)
    if y.dtype not in _FLOATS or not y.flags.writeable or (t is None and not y.flags.c_contiguous):
        return reference.add_channel_bias(y, b)
    if t is not None:
        _cpu.add_channel_bias(t.reshape(-1, t.shape[3]), np.ascontiguousarray(b, y.dtype), True)
    else:
        _cpu.add_channel_bias(y.reshape(y.shape[0], y.shape[1], -1), np.ascontiguousarray(b, y.dtype), False)
    return y


def _vec(v, dt):
    return None if v is None else _c(v, dt)


def batch_norm_forward(x, weight, bias, eps):
    """(y, mean, biased var, invstd) of training-mode batch norm over channel axis 1."""
    dt = x.dtype
    if dt not in _FLOATS:
        return reference.batch_norm_forward(x, weight, bias, eps)
    t = _nhwc(x)
    if t is not None:
        y, mean, var, invstd = _cpu.batch_norm_forward_nhwc(
            t.reshape(-1, t.shape[3]), _vec(weight, dt), _vec(bias, dt), float(eps))
        return y.reshape(t.shape).transpose(0, 3, 1, 2), mean, var, invstd
    return _cpu.batch_norm_forward(_c(x, dt), _vec(weight, dt), _vec(bias, dt), float(eps))


def batch_norm_backward(x, weight, g, mean, invstd):
    """(gx, gw, gb) of training-mode batch norm."""
    dt = x.dtype
    if dt not in _FLOATS:
        return reference.batch_norm_backward(x, weight, g, mean, invstd)
    t = _nhwc(x)
    if t is not None:
        gt = _like(g, True, dt)
        gx, gw, gb = _cpu.batch_norm_backward_nhwc(
            t.reshape(-1, t.shape[3]), _vec(weight, dt), gt.reshape(-1, t.shape[3]), _c(mean, dt), _c(invstd, dt))
        return gx.reshape(t.shape).transpose(0, 3, 1, 2), gw, gb
    return _cpu.batch_norm_backward(_c(x, dt), _vec(weight, dt), _c(g, dt), _c(mean, dt), _c(invstd, dt))


def adam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """One Adam/AdamW update in place; False (nothing done) when the arrays do not suit the kernel."""
    if not _inplace_ok(p, m, v):
        return False
    _cpu.adam_step(p, _c(g, p.dtype), m, v, lr, beta1, beta2, eps, weight_decay, bool(decoupled),
                            lr / (1 - beta1 ** step), (1 - beta2 ** step) ** 0.5)
    return True


def rmsprop_step(p, g, s, lr, alpha, eps, weight_decay):
    if not _inplace_ok(p, s):
        return False
    _cpu.rmsprop_step(p, _c(g, p.dtype), s, lr, alpha, eps, weight_decay)
    return True


def sgd_momentum_step(p, g, buf, lr, momentum, weight_decay):
    if not _inplace_ok(p, buf):
        return False
    _cpu.sgd_momentum_step(p, _c(g, p.dtype), buf, lr, momentum, weight_decay)
    return True


def max_pool2d(x, kernel, stride, padding):
    """(y, arg): the window maxima and the offset (i * kw + j) of each one, as the reference computes them.
    The argmax is a uint8: windows of 256 offsets or more go to the reference (int32 offsets)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    if kh * kw >= 256 or x.dtype not in _FLOATS:
        return reference.max_pool2d(x, kernel, stride, padding)
    t = _nhwc(x)
    if t is not None:
        y, arg = _cpu.maxpool_forward_nhwc(t, kh, kw, sh, sw, ph, pw)
        return y.transpose(0, 3, 1, 2), arg.transpose(0, 3, 1, 2)
    return _cpu.maxpool_forward(_c(x, x.dtype), kh, kw, sh, sw, ph, pw)


def max_pool2d_grad(gy, arg, hw, kernel, stride, padding):
    """gx: each gy added at its window's argmax (uint8 offsets; other argmax arrays go to the reference)."""
    if arg.dtype != np.uint8 or gy.dtype not in _FLOATS:
        return reference.max_pool2d_grad(gy, arg, hw, kernel, stride, padding)
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    t = _nhwc(arg)
    if t is not None:
        gx = _cpu.maxpool_scatter_nhwc(_like(gy, True, gy.dtype), t, hw[0], hw[1], kh, kw, sh, sw, ph, pw)
        return gx.transpose(0, 3, 1, 2)
    return _cpu.maxpool_scatter(_c(gy, gy.dtype), np.ascontiguousarray(arg, dtype=np.uint8), hw[0], hw[1],
                                         kh, kw, sh, sw, ph, pw)


def _operand(a, dtype):
    """(C-contiguous array, transposed?) holding the 2-D matrix a without a copy where possible."""
    if a.flags.c_contiguous and a.dtype == dtype:
        return a, False
    if a.flags.f_contiguous and a.dtype == dtype:
        return a.T, True
    return np.ascontiguousarray(a, dtype=dtype), False


def matmul(a, b):
    """a @ b for 2-D float arrays, on minigan's threads, so that NumPy's BLAS thread pool never wakes
    beside minigan's OpenMP one (two pools on the same cores stall each other)."""
    dt = np.result_type(a, b)
    if dt not in (np.float32, np.float64):
        return a @ b
    (a2, ta), (b2, tb) = _operand(a, dt), _operand(b, dt)
    return _cpu.matmul(a2, b2, ta, tb)

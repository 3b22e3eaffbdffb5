"""The C++ backend of the dispatcher: thin wrappers over minigan._cpu (csrc/).

The extension takes C-contiguous float32/float64 arrays of one dtype; these
wrappers make them so (a copy only for non-contiguous or mixed inputs).
"""
import numpy as np

from . import cpu_ext


def _c(a, dtype):
    return np.ascontiguousarray(a, dtype=dtype)


def _dtype(*arrays):
    dt = np.result_type(*arrays)
    if dt not in (np.float32, np.float64):
        raise TypeError(f'the C++ kernels take float32 or float64 arrays, got {dt}')
    return dt


def conv2d_forward(x, w, stride, padding):
    dt = _dtype(x, w)
    return cpu_ext.ext().conv2d_forward(_c(x, dt), _c(w, dt), stride[0], stride[1], padding[0], padding[1])


def conv2d_backward_data(gy, w, x_shape, stride, padding):
    dt = _dtype(gy, w)
    if x_shape[0] != gy.shape[0] or x_shape[1] != w.shape[1]:
        raise ValueError(f'conv2d_backward_data: x_shape {x_shape} does not match gy {gy.shape} '
                         f'and w {w.shape}')
    return cpu_ext.ext().conv2d_backward_data(_c(gy, dt), _c(w, dt), x_shape[2], x_shape[3],
                                              stride[0], stride[1], padding[0], padding[1])


def conv2d_backward_weight(x, gy, w_shape, stride, padding):
    dt = _dtype(x, gy)
    if w_shape[0] != gy.shape[1] or w_shape[1] != x.shape[1]:
        raise ValueError(f'conv2d_backward_weight: w_shape {w_shape} does not match x {x.shape} '
                         f'and gy {gy.shape}')
    return cpu_ext.ext().conv2d_backward_weight(_c(x, dt), _c(gy, dt), w_shape[2], w_shape[3],
                                                stride[0], stride[1], padding[0], padding[1])


# ---- fused element-wise kernels: the same math as the NumPy code they replace ----------------------

def _inplace_ok(*arrays):
    """In-place kernels need C-contiguous, writeable arrays of one float dtype (else the caller's NumPy code runs)."""
    dt = arrays[0].dtype
    return dt in (np.float32, np.float64) and all(
        a.dtype == dt and a.flags.c_contiguous and a.flags.writeable for a in arrays)


def leaky_relu(x, slope):
    return cpu_ext.ext().leaky_relu(_c(x, x.dtype), float(slope))


def leaky_relu_grad(gy, x, slope):
    return cpu_ext.ext().leaky_relu_grad(_c(gy, x.dtype), _c(x, x.dtype), float(slope))


def batch_norm_forward(x, weight, bias, eps):
    """(y, mean, biased var, invstd) of training-mode batch norm over channel axis 1."""
    dt = x.dtype
    return cpu_ext.ext().batch_norm_forward(_c(x, dt), None if weight is None else _c(weight, dt),
                                            None if bias is None else _c(bias, dt), float(eps))


def batch_norm_backward(x, weight, g, mean, invstd):
    """(gx, gw, gb) of training-mode batch norm."""
    dt = x.dtype
    return cpu_ext.ext().batch_norm_backward(_c(x, dt), None if weight is None else _c(weight, dt), _c(g, dt),
                                             _c(mean, dt), _c(invstd, dt))


def adam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """One Adam/AdamW update in place; False (nothing done) when the arrays do not suit the kernel."""
    if not _inplace_ok(p, m, v):
        return False
    cpu_ext.ext().adam_step(p, _c(g, p.dtype), m, v, lr, beta1, beta2, eps, weight_decay, bool(decoupled),
                            lr / (1 - beta1 ** step), (1 - beta2 ** step) ** 0.5)
    return True


def rmsprop_step(p, g, s, lr, alpha, eps, weight_decay):
    if not _inplace_ok(p, s):
        return False
    cpu_ext.ext().rmsprop_step(p, _c(g, p.dtype), s, lr, alpha, eps, weight_decay)
    return True


def sgd_momentum_step(p, g, buf, lr, momentum, weight_decay):
    if not _inplace_ok(p, buf):
        return False
    cpu_ext.ext().sgd_momentum_step(p, _c(g, p.dtype), buf, lr, momentum, weight_decay)
    return True


def max_pool2d(x, kernel, stride, padding):
    """(y, arg): the window maxima and the offset (i * kw + j) of each one, as pool.py computes them."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    return cpu_ext.ext().maxpool_forward(_c(x, x.dtype), kh, kw, sh, sw, ph, pw)


def max_pool2d_grad(gy, arg, hw, kernel, stride, padding):
    """gx: each gy added at its window's argmax."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    return cpu_ext.ext().maxpool_scatter(_c(gy, gy.dtype), np.ascontiguousarray(arg, dtype=np.uint8), hw[0], hw[1],
                                         kh, kw, sh, sw, ph, pw)


def _operand(a, dtype):
    """(C-contiguous array, transposed?) holding the 2-D matrix a without a copy where possible."""
    if a.flags.c_contiguous and a.dtype == dtype:
        return a, False
    if a.flags.f_contiguous and a.dtype == dtype:
        return a.T, True
    return np.ascontiguousarray(a, dtype=dtype), False


def matmul(a, b):
    """a @ b for 2-D float arrays, threaded by minigan (NumPy's BLAS pool stays asleep)."""
    dt = np.result_type(a, b)
    if dt not in (np.float32, np.float64):
        return a @ b
    (a2, ta), (b2, tb) = _operand(a, dt), _operand(b, dt)
    return cpu_ext.ext().matmul(a2, b2, ta, tb)

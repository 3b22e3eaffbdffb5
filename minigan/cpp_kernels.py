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

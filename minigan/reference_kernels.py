"""The NumPy backend of the dispatcher: the readable reference kernels, called as they are."""
from .functional import im2col as _im2col


def conv2d_forward(x, w, stride, padding):
    return _im2col.conv2d_forward(x, w, stride, padding)


def conv2d_backward_data(gy, w, x_shape, stride, padding):
    return _im2col.conv2d_backward_data(gy, w, x_shape, stride, padding)


def conv2d_backward_weight(x, gy, w_shape, stride, padding):
    return _im2col.conv2d_backward_weight(x, gy, w_shape, stride, padding)

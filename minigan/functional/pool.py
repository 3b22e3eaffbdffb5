"""2-D max and average pooling (NCHW), differentiable to any order.

Both loop over the kH*kW window offsets only; each offset is one strided slice
of the padded input, as in im2col. Every backward is its own linear Function
whose backward is the forward's linear map again:
    max pool:  MaxPool2d -> MaxPool2dScatter (gy to the argmax) <-> MaxPool2dGather
    avg pool:  AvgPool2d <-> AvgPool2dGrad (gy spread evenly over each window)

A Function here is named for its op, as the layer in minigan.nn that calls it is (nn.MaxPool2d is
the layer, MaxPool2d here the op it runs, and the name `grad_fn=<MaxPool2d>` shows).
"""
from .. import kernel_table
from ..autograd import Function
from ..backend import get_array_module
from ..reference import PoolGeometry
from ..tensor import Tensor
from .im2col import pair as _pair


class MaxPool2d(Function):
    def __init__(self, geometry):
        self.g = geometry

    def _window(self):
        g = self.g
        return (g.kh, g.kw), (g.sh, g.sw), (g.ph, g.pw)

    def forward(self, x):
        best, self.arg = kernel_table.max_pool2d(x, *self._window())   # arg: which offset held each maximum
        return best

    def backward(self, gy):                      # gx = gy routed to each window's argmax
        return MaxPool2dScatter(self.g, self.arg)(gy)


class MaxPool2dScatter(Function):
    """gy (N, C, OH, OW) -> gx (N, C, H, W): each gy added at its window's argmax."""

    def __init__(self, geometry, arg):
        self.g, self.arg = geometry, arg

    def forward(self, gy):
        g = self.g
        return kernel_table.max_pool2d_grad(gy, self.arg, (g.h, g.w), (g.kh, g.kw), (g.sh, g.sw), (g.ph, g.pw))

    def backward(self, ggx):                     # the adjoint of a scatter is the gather at the same places
        return MaxPool2dGather(self.g, self.arg)(ggx)


class MaxPool2dGather(Function):
    """gx (N, C, H, W) -> (N, C, OH, OW): the value at each window's argmax."""

    def __init__(self, geometry, arg):
        self.g, self.arg = geometry, arg

    def forward(self, gx):
        xp = get_array_module(gx)
        gpad = self.g.pad(gx, 0)
        out = xp.zeros(self.arg.shape, dtype=gx.dtype)
        for k, sl in self.g.offsets():
            xp.copyto(out, gpad[sl], where=self.arg == k)
        return out

    def backward(self, gy):                      # the adjoint of a gather is the scatter to the same places
        return MaxPool2dScatter(self.g, self.arg)(gy)


class AvgPool2d(Function):
    def __init__(self, geometry):
        self.g = geometry

    def forward(self, x):
        xpad = self.g.pad(x, 0)
        total = get_array_module(x).zeros((x.shape[0], x.shape[1], self.g.oh, self.g.ow), dtype=x.dtype)
        for _, sl in self.g.offsets():
            total += xpad[sl]
        total *= x.dtype.type(1.0 / (self.g.kh * self.g.kw))
        return total

    def backward(self, gy):                      # gx = each gy spread evenly over its window
        return AvgPool2dGrad(self.g)(gy)


class AvgPool2dGrad(Function):
    def __init__(self, geometry):
        self.g = geometry

    def forward(self, gy):
        scaled = gy * gy.dtype.type(1.0 / (self.g.kh * self.g.kw))
        return self.g.scatter_add(lambda k: scaled, gy)

    def backward(self, ggx):                     # the adjoint of spreading is averaging
        return AvgPool2d(self.g)(ggx)


def _geometry(name, x, kernel_size, stride, padding):
    if not isinstance(x, Tensor):
        raise TypeError(f'{name}: input must be a minigan Tensor, got {type(x).__name__}')
    if x.ndim != 4:
        raise ValueError(f'{name}: expected a 4-D input (N, C, H, W), got shape {x.shape}')
    if x.dtype.kind != 'f':
        raise TypeError(f'{name}: input has dtype {x.dtype}; pooling needs floating point: use x.float()')
    k = _pair(kernel_size, 'kernel_size')
    s = k if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) \
        else _pair(stride, 'stride')
    p = _pair(padding, 'padding')
    if min(k) < 1 or min(s) < 1 or min(p) < 0:
        raise ValueError(f'{name}: kernel_size and stride must be >= 1 and padding >= 0, '
                         f'got kernel_size={kernel_size}, stride={stride}, padding={padding}')
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f'{name}: padding {padding} must be at most half the kernel size {kernel_size}')
    g = PoolGeometry(k, s, p, x.shape[2:])
    if g.oh < 1 or g.ow < 1:
        raise ValueError(f'{name}: input of spatial size {x.shape[2:]} is smaller than the '
                         f'{k[0]}x{k[1]} window (padding {p}); use a smaller kernel_size')
    return g


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Maximum over kernel_size windows moved by stride (default: kernel_size), as torch's max_pool2d.

    Padding adds -inf borders; the output is (N, C, (H + 2 padding - k) // stride + 1, ...).
    """
    return MaxPool2d(_geometry('max_pool2d', x, kernel_size, stride, padding))(x)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Mean over kernel_size windows moved by stride (default: kernel_size), as torch's avg_pool2d
    with count_include_pad=True: zero padding counts in the mean."""
    return AvgPool2d(_geometry('avg_pool2d', x, kernel_size, stride, padding))(x)

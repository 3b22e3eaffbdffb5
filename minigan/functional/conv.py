"""2-D convolution and transposed convolution, differentiable to any order.

Three Functions, one per primitive of im2col.py, each the others' gradient:
    Conv2d(x, w)            forward        = conv2d_forward
    ConvTranspose2d(x, w)   backward-data  = conv2d_backward_data   (conv_transpose2d's forward)
    Conv2dGradWeight(x, gy) backward-weight = conv2d_backward_weight
All three are bilinear, so the gradient of each is built from the other two.
Layouts follow PyTorch: Conv2d weight (C_out, C_in, kH, kW); ConvTranspose2d
weight (C_in, C_out, kH, kW), which is the conv2d weight of the adjoint map.

A Function here is named for its op, as the layer in minigan.nn that calls it is (nn.Conv2d is
the layer, Conv2d here the op it runs, and the name `grad_fn=<Conv2d>` shows).
"""
from .. import kernel_table
from ..autograd import Function
from ..tensor import Tensor
from . import im2col as _ref
from .reduce import sum as _sum


class Conv2d(Function):
    def __init__(self, stride, padding):
        self.stride, self.padding = stride, padding

    def forward(self, x, w, b=None):
        y = kernel_table.conv2d_forward(x, w, self.stride, self.padding)
        return y if b is None else kernel_table.add_channel_bias(y, b)     # in place: y is fresh

    def backward(self, gy):                      # gx = conv^T(gy, w), gw = gy ⋆ x, gb = sum of gy over N, H, W
        x, w = self.inputs[:2]
        need = self.needs_input_grad
        gx = ConvTranspose2d(self.stride, self.padding, x.shape[2:])(gy, w) if need[0] else None
        gw = Conv2dGradWeight(self.stride, self.padding, w.shape)(x, gy) if need[1] else None
        if len(self.inputs) == 2:
            return gx, gw
        return gx, gw, (_sum(gy, (0, 2, 3)) if need[2] else None)


class ConvTranspose2d(Function):
    """The adjoint of Conv2d(stride, padding) in x, producing an output of spatial size out_hw."""

    def __init__(self, stride, padding, out_hw):
        self.stride, self.padding, self.out_hw = stride, padding, tuple(out_hw)

    def forward(self, x, w, b=None):
        out_shape = (x.shape[0], w.shape[1]) + self.out_hw
        y = kernel_table.conv2d_backward_data(x, w, out_shape, self.stride, self.padding)
        return y if b is None else kernel_table.add_channel_bias(y, b)

    def backward(self, gy):                      # gx = conv(gy, w), gw = x ⋆ gy (roles of conv swapped)
        x, w = self.inputs[:2]
        need = self.needs_input_grad
        gx = Conv2d(self.stride, self.padding)(gy, w) if need[0] else None
        gw = Conv2dGradWeight(self.stride, self.padding, w.shape)(gy, x) if need[1] else None
        if len(self.inputs) == 2:
            return gx, gw
        return gx, gw, (_sum(gy, (0, 2, 3)) if need[2] else None)


class Conv2dGradWeight(Function):
    """gw = d<gy, conv2d(x, w)>/dw, as a function of (x, gy)."""

    def __init__(self, stride, padding, w_shape):
        self.stride, self.padding, self.w_shape = stride, padding, tuple(w_shape)

    def forward(self, x, gy):
        return kernel_table.conv2d_backward_weight(x, gy, self.w_shape, self.stride, self.padding)

    def backward(self, ggw):                     # <ggw, gw(x, gy)> = <gy, conv(x, ggw)> = <x, conv^T(gy, ggw)>
        x, gy = self.inputs
        need = self.needs_input_grad
        gx = ConvTranspose2d(self.stride, self.padding, x.shape[2:])(gy, ggw) if need[0] else None
        ggy = Conv2d(self.stride, self.padding)(x, ggw) if need[1] else None
        return gx, ggy


# ---- public wrappers: argument checks a student can act on ----------------------------------------
# They use only what is in this file and Tensor's C-level getters (shape, dtype, ndim), so that a
# reader stepping from nn.Conv2d to the kernel passes no helper module on the way.

def _pair(v, name='value'):
    """An int or an (h, w) pair -> a tuple of two ints (as im2col.pair, which the kernels use)."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f'{name} must be an int or an (h, w) pair, got {v!r}')
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _same_device(a, b):
    """Whether two Tensors are on one device. Arrays of one type are (asked first: it needs no call);
    only a mixed pair, e.g. NumPy and CuPy, is told apart by Tensor.device."""
    return type(a.array) is type(b.array) or a.device == b.device


def _check_common(name, x, w, b, stride, padding):
    for what, t in (('input', x), ('weight', w), ('bias', b)):
        if t is not None and not isinstance(t, Tensor):
            raise TypeError(f'{name}: {what} must be a minigan Tensor, got {type(t).__name__} '
                            '(wrap arrays with mg.tensor)')
    if x.ndim != 4:
        raise ValueError(f'{name}: expected a 4-D input (N, C, H, W), got shape {x.shape}'
                         + ('; add a batch axis with x.unsqueeze(0)' if x.ndim == 3 else ''))
    if w.ndim != 4:
        raise ValueError(f'{name}: expected a 4-D weight, got shape {w.shape}')
    if x.dtype.kind != 'f':
        raise TypeError(f'{name}: input has dtype {x.dtype}; convolution needs floating point: use x.float()')
    if x.dtype != w.dtype:
        raise TypeError(f'{name}: input is {x.dtype} but weight is {w.dtype}; cast one of them '
                        '(x.float() / x.double()) so both match')
    if not _same_device(x, w):
        raise ValueError(f'{name}: input is on {x.device} but weight is on {w.device}; move one with .to()')
    s, p = _pair(stride, 'stride'), _pair(padding, 'padding')
    if min(s) < 1:
        raise ValueError(f'{name}: stride must be >= 1, got {stride}')
    if min(p) < 0:
        raise ValueError(f'{name}: padding must be >= 0, got {padding}')
    return s, p


def _check_bias(name, b, w, n_out):
    if b is None:
        return
    if b.shape != (n_out,):
        raise ValueError(f'{name}: bias must have shape ({n_out},) (one per output channel), got {b.shape}')
    if b.dtype != w.dtype:
        raise TypeError(f'{name}: bias is {b.dtype} but weight is {w.dtype}; cast it to match')
    if not _same_device(b, w):
        raise ValueError(f'{name}: bias is on {b.device} but weight is on {w.device}; move it with .to()')


def _unsupported(name, dilation, groups):
    if _pair(dilation, 'dilation') != (1, 1) or groups != 1:
        raise NotImplementedError(f'{name}: only dilation=1 and groups=1 are supported')


def _bias_alias(name, b, bias):
    if bias is not None:
        if b is not None:
            raise TypeError(f'{name}: pass the bias once, as b or as bias=, not both')
        return bias
    return b


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, *, bias=None):
    """2-D cross-correlation, as torch.nn.functional.conv2d.

    x (N, C_in, H, W), w (C_out, C_in, kH, kW), b (C_out,) or None;
    stride and padding are ints or (h, w) pairs. Returns (N, C_out, OH, OW)
    with OH = (H + 2 padding - kH) // stride + 1.
    """
    b = _bias_alias('conv2d', b, bias)
    _unsupported('conv2d', dilation, groups)
    s, p = _check_common('conv2d', x, w, b, stride, padding)
    if x.shape[1] != w.shape[1]:
        raise ValueError(f'conv2d: input has {x.shape[1]} channels but the weight {w.shape} expects '
                         f'{w.shape[1]} (weight layout is (C_out, C_in, kH, kW))')
    _check_bias('conv2d', b, w, w.shape[0])
    kh, kw = w.shape[2:]
    if x.shape[2] + 2 * p[0] < kh or x.shape[3] + 2 * p[1] < kw:
        raise ValueError(f'conv2d: input of spatial size {x.shape[2:]} with padding {p} is smaller than '
                         f'the {kh}x{kw} kernel; use a larger input, more padding or a smaller kernel')
    return Conv2d(s, p)(x, w, b)


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *, bias=None):
    """2-D transposed convolution (the gradient of conv2d with respect to its input), as
    torch.nn.functional.conv_transpose2d.

    x (N, C_in, H, W), w (C_in, C_out, kH, kW), b (C_out,) or None. Returns
    (N, C_out, OH, OW) with OH = (H - 1) stride - 2 padding + kH + output_padding.
    """
    b = _bias_alias('conv_transpose2d', b, bias)
    _unsupported('conv_transpose2d', dilation, groups)
    s, p = _check_common('conv_transpose2d', x, w, b, stride, padding)
    op = _pair(output_padding, 'output_padding')
    if x.shape[1] != w.shape[0]:
        raise ValueError(f'conv_transpose2d: input has {x.shape[1]} channels but the weight {w.shape} '
                         f'expects {w.shape[0]} (weight layout is (C_in, C_out, kH, kW))')
    _check_bias('conv_transpose2d', b, w, w.shape[1])
    if not all(0 <= o < st for o, st in zip(op, s)):
        raise ValueError(f'conv_transpose2d: output_padding {output_padding} must be >= 0 and smaller '
                         f'than the stride {stride}')
    kh, kw = w.shape[2:]
    out_hw = tuple((n - 1) * st - 2 * pd + k + o for n, st, pd, k, o in zip(x.shape[2:], s, p, (kh, kw), op))
    if min(out_hw) < 1:
        raise ValueError(f'conv_transpose2d: the output size {out_hw} would be empty; padding {padding} '
                         f'is too large for a {kh}x{kw} kernel on an input of size {x.shape[2:]}')
    return ConvTranspose2d(s, p, out_hw)(x, w, b)


def conv2d_output_size(hw, kernel, stride=1, padding=0):
    """(OH, OW) of conv2d for an input of spatial size hw."""
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(stride), _pair(padding)
    return _ref.conv_output_size(hw[0], kh, sh, ph), _ref.conv_output_size(hw[1], kw, sw, pw)


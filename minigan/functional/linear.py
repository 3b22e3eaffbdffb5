"""The fully connected layer y = x w^T + b, as torch.nn.functional.linear.

One Function rather than matmul + add: the leading axes are folded into one so
forward and backward are single 2-D GEMMs, the bias is added in place, and the
graph holds one node instead of three.

A Function here is named for its op, as the layer in minigan.nn that calls it is (nn.Linear is
the layer, Linear here the op it runs, and the name `grad_fn=<Linear>` shows).
"""
from .. import kernel_table
from ..autograd import Function
from ..tensor import Tensor
from .reduce import sum as _sum
from .shape import reshape


class Linear(Function):
    def forward(self, x, w, b=None):
        x2 = x.reshape(-1, x.shape[-1])
        y = kernel_table.matmul(x2, w.T) if x.dtype == w.dtype else x2 @ w.T
        if b is not None:
            y += b
        return y.reshape(x.shape[:-1] + (w.shape[0],))

    def backward(self, gy):                      # gx = gy w, gw = gy^T x, gb = sum of gy over leading axes
        x, w = self.inputs[:2]
        need = self.needs_input_grad
        gy2 = reshape(gy, (-1, w.shape[0]))
        gx = reshape(gy2 @ w, x.shape) if need[0] else None
        gw = gy2.T @ reshape(x, (-1, x.shape[-1])) if need[1] else None
        if len(self.inputs) == 2:
            return gx, gw
        return gx, gw, (_sum(gy2, 0) if need[2] else None)


def linear(x, w=None, b=None, *, weight=None, bias=None):
    """y = x @ w.T + b for x (..., in), w (out, in) (PyTorch's layout), b (out,) or None -> (..., out)."""
    if weight is not None:
        if w is not None:
            raise TypeError('linear: pass the weight once, as w or as weight=')
        w = weight
    if w is None:
        raise TypeError('linear: missing the weight (out_features, in_features)')
    if bias is not None:
        if b is not None:
            raise TypeError('linear: pass the bias once, as b or as bias=, not both')
        b = bias
    for what, t in (('input', x), ('weight', w), ('bias', b)):
        if t is not None and not isinstance(t, Tensor):
            raise TypeError(f'linear: {what} must be a minigan Tensor, got {type(t).__name__} '
                            '(wrap arrays with mg.tensor)')
    if x.ndim < 1:
        raise ValueError('linear: the input must have at least one axis (its features), got a scalar')
    if w.ndim != 2:
        raise ValueError(f'linear: the weight must be 2-D (out_features, in_features), got shape {w.shape}')
    if x.shape[-1] != w.shape[1]:
        raise ValueError(f'linear: input has {x.shape[-1]} features (last axis of {x.shape}) but the weight '
                         f'{w.shape} expects {w.shape[1]} (weight layout is (out_features, in_features))')
    if x.dtype.kind != 'f':
        raise TypeError(f'linear: input has dtype {x.dtype}; use x.float()')
    if x.dtype != w.dtype:
        raise TypeError(f'linear: input is {x.dtype} but weight is {w.dtype}; cast one of them '
                        '(x.float() / x.double()) so both match')
    if x.device != w.device:
        raise ValueError(f'linear: input is on {x.device} but weight is on {w.device}; move one with .to()')
    if b is not None:
        if b.shape != (w.shape[0],):
            raise ValueError(f'linear: bias must have shape ({w.shape[0]},), got {b.shape}')
        if b.dtype != w.dtype or b.device != w.device:
            raise TypeError(f'linear: bias is {b.dtype} on {b.device} but weight is {w.dtype} on {w.device}; '
                            'make them match')
    return Linear()(x, w, b)

"""Elementwise arithmetic and matmul. Broadcasting is NumPy's; each gradient is
summed back to its input's shape with sum_to."""
import numpy as np

from .. import kernel_table
from ..autograd import Function
from ..backend import get_array_module, to_device as _to_device
from ..tensor import Tensor, as_tensor
from .shape import sum_to, permute


def _pair(a, b):
    """Make both operands Tensors; a Python scalar takes the other's dtype."""
    if not isinstance(a, Tensor):
        a = as_tensor(a, like=b)
    if not isinstance(b, Tensor):
        b = as_tensor(b, like=a)
    if a.device != b.device:
        raise ValueError(f'operands are on different devices ({a.device} and {b.device}): move one with .to()')
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f'shapes {a.shape} and {b.shape} do not broadcast together') from None
    # PyTorch's promotion: a float operand keeps its dtype against an integer/bool one
    # (NumPy would turn float32 with int64 into float64)
    if a.dtype.kind == 'f' and b.dtype.kind in 'iub':
        b = cast(b, a.dtype)
    elif b.dtype.kind == 'f' and a.dtype.kind in 'iub':
        a = cast(a, b.dtype)
    return a, b


class Add(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, gy):                      # d(a + b) = da + db
        a, b = self.inputs
        return (sum_to(gy, a.shape) if self.needs_input_grad[0] else None,
                sum_to(gy, b.shape) if self.needs_input_grad[1] else None)


class Sub(Function):
    def forward(self, a, b):
        return a - b

    def backward(self, gy):                      # d(a - b) = da - db
        a, b = self.inputs
        return (sum_to(gy, a.shape) if self.needs_input_grad[0] else None,
                sum_to(-gy, b.shape) if self.needs_input_grad[1] else None)


class Mul(Function):
    def forward(self, a, b):
        return a * b

    def backward(self, gy):                      # d(a b) = b da + a db
        a, b = self.inputs
        ga = sum_to(gy * b, a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(gy * a, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    def forward(self, a, b):
        return a / b

    def backward(self, gy):                      # d(a / b) = da / b - a db / b²
        a, b = self.inputs
        ga = sum_to(gy / b, a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(-gy * a / (b * b), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, gy):                      # d(-x) = -dx
        return -gy


class Pow(Function):
    def forward(self, a, b):
        return a ** b

    def backward(self, gy):                      # d(a^b) = b a^(b-1) da + a^b log(a) db
        a, b = self.inputs
        ga = sum_to(gy * b * a ** (b - 1), a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(gy * self.output() * log(a), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Exp(Function):
    def forward(self, x):
        return get_array_module(x).exp(x)

    def backward(self, gy):                      # d exp(x) = exp(x) dx
        return gy * self.output()


class Log(Function):
    def forward(self, x):
        return get_array_module(x).log(x)

    def backward(self, gy):                      # d log(x) = dx / x
        return gy / self.inputs[0]


class Sqrt(Function):
    def forward(self, x):
        return get_array_module(x).sqrt(x)

    def backward(self, gy):                      # d sqrt(x) = dx / (2 sqrt(x))
        return gy / (2 * self.output())


class Abs(Function):
    def forward(self, x):
        return get_array_module(x).abs(x)

    def backward(self, gy):                      # d|x| = sign(x) dx  (0 at x = 0, as PyTorch)
        x = self.inputs[0]
        return gy * Tensor(get_array_module(x.array).sign(x.array))


class Clamp(Function):
    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def forward(self, x):
        return get_array_module(x).clip(x, self.lo, self.hi)

    def backward(self, gy):                      # dy = dx where lo <= x <= hi, else 0
        x = self.inputs[0].array
        inside = (x >= (self.lo if self.lo is not None else -np.inf)) & \
                 (x <= (self.hi if self.hi is not None else np.inf))
        return gy * Tensor(inside.astype(x.dtype))


class MatMul(Function):
    def forward(self, a, b):
        if a.ndim == b.ndim == 2 and a.dtype == b.dtype:
            return kernel_table.matmul(a, b)
        return a @ b

    def backward(self, gy):                      # d(a b) = da b + a db, gradients via transposes
        a, b = self.inputs
        ga = sum_to(gy @ _mT(b), a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(_mT(a) @ gy, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Cast(Function):
    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        self.in_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):                      # the gradient goes back in x's dtype
        return cast(gy, self.in_dtype)


class ToDevice(Function):
    def __init__(self, device):
        self.device = device

    def forward(self, x):
        self.in_device = 'cuda' if type(x).__module__.startswith('cupy') else 'cpu'
        return _to_device(x, self.device)

    def backward(self, gy):                      # the gradient goes back to x's device
        return to_device(gy, self.in_device)


def _mT(x):
    return permute(x, tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2))


def add(a, b):
    return Add()(*_pair(a, b))


def sub(a, b):
    return Sub()(*_pair(a, b))


def mul(a, b):
    return Mul()(*_pair(a, b))


def div(a, b):
    a, b = _pair(a, b)
    if a.dtype.kind in 'iub' and b.dtype.kind in 'iub':    # true division of integers is float32, as in torch
        a, b = cast(a, np.float32), cast(b, np.float32)
    return Div()(a, b)


def neg(x):
    return Neg()(x)


def pow(a, b):
    a, b = _pair(a, b)
    return Pow()(a, b)


def exp(x):
    return Exp()(x)


def log(x):
    return Log()(x)


def sqrt(x):
    return Sqrt()(x)


def abs(x):
    return Abs()(x)


def clamp(x, min=None, max=None):
    if min is None and max is None:
        raise ValueError('clamp needs at least one of min and max')
    return Clamp(min, max)(x)


def cast(x, dtype):
    dtype = np.dtype(dtype)
    return x if x.dtype == dtype else Cast(dtype)(x)


def to_device(x, device):
    return x if x.device == device else ToDevice(device)(x)


def matmul(a, b):
    """a @ b with NumPy's rules: 1-D operands are promoted to matrices and the added axis dropped."""
    a, b = (x if isinstance(x, Tensor) else as_tensor(x) for x in (a, b))
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError('matmul needs at least 1-D operands; use * for scalars')
    a2 = a.reshape(1, -1) if a.ndim == 1 else a
    b2 = b.reshape(-1, 1) if b.ndim == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise ValueError(f'matmul: shapes {a.shape} and {b.shape} do not fit (inner sizes '
                         f'{a2.shape[-1]} and {b2.shape[-2]} differ)')
    try:
        np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    except ValueError:
        raise ValueError(f'matmul: the batch dims of shapes {a.shape} and {b.shape} do not broadcast') from None
    y = MatMul()(a2, b2)
    if a.ndim == 1:
        y = y.reshape(y.shape[:-2] + y.shape[-1:])
    if b.ndim == 1:
        y = y.reshape(y.shape[:-1])
    return y

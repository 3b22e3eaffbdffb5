"""Tensor: an array (NumPy or CuPy), a flag saying whether it wants a gradient,
and for results of ops a link to the Function that made it.

Operators and methods are thin wrappers over minigan.functional.
"""
import numbers

import numpy as np

from . import autograd, backend
from .device import device as _device

_DEVICES = {'cpu': _device('cpu'), 'cuda': _device('cuda')}


class RequiresGradDtypeError(TypeError, RuntimeError):
    """requires_grad on a non-float tensor (PyTorch raises RuntimeError; TypeError describes it)."""


class Tensor:
    __array_ufunc__ = None     # `ndarray * tensor` defers to Tensor.__rmul__
    __hash__ = object.__hash__  # == is elementwise, so hash by identity as torch does

    def __init__(self, data, requires_grad=False):
        if not hasattr(data, 'dtype') or isinstance(data, np.generic):
            data = np.asarray(data)          # always an array (NumPy reductions return scalars)
        self.array = data
        self.grad = None
        self.creator = None
        self.generation = 0
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_()

    # ---- what it is ----------------------------------------------------
    shape = property(lambda self: tuple(self.array.shape))
    dtype = property(lambda self: self.array.dtype)
    ndim = property(lambda self: self.array.ndim)
    device = property(lambda self: _DEVICES[backend.device_of(self.array)])   # "cpu"/"cuda", a mg.device
    is_leaf = property(lambda self: self.creator is None)
    T = property(lambda self: self.transpose())

    # .array is the raw NumPy/CuPy array; .data is PyTorch's: a detached Tensor sharing that array,
    # so `p.data.normal_(0, 0.02)` or `p.data = t` change p without recording a graph
    @property
    def data(self):
        return Tensor(self.array)

    @data.setter
    def data(self, value):
        self.array = value.array if isinstance(value, Tensor) else value

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self):
        return int(self.array.size)

    def __len__(self):
        return len(self.array)

    def __repr__(self):
        extra = f', device={self.device}' if self.device != 'cpu' else ''
        grad = ', requires_grad=True' if self.requires_grad else ''
        body = np.array2string(self.numpy(), precision=4, separator=', ', prefix='tensor(')
        return f'tensor({body}, dtype={self.dtype}{extra}{grad})'

    # ---- conversions ---------------------------------------------------
    def numpy(self):
        """A host NumPy copy of the data."""
        return np.array(backend.to_device(self.array, 'cpu'), copy=True)

    def __array__(self, dtype=None, copy=None):
        a = backend.to_device(self.array, 'cpu')
        return a if dtype is None else a.astype(dtype)

    def item(self):
        if self.array.size != 1:
            raise ValueError(f'item() needs a single-element tensor, this one has shape {self.shape}')
        return self.array.reshape(()).item()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        return bool(self.item())

    def to(self, device=None, dtype=None, non_blocking=False, copy=False):
        """A tensor on `device` ("cpu"/"cuda") and/or of `dtype`; differentiable, returns self if nothing changes.
        to(other) takes other's device and dtype; non_blocking is accepted (copies are synchronous)."""
        x = self
        if isinstance(device, Tensor):
            device, dtype = device.device, device.dtype
        if isinstance(device, (np.dtype, type)) and dtype is None:
            device, dtype = None, device
        if device is not None and backend.check_device(device) != self.device:
            x = F.to_device(x, backend.check_device(device))
        if dtype is not None and np.dtype(dtype) != x.dtype:
            x = F.cast(x, dtype)
        return x.clone() if copy and x is self else x

    def cpu(self):
        return self.to('cpu')

    def cuda(self):
        return self.to('cuda')

    def float(self):
        return self.to(dtype=np.float32)

    def double(self):
        return self.to(dtype=np.float64)

    def astype(self, dtype):
        return self.to(dtype=dtype)

    # ---- autograd ------------------------------------------------------
    def detach(self):
        """The same data, cut from the graph (sharing the version counter, as in PyTorch)."""
        t = Tensor(self.array)
        t._vc = self._version_counter()
        return t

    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.array.dtype.kind not in 'fc':
            raise RequiresGradDtypeError(f'only floating-point tensors can require grad, this one is '
                                         f'{self.dtype}: make it float first, e.g. x.float()')
        if not requires_grad and self.creator is not None:
            raise RuntimeError('requires_grad can be turned off only on leaf tensors: use detach()')
        self.requires_grad = bool(requires_grad)
        return self

    def backward(self, grad=None, retain_graph=None, create_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's .grad (only leaves keep .grad)."""
        grads = autograd._default_grad_outputs([self], None if grad is None else [grad])
        found = autograd.run_backward([self], grads, None, create_graph, retain_graph)
        for leaf, g in found.values():
            if leaf.creator is not None:
                continue
            if create_graph:
                leaf.grad = g if leaf.grad is None else leaf.grad + g
            elif leaf.grad is not None and getattr(leaf.grad, '_made_by_backward', False) \
                    and leaf.grad.shape == g.shape and leaf.grad.dtype == g.dtype:
                leaf.grad.array += g.array     # into the array an earlier backward made: no new array
            else:
                # .grad gets its own writable array: the engine's gradient may be a read-only
                # broadcast view, or shared with another leaf or with the caller's `grad`
                leaf.grad = Tensor(g.array.copy()) if leaf.grad is None else leaf.grad + g
                leaf.grad._made_by_backward = True

    # ---- arithmetic ----------------------------------------------------
    def __add__(self, other): return F.add(self, other)
    def __radd__(self, other): return F.add(other, self)
    def __sub__(self, other): return F.sub(self, other)
    def __rsub__(self, other): return F.sub(other, self)
    def __mul__(self, other): return F.mul(self, other)
    def __rmul__(self, other): return F.mul(other, self)
    def __truediv__(self, other): return F.div(self, other)
    def __rtruediv__(self, other): return F.div(other, self)
    def __pow__(self, other): return F.pow(self, other)
    def __rpow__(self, other): return F.pow(other, self)
    def __matmul__(self, other): return F.matmul(self, other)
    def __rmatmul__(self, other): return F.matmul(other, self)
    def __neg__(self): return F.neg(self)
    def __abs__(self): return F.abs(self)
    def __pos__(self): return self

    # comparisons give boolean tensors that carry no gradient
    def _compare(self, other, op):
        other = other.array if isinstance(other, Tensor) else other
        return Tensor(op(self.array, other))

    def __lt__(self, other): return self._compare(other, lambda a, b: a < b)
    def __le__(self, other): return self._compare(other, lambda a, b: a <= b)
    def __gt__(self, other): return self._compare(other, lambda a, b: a > b)
    def __ge__(self, other): return self._compare(other, lambda a, b: a >= b)
    def __eq__(self, other): return self._compare(other, lambda a, b: a == b)
    def __ne__(self, other): return self._compare(other, lambda a, b: a != b)

    def __getitem__(self, index): return F.getitem(self, index)

    def __setitem__(self, index, value):
        if self.requires_grad and autograd.is_grad_enabled():
            raise RuntimeError('in-place assignment into a tensor that requires grad would corrupt its '
                               'gradient: build a new tensor, or assign under mg.no_grad()')
        index = index.array if isinstance(index, Tensor) else index
        self.array[index] = value.array if isinstance(value, Tensor) else value
        self._version_counter()[0] += 1

    # ---- methods -------------------------------------------------------
    def exp(self): return F.exp(self)
    def log(self): return F.log(self)
    def sqrt(self): return F.sqrt(self)
    def abs(self): return F.abs(self)
    def clamp(self, min=None, max=None): return F.clamp(self, min, max)
    clip = clamp
    def tanh(self): return F.tanh(self)
    def sigmoid(self): return F.sigmoid(self)
    def relu(self): return F.relu(self)

    def sum(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return F.sum(self, _axis(axis, dim), _keep(keepdims, keepdim))

    def mean(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return F.mean(self, _axis(axis, dim), _keep(keepdims, keepdim))

    def max(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return F.max(self, _axis(axis, dim), _keep(keepdims, keepdim))

    def min(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return F.min(self, _axis(axis, dim), _keep(keepdims, keepdim))

    def var(self, axis=None, keepdims=False, unbiased=True, *, dim=None, keepdim=None):
        return F.var(self, _axis(axis, dim), _keep(keepdims, keepdim), unbiased)

    def argmax(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis = _axis(axis, dim)
        xp = backend.get_array_module(self.array)
        out = xp.argmax(self.array, axis=axis)
        return Tensor(xp.expand_dims(out, axis) if _keep(keepdims, keepdim) and axis is not None else out)

    def reshape(self, *shape): return F.reshape(self, _shape_args(shape))
    view = reshape
    def flatten(self, start_dim=0, end_dim=-1): return F.flatten(self, start_dim, end_dim)
    def permute(self, *dims): return F.permute(self, _shape_args(dims))
    def squeeze(self, dim=None): return F.squeeze(self, dim)
    def unsqueeze(self, dim): return F.unsqueeze(self, dim)
    def expand(self, *shape): return F.broadcast_to(self, _shape_args(shape))
    broadcast_to = expand

    def transpose(self, *dims):
        """transpose(d0, d1) swaps two dims as in PyTorch; transpose() or transpose(axes) permutes as in NumPy."""
        dims = _shape_args(dims)
        if len(dims) == 2:
            from .functional.shape import _dim
            d0, d1 = _dim(dims[0], self.ndim), _dim(dims[1], self.ndim)
            perm = list(range(self.ndim))
            perm[d0], perm[d1] = perm[d1], perm[d0]
            return F.permute(self, tuple(perm))
        return F.permute(self, dims if dims else tuple(reversed(range(self.ndim))))

    # ---- in place, with PyTorch's rules -----------------------------------
    # Each in-place change bumps a version counter, shared with detach() but not with .data (as in
    # PyTorch); backward refuses a tensor whose version moved since a Function recorded it.
    _vc = (0,)        # the version counter; this shared (0,) until the first change gives a tensor its own

    @property
    def _version(self):
        return self._vc[0]

    def _version_counter(self):
        if type(self._vc) is tuple:
            self._vc = [0]
        return self._vc

    def _inplace(self, name, op, *args):
        """self <- op(self, *args) in self's own array; recorded in the graph when grad mode is on."""
        if self.requires_grad and self.creator is None and autograd.is_grad_enabled():
            raise RuntimeError(f'a leaf Variable that requires grad is being used in an in-place operation '
                               f'({name}): do it under `with mg.no_grad():` or on its .data')
        if autograd.is_grad_enabled() and (self.requires_grad or any(
                isinstance(a, Tensor) and a.requires_grad for a in args)):
            autograd.record_inplace(self, op, args)
            return self
        with autograd.no_grad():
            result = op(self, *args)
        self.array[...] = result.array if isinstance(result, Tensor) else result
        self._version_counter()[0] += 1
        return self

    def fill_(self, value):
        return self._inplace('fill_', lambda x, v: _filled(x, v), value)

    def zero_(self):
        return self.fill_(0)

    def normal_(self, mean=0.0, std=1.0):
        """Fill with N(mean, std²), drawn from minigan's seeded generator (mg.manual_seed)."""
        from .random import generator
        if std < 0:
            raise ValueError(f'normal_ expects std >= 0.0, but found std {std}')
        values = generator().normal(mean, std, size=self.shape)
        return self._inplace('normal_', lambda x: _filled(x, values))

    def uniform_(self, a=0.0, b=1.0):
        """Fill with U(a, b), drawn from minigan's seeded generator (mg.manual_seed)."""
        from .random import generator
        if not a <= b:
            raise ValueError(f'uniform_ expects to return a [from, to) range, but found from={a} > to={b}')
        values = generator().uniform(a, b, size=self.shape)
        return self._inplace('uniform_', lambda x: _filled(x, values))

    def clamp_(self, min=None, max=None):
        return self._inplace('clamp_', lambda x: F.clamp(x, min, max))

    clip_ = clamp_

    def add_(self, other, *, alpha=1):
        return self._inplace('add_', lambda x, o: x + (o if alpha == 1 else o * alpha), other)

    def sub_(self, other, *, alpha=1):
        return self._inplace('sub_', lambda x, o: x - (o if alpha == 1 else o * alpha), other)

    def mul_(self, other):
        return self._inplace('mul_', lambda x, o: x * o, other)

    def div_(self, other):
        return self._inplace('div_', lambda x, o: x / o, other)

    def copy_(self, src):
        """Copy src's values (broadcast, cast to self's dtype, moved to self's device); differentiable in src."""
        src = src if isinstance(src, Tensor) else tensor(src)
        return self._inplace('copy_', lambda x, s: F.broadcast_to(s.to(x.device, x.dtype), x.shape), src)

    def __iadd__(self, other): return self.add_(other)
    def __isub__(self, other): return self.sub_(other)
    def __imul__(self, other): return self.mul_(other)
    def __itruediv__(self, other): return self.div_(other)

    # ---- PyTorch's small methods --------------------------------------------
    def eq(self, other): return self == other
    def ne(self, other): return self != other
    def lt(self, other): return self < other
    def gt(self, other): return self > other
    def le(self, other): return self <= other
    def ge(self, other): return self >= other

    def view_as(self, other): return self.reshape(other.shape)
    reshape_as = view_as
    def expand_as(self, other): return self.expand(other.shape)
    def type_as(self, other): return self.to(dtype=other.dtype)

    def tolist(self):
        """Python numbers (nested lists), as PyTorch's tolist()."""
        return self.numpy().tolist()

    def dim(self):
        return self.ndim

    def all(self):
        return Tensor(backend.get_array_module(self.array).all(self.array))

    def any(self):
        return Tensor(backend.get_array_module(self.array).any(self.array))

    def norm(self, p=2, dim=None, keepdim=False):
        """The p-norm over dim (every element by default): (sum |x|^p)^(1/p); p=2 also as 'fro'."""
        if p in (2, 'fro'):
            return (self * self).sum(dim=dim, keepdim=keepdim).sqrt()
        if p == 1:
            return self.abs().sum(dim=dim, keepdim=keepdim)
        if p == float('inf'):
            return self.abs().max(dim=dim, keepdim=keepdim)
        return (self.abs() ** p).sum(dim=dim, keepdim=keepdim) ** (1.0 / p)

    def is_floating_point(self):
        return self.dtype.kind == 'f'

    def clone(self):
        """A copy in a new array; gradients flow back to self."""
        return self + 0 if self.requires_grad else Tensor(self.array.copy())

    def new_zeros(self, *size, dtype=None, device=None): return self.new_full(_shape_args(size), 0, dtype, device)
    def new_ones(self, *size, dtype=None, device=None): return self.new_full(_shape_args(size), 1, dtype, device)
    def new_empty(self, *size, dtype=None, device=None): return self.new_full(_shape_args(size), 0, dtype, device)

    def new_full(self, size, fill_value, dtype=None, device=None):
        """A new tensor of `size` filled with fill_value, with self's dtype and device unless given."""
        xp = backend.array_module(device or self.device)
        return Tensor(xp.full(tuple(size), fill_value, dtype=dtype or self.dtype))

    def new_tensor(self, data, dtype=None, device=None):
        return tensor(data, dtype=dtype or self.dtype, device=device or self.device)

    def pow(self, exponent): return self ** exponent
    def t(self): return self.transpose(0, 1) if self.ndim == 2 else self
    def masked_fill(self, mask, value): return F.masked_fill(self, mask, value)

    def std(self, dim=None, unbiased=True, keepdim=False):
        return self.var(dim=dim, unbiased=unbiased, keepdim=keepdim).sqrt()

    def repeat(self, *sizes):
        """Tile self sizes[i] times along each dim (extra leading sizes add dims), as torch's repeat."""
        sizes = _shape_args(sizes)
        shape = (1,) * (len(sizes) - self.ndim) + self.shape
        tiled = self.reshape(shape)
        spread = tuple(d for pair in zip(sizes, shape) for d in pair)      # (r0, n0, r1, n1, ...)
        inserted = tuple(d for n in shape for d in (1, n))
        return tiled.reshape(inserted).expand(spread).reshape(tuple(r * n for r, n in zip(sizes, shape)))

    def split(self, split_size, dim=0):
        """Pieces of split_size along dim (the last may be smaller), or of the sizes in a list."""
        n = self.shape[dim]
        sizes = list(split_size) if isinstance(split_size, (list, tuple)) else \
            [min(split_size, n - i) for i in range(0, n, split_size)]
        pieces, start = [], 0
        for size in sizes:
            index = [slice(None)] * self.ndim
            index[dim] = slice(start, start + size)
            pieces.append(self[tuple(index)])
            start += size
        return tuple(pieces)

    def chunk(self, chunks, dim=0):
        return self.split(-(-self.shape[dim] // chunks), dim)

    def type(self, dtype=None):
        """type() names the type as PyTorch does ('torch.FloatTensor'); type(t) converts to a dtype, a
        legacy type (mg.FloatTensor, mg.cuda.FloatTensor) or such a name."""
        from .legacy import type_name, convert
        return type_name(self) if dtype is None else convert(self, dtype)

    def long(self): return self.to(dtype=np.int64)
    def int(self): return self.to(dtype=np.int32)
    def half(self): return self.to(dtype=np.float16)
    def bool(self): return self.to(dtype=np.bool_)


def _filled(x, value):
    """A tensor of x's shape, dtype and device holding `value` (a number, an array, or a Tensor)."""
    value = value.array if isinstance(value, Tensor) else value
    xp = backend.get_array_module(x.array)
    out = xp.empty(x.shape, x.dtype)
    out[...] = backend.to_device(np.asarray(value), x.device) if not np.isscalar(value) else value
    return Tensor(out)


def _axis(axis, dim):
    return dim if dim is not None else axis


def _keep(keepdims, keepdim):
    return keepdim if keepdim is not None else keepdims


def _shape_args(args):
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)


# ---- creation ------------------------------------------------------------
def tensor(data, dtype=None, requires_grad=False, device=None):
    """A new leaf tensor. NumPy arrays keep their dtype; Python floats become
    float32 and Python ints int64, as in PyTorch."""
    if isinstance(data, Tensor):
        arr = data.array.copy()
    elif hasattr(data, 'dtype') and hasattr(data, 'shape'):
        arr = data.copy()
    else:
        arr = np.array(data)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        elif arr.dtype.kind in 'iu':
            arr = arr.astype(np.int64)
        elif arr.dtype.kind not in 'fb':
            raise TypeError(f'cannot make a tensor from {type(data).__name__} holding {arr.dtype} values')
    if arr.dtype.kind not in 'fciub':
        raise TypeError(f'cannot make a tensor of dtype {arr.dtype}: use numbers (float, int or bool)')
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    if device is not None:
        arr = backend.to_device(arr, device)
    return Tensor(arr, requires_grad=requires_grad)


def as_tensor(value, like=None):
    """Tensors pass through; scalars take the dtype of `like` (Python floats do not promote float32)."""
    if isinstance(value, Tensor):
        return value
    if like is not None:
        xp = backend.get_array_module(like.array)
        if isinstance(value, numbers.Number) and not isinstance(value, bool):
            if like.dtype.kind == 'f' or isinstance(value, numbers.Integral):
                return Tensor(xp.asarray(value, dtype=like.dtype))
            return Tensor(xp.asarray(value, dtype=np.float32))
        return Tensor(xp.asarray(value))
    return tensor(value)


from . import functional as F  # noqa: E402  (the ops need Tensor defined first)

"""Tensor: an array (NumPy or CuPy), a flag saying whether it wants a gradient,
and for results of ops a link to the Function that made it.

Operators and methods are thin wrappers over minigan.functional; backward()
hands the graph to autograd.run_backward. Both of those modules build Tensors,
so they are imported at the bottom of this file, after Tensor exists.
"""
import numbers
from operator import attrgetter

import numpy as np

from . import backend
from .device import device as _device
from .tensor_inplace import InplaceMethods
from .tensor_torch_methods import TorchMethods

_DEVICES = {'cpu': _device('cpu'), 'cuda': _device('cuda')}


class RequiresGradDtypeError(TypeError, RuntimeError):
    """requires_grad on a non-float tensor (PyTorch raises RuntimeError; TypeError describes it)."""


class Tensor(InplaceMethods, TorchMethods):
    __array_ufunc__ = None     # `ndarray * tensor` defers to Tensor.__rmul__
    __hash__ = object.__hash__  # == is elementwise, so hash by identity as torch does

    # A new tensor's state, read from the class until a tensor sets its own, so that a Tensor needs
    # only its .array (autograd.Function.__call__ makes every op's result this way, without __init__)
    grad = None
    creator = None
    generation = 0
    requires_grad = False

    def __init__(self, data, requires_grad=False):
        if not hasattr(data, 'dtype') or isinstance(data, np.generic):
            data = np.asarray(data)          # always an array (NumPy reductions return scalars)
        self.array = data
        if requires_grad:
            self.requires_grad_()

    # ---- what it is ----------------------------------------------------
    # shape, dtype and ndim are the array's own (NumPy and CuPy shapes are tuples), read by C-level
    # getters: the argument checks of every op ask them, and a getter written in Python would be a
    # call into this file each time (one more frame for a reader stepping through an op)
    shape = property(attrgetter('array.shape'))
    dtype = property(attrgetter('array.dtype'))
    ndim = property(attrgetter('array.ndim'))
    device = property(lambda self: _DEVICES[backend.device_of(self.array)])   # "cpu"/"cuda", a mg.device
    is_leaf = property(lambda self: self.creator is None)
    grad_fn = property(lambda self: self.creator)      # PyTorch's name for the Function that made it
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
        # a result names the op that made it, as PyTorch's grad_fn=<MulBackward0> does
        grad = (f', grad_fn=<{type(self.creator).__name__}>' if self.creator is not None
                else ', requires_grad=True' if self.requires_grad else '')
        body = np.array2string(self.numpy(), precision=4, separator=', ', prefix='tensor(')
        return f'tensor({body}, dtype={self.dtype}{extra}{grad})'

    # ---- conversions ---------------------------------------------------
    def numpy(self):
        """A host NumPy copy of the data."""
        self._refuse_host_read_in_capture('t.numpy()')
        return np.array(backend.to_device(self.array, 'cpu'), copy=True)

    def tolist(self):
        """The values as (nested lists of) Python numbers, as PyTorch's tolist()."""
        self._refuse_host_read_in_capture('t.tolist()')
        return backend.to_device(self.array, 'cpu').tolist()

    def __array__(self, dtype=None, copy=None):
        a = backend.to_device(self.array, 'cpu')
        return a if dtype is None else a.astype(dtype)

    def item(self):
        return self._item('t.item()')

    def __float__(self):
        return float(self._item('float(t)'))

    def __int__(self):
        return int(self._item('int(t)'))

    def __bool__(self):
        return bool(self._item('bool(t) (`if t:`)'))

    def _item(self, call):
        self._refuse_host_read_in_capture(call)
        if self.array.size != 1:
            raise ValueError(f'{call} needs a single-element tensor, this one has shape {self.shape}')
        return self.array.reshape(()).item()

    def _refuse_host_read_in_capture(self, call):
        """Reading a CuPy array on the host waits for the GPU: refused while a CUDA graph is captured
        (cuda_graph.py). NumPy arrays never ask the stream, so the CPU path pays nothing."""
        if backend.is_cupy_array(self.array):
            backend.refuse_during_capture(call, backend.HOST_READ)

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
            d0, d1 = F.shape._dim(dims[0], self.ndim), F.shape._dim(dims[1], self.ndim)
            perm = list(range(self.ndim))
            perm[d0], perm[d1] = perm[d1], perm[d0]
            return F.permute(self, tuple(perm))
        return F.permute(self, dims if dims else tuple(reversed(range(self.ndim))))

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


# The core's one import circle, and why it is here. Tensor's operators call the ops
# (functional) and backward() calls the backward pass (autograd); both of those build Tensors,
# so both import this module. Importing them last, once Tensor is defined, lets each side see the
# other (autograd likewise imports this module on its last line); every other import in minigan points
# down the floors (architecture.md).
from . import autograd  # noqa: E402
from . import functional as F  # noqa: E402

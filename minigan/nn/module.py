"""Module and Parameter: the containers that hold a model's weights.

A Module registers what is assigned to it, in insertion order:
Parameters (weights the optimiser updates), sub-Modules, and buffers (state
that is saved but not trained, like batch-norm running statistics). The names
follow PyTorch's, so ``state_dict()`` keys ("0.weight", "1.running_mean", ...)
match a torch module built the same way and weights can be copied across.
"""
from collections import OrderedDict, namedtuple

import numpy as np

from .. import backend
from ..autograd import no_grad
from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module registers as a trainable weight (requires_grad=True by default)."""

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = np.empty((0,), dtype=np.float32)
        elif isinstance(data, Tensor):
            data = data.array
        elif not hasattr(data, 'dtype'):
            data = np.asarray(data, dtype=np.float32)
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return 'Parameter containing:\n' + super().__repr__()


IncompatibleKeys = namedtuple('IncompatibleKeys', ['missing_keys', 'unexpected_keys'])


def _host_array(value, key):
    """A NumPy (or CuPy) array from a state-dict value: ndarray, minigan Tensor, torch tensor, scalar."""
    if isinstance(value, Tensor):
        return value.array
    if hasattr(value, 'detach') and hasattr(value, 'cpu') and hasattr(value, 'numpy'):   # torch.Tensor
        return value.detach().cpu().numpy()
    if hasattr(value, 'shape') and hasattr(value, 'dtype'):
        return value
    if isinstance(value, (int, float, bool, np.number, list, tuple)):
        return np.asarray(value)
    raise TypeError(f'state_dict entry {key!r} is a {type(value).__name__}: '
                    'expected a NumPy array, a minigan Tensor or a torch tensor')


class Module:
    """Base class of every layer and model.

    Subclasses call ``super().__init__()`` first, then assign Parameters,
    Modules and buffers as attributes, and define ``forward``.
    """
    training = True

    def __init__(self):
        object.__setattr__(self, '_parameters', OrderedDict())
        object.__setattr__(self, '_buffers', OrderedDict())
        object.__setattr__(self, '_modules', OrderedDict())
        object.__setattr__(self, 'training', True)

    # ---- registration --------------------------------------------------
    def _check_initialised(self, name):
        if '_parameters' not in self.__dict__:
            raise AttributeError(f'cannot assign {name!r} before Module.__init__() is called: '
                                 f'call super().__init__() first in {type(self).__name__}.__init__')

    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            self._check_initialised(name)
            self._forget(name)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._check_initialised(name)
            self._forget(name)
            self._modules[name] = value
        elif '_parameters' in self.__dict__ and name in self._parameters:
            if value is not None:
                raise TypeError(f'cannot assign a {type(value).__name__} to parameter {name!r}: '
                                'wrap it in nn.Parameter (or assign None)')
            self._parameters[name] = None
        elif '_modules' in self.__dict__ and name in self._modules:
            if value is not None:
                raise TypeError(f'cannot assign a {type(value).__name__} to sub-module {name!r}: '
                                'assign a Module (or None)')
            self._modules[name] = None
        elif '_buffers' in self.__dict__ and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f'cannot assign a {type(value).__name__} to buffer {name!r}: '
                                'assign a Tensor (or None)')
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name):
        for d in (self._parameters, self._buffers, self._modules):
            d.pop(name, None)
        self.__dict__.pop(name, None)

    def __getattr__(self, name):          # only called when normal lookup fails
        d = self.__dict__
        for store in ('_parameters', '_buffers', '_modules'):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f'{type(self).__name__!r} object has no attribute {name!r}')

    def __delattr__(self, name):
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers)
                      | set(self._modules))

    def register_parameter(self, name, param):
        """Add a Parameter (or None, a declared-but-absent weight such as a disabled bias)."""
        self._check_initialised(name)
        _check_name(name, self, 'parameter')
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f'register_parameter({name!r}) needs an nn.Parameter or None, '
                            f'got {type(param).__name__}')
        self._forget(name)
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """Add a buffer: state saved in state_dict and moved by to(), but not trained."""
        self._check_initialised(name)
        _check_name(name, self, 'buffer')
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f'register_buffer({name!r}) needs a Tensor or None, got {type(tensor).__name__}')
        if not persistent:
            raise NotImplementedError('non-persistent buffers are not supported')
        self._forget(name)
        self._buffers[name] = tensor

    def add_module(self, name, module):
        self._check_initialised(name)
        _check_name(name, self, 'module')
        if module is not None and not isinstance(module, Module):
            raise TypeError(f'add_module({name!r}) needs a Module or None, got {type(module).__name__}')
        self._forget(name)
        self._modules[name] = module

    register_module = add_module

    # ---- iteration -----------------------------------------------------
    def named_modules(self, memo=None, prefix=''):
        """(name, module) for this module and every descendant, depth first, each once."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(memo, prefix + ('.' if prefix else '') + name)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def _named_members(self, store, prefix, recurse):
        seen = set()
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mprefix, m in modules:
            for name, t in getattr(m, store).items():
                if t is None or id(t) in seen:
                    continue
                seen.add(id(t))
                yield mprefix + ('.' if mprefix else '') + name, t

    def named_parameters(self, prefix='', recurse=True):
        """(name, Parameter) in registration order; a shared Parameter appears once."""
        return self._named_members('_parameters', prefix, recurse)

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix='', recurse=True):
        return self._named_members('_buffers', prefix, recurse)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # ---- modes and bulk operations ---------------------------------------
    def train(self, mode=True):
        """Set training mode (batch-norm uses batch statistics, dropout drops) on this module and below."""
        if not isinstance(mode, bool):
            raise TypeError(f'train(mode) takes a bool, got {type(mode).__name__}')
        for m in self.modules():
            object.__setattr__(m, 'training', mode)
        return self

    def eval(self):
        """Evaluation mode: batch-norm uses running statistics, dropout is the identity."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Clear every parameter's .grad (to None, as PyTorch does by default)."""
        for p in self.parameters():
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad = Tensor(p.grad.array * 0)

    def apply(self, fn):
        """Call fn(module) on every sub-module (children first) and then on self; returns self."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def _apply_to_arrays(self, fn, floating_only=False):
        """Replace every parameter's and buffer's array (and .grad) by fn(array), keeping the objects."""
        for m in self.modules():
            for t in list(m._parameters.values()) + list(m._buffers.values()):
                if t is None or (floating_only and t.array.dtype.kind != 'f'):
                    continue
                t.array = fn(t.array)
                if t.grad is not None:
                    t.grad = Tensor(fn(t.grad.array))
        return self

    def to(self, device=None, dtype=None):
        """Move (and/or cast) parameters and buffers in place; returns self.

        ``to("cuda")``, ``to("cpu")``, ``to(np.float64)``, ``to("cuda", np.float32)``.
        Casting touches floating-point tensors only (num_batches_tracked stays int64).
        """
        if isinstance(device, (np.dtype, type)) and dtype is None:
            device, dtype = None, device
        if device is not None:
            device = backend.check_device(device)
            self._apply_to_arrays(lambda a: backend.to_device(a, device))
        if dtype is not None:
            dtype = np.dtype(dtype)
            if dtype.kind != 'f':
                raise TypeError(f'Module.to(dtype) takes a floating-point dtype, got {dtype}')
            self._apply_to_arrays(lambda a: a.astype(dtype, copy=False), floating_only=True)
        return self

    def cpu(self):
        return self.to('cpu')

    def cuda(self):
        return self.to('cuda')

    def float(self):
        return self.to(dtype=np.float32)

    def double(self):
        return self.to(dtype=np.float64)

    # ---- state dict ------------------------------------------------------
    def state_dict(self, prefix=''):
        """OrderedDict name -> NumPy copy, parameters then buffers of each module, depth first
        (PyTorch's names and order)."""
        out = OrderedDict()
        for mprefix, m in self.named_modules(prefix=prefix):
            dot = mprefix + ('.' if mprefix else '')
            for store in (m._parameters, m._buffers):
                for name, t in store.items():
                    if t is not None:
                        out[dot + name] = t.numpy()
        return out

    def _state_slots(self):
        """name -> Tensor for every parameter and buffer, in state_dict order (shared ones under each name)."""
        slots = OrderedDict()
        for mprefix, m in self.named_modules():
            dot = mprefix + ('.' if mprefix else '')
            for store in (m._parameters, m._buffers):
                for name, t in store.items():
                    if t is not None:
                        slots[dot + name] = t
        return slots

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays (NumPy, minigan or torch tensors) into the existing parameters and buffers.

        Values are copied (never aliased) and cast to each tensor's dtype and device.
        With strict=True, missing or unexpected keys raise; shape mismatches always raise.
        Returns (missing_keys, unexpected_keys).
        """
        if not hasattr(state_dict, 'keys'):
            raise TypeError(f'load_state_dict expects a dict name -> array, got {type(state_dict).__name__}')
        slots = self._state_slots()
        missing = [k for k in slots if k not in state_dict]
        unexpected = [k for k in state_dict if k not in slots]
        errors = []
        if strict and (missing or unexpected):
            if missing:
                errors.append('missing keys: ' + ', '.join(repr(k) for k in missing))
            if unexpected:
                errors.append('unexpected keys: ' + ', '.join(repr(k) for k in unexpected))
        arrays = {}
        for key, t in slots.items():
            if key not in state_dict:
                continue
            a = _host_array(state_dict[key], key)
            if tuple(a.shape) != t.shape:
                errors.append(f'shape mismatch for {key!r}: the checkpoint has {tuple(a.shape)}, '
                              f'this model has {t.shape}')
            arrays[key] = a
        if errors:
            raise RuntimeError(f'error(s) loading state_dict into {type(self).__name__}:\n  '
                               + '\n  '.join(errors))
        with no_grad():
            for key, a in arrays.items():
                t = slots[key]
                src = a if backend.is_cupy_array(a) else np.asarray(a)
                t.array[...] = backend.to_device(src, t.device).astype(t.dtype, copy=False)
        return IncompatibleKeys(missing, unexpected)

    # ---- calling ---------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'{type(self).__name__} has no forward(): define forward(self, x)')

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def extra_repr(self):
        """The part inside the parentheses of this module's repr (its constructor arguments)."""
        return ''

    def __repr__(self):
        lines = []
        extra = self.extra_repr()
        if extra:
            lines.extend(extra.split('\n'))
        for name, m in self._modules.items():
            body = repr(m).replace('\n', '\n  ')
            lines.append(f'({name}): {body}')
        if not lines:
            return f'{type(self).__name__}()'
        if not self._modules and len(lines) == 1:
            return f'{type(self).__name__}({lines[0]})'
        return f'{type(self).__name__}(\n  ' + '\n  '.join(lines) + '\n)'


def _check_name(name, module, kind):
    if not isinstance(name, str):
        raise TypeError(f'{kind} name must be a str, got {type(name).__name__}')
    if name == '' or '.' in name:
        raise KeyError(f'{kind} name {name!r} must be non-empty and contain no "."')
    if name in module.__dict__ and name not in ('training',):
        raise KeyError(f'attribute {name!r} already exists on {type(module).__name__}')

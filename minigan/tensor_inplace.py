"""In-place Tensor methods (fill_, zero_, normal_, uniform_, clamp_, add_, sub_, mul_, div_, copy_,
and +=, -=, *=, /=) with PyTorch's rules, and the version counter behind them.

- On a leaf that requires grad they are refused while grad mode is on; under no_grad, or on
  `.data` (a detached Tensor sharing the array), they are allowed.
- Each change bumps the tensor's version counter (shared with detach(), not with .data, as in
  PyTorch). Functions record the versions of their inputs and outputs, and backward refuses a
  tensor that changed since (autograd.Function._check_versions): an error, never a silently
  wrong gradient.
- On a tensor in the graph, in grad mode, the change is recorded as a step of the graph
  (autograd.record_inplace).
Tensor inherits these methods (tensor.py).
"""
import numpy as np

from . import autograd, backend


class InplaceMethods:
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
                getattr(a, 'requires_grad', False) for a in args)):
            autograd.record_inplace(self, op, args)
            return self
        with autograd.no_grad():
            result = op(self, *args)
        self.array[...] = result.array
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
        from .functional import clamp
        return self._inplace('clamp_', lambda x: clamp(x, min, max))

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
        from .functional import broadcast_to
        from .tensor import Tensor, tensor
        src = src if isinstance(src, Tensor) else tensor(src)
        return self._inplace('copy_', lambda x, s: broadcast_to(s.to(x.device, x.dtype), x.shape), src)

    def __iadd__(self, other): return self.add_(other)
    def __isub__(self, other): return self.sub_(other)
    def __imul__(self, other): return self.mul_(other)
    def __itruediv__(self, other): return self.div_(other)


def _filled(x, value):
    """A tensor of x's shape, dtype and device holding `value` (a number, an array, or a Tensor)."""
    from .tensor import Tensor
    value = value.array if isinstance(value, Tensor) else value
    xp = backend.get_array_module(x.array)
    out = xp.empty(x.shape, x.dtype)
    if not np.isscalar(value):                       # an array: onto x's device (CuPy refuses np.asarray)
        value = backend.to_device(value if hasattr(value, 'shape') else np.asarray(value), x.device)
    out[...] = value
    return Tensor(out)

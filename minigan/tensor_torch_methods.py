"""PyTorch's small Tensor methods that training scripts use: comparisons by name (eq, ne, lt, gt,
le, ge), view_as, tolist, dim, clone, norm, std, repeat, split/chunk, new_zeros & co., type and
the dtype shortcuts (long, int, half, bool). Tensor inherits them (tensor.py); each is a few
lines over minigan's differentiable ops, so gradients flow as in PyTorch.
"""
import numpy as np

from . import backend


class TorchMethods:
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
        from .tensor import Tensor
        return Tensor(backend.get_array_module(self.array).all(self.array))

    def any(self):
        from .tensor import Tensor
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
        from .tensor import Tensor
        return self + 0 if self.requires_grad else Tensor(self.array.copy())

    def new_zeros(self, *size, dtype=None, device=None): return self.new_full(_sizes(size), 0, dtype, device)
    def new_ones(self, *size, dtype=None, device=None): return self.new_full(_sizes(size), 1, dtype, device)
    def new_empty(self, *size, dtype=None, device=None): return self.new_full(_sizes(size), 0, dtype, device)

    def new_full(self, size, fill_value, dtype=None, device=None):
        """A new tensor of `size` filled with fill_value, with self's dtype and device unless given."""
        from .tensor import Tensor
        xp = backend.array_module(device or self.device)
        return Tensor(xp.full(tuple(size), fill_value, dtype=dtype or self.dtype))

    def new_tensor(self, data, dtype=None, device=None):
        from .tensor import tensor
        return tensor(data, dtype=dtype or self.dtype, device=device or self.device)

    def pow(self, exponent): return self ** exponent
    def t(self): return self.transpose(0, 1) if self.ndim == 2 else self
    def masked_fill(self, mask, value):
        from .functional import masked_fill
        return masked_fill(self, mask, value)

    def std(self, dim=None, unbiased=True, keepdim=False):
        return self.var(dim=dim, unbiased=unbiased, keepdim=keepdim).sqrt()

    def repeat(self, *sizes):
        """Tile self sizes[i] times along each dim (extra leading sizes add dims), as torch's repeat."""
        sizes = _sizes(sizes)
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


def _sizes(args):
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else tuple(args)

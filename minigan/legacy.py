"""PyTorch's legacy tensor types (torch.FloatTensor, torch.cuda.FloatTensor, ...), still common
in GAN tutorials: `Tensor = torch.cuda.FloatTensor if cuda else torch.FloatTensor`, then
`Tensor(np_array)`, `Tensor(n, 1).fill_(1.0)` and `imgs.type(Tensor)`."""
import numbers

import numpy as np

from .tensor import Tensor, tensor

_NAMES = {'float32': 'FloatTensor', 'float64': 'DoubleTensor', 'float16': 'HalfTensor', 'int64': 'LongTensor',
          'int32': 'IntTensor', 'int16': 'ShortTensor', 'int8': 'CharTensor', 'uint8': 'ByteTensor',
          'bool': 'BoolTensor'}


class LegacyTensorType:
    """A callable standing for one dtype on one device: T(*sizes) gives zeros, T(data) converts data."""

    def __init__(self, dtype, device='cpu'):
        self.dtype, self.device = np.dtype(dtype), device

    def __call__(self, *args):
        if all(isinstance(a, numbers.Integral) for a in args):       # sizes (or none): zeros, not garbage
            return tensor(np.zeros(args or (0,), self.dtype), device=self.device)
        return tensor(args[0], dtype=self.dtype, device=self.device)

    def __repr__(self):
        prefix = 'torch.cuda.' if self.device == 'cuda' else 'torch.'
        return f"<class '{prefix}{_NAMES[self.dtype.name]}'>"


FloatTensor, DoubleTensor, HalfTensor = (LegacyTensorType(t) for t in ('float32', 'float64', 'float16'))
LongTensor, IntTensor, ByteTensor, BoolTensor = (LegacyTensorType(t) for t in ('int64', 'int32', 'uint8', 'bool'))


def type_name(x):
    prefix = 'torch.cuda.' if x.device == 'cuda' else 'torch.'
    return prefix + _NAMES.get(x.dtype.name, x.dtype.name)


def convert(x, target):
    if isinstance(target, LegacyTensorType):
        return x.to(target.device, target.dtype)
    if isinstance(target, str):
        kind = target.rsplit('.', 1)[-1]
        dtype = {v: k for k, v in _NAMES.items()}.get(kind)
        if dtype is None:
            raise ValueError(f'invalid type: {target!r}')
        return x.to('cuda' if '.cuda.' in target else 'cpu', np.dtype(dtype))
    return x.to(dtype=target)

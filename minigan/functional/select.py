"""Choosing elements by a boolean condition: where, masked_fill; and one_hot class encodings."""
import numpy as np

from ..autograd import Function
from ..backend import get_array_module, to_device
from ..tensor import Tensor, as_tensor
from .shape import sum_to


class Where(Function):
    def __init__(self, condition):
        self.condition = condition                   # a boolean array, broadcast against a and b

    def forward(self, a, b):
        return get_array_module(a).where(self.condition, a, b)

    def backward(self, gy):                          # ga = gy where cond, gb = gy elsewhere (summed to shape)
        a, b = self.inputs
        keep = Tensor(self.condition.astype(gy.dtype))
        return (sum_to(gy * keep, a.shape) if self.needs_input_grad[0] else None,
                sum_to(gy * (1 - keep), b.shape) if self.needs_input_grad[1] else None)


def where(condition, input, other):
    """input where condition holds, other elsewhere (broadcast together), as torch.where."""
    condition = condition.array if isinstance(condition, Tensor) else np.asarray(condition)
    like = input if isinstance(input, Tensor) else other if isinstance(other, Tensor) else None
    a, b = as_tensor(input, like=like), as_tensor(other, like=like)
    if a.dtype != b.dtype and a.dtype.kind == b.dtype.kind == 'f':
        a, b = a.to(dtype=np.result_type(a.dtype, b.dtype)), b.to(dtype=np.result_type(a.dtype, b.dtype))
    return Where(to_device(condition.astype(bool), a.device))(a, b)


def masked_fill(x, mask, value):
    """x with `value` where mask is True; the gradient flows to x elsewhere."""
    return where(mask, as_tensor(value, like=x), x)


def one_hot(tensor, num_classes=-1):
    """Class indices (any shape, int64) -> int64 one-hot codes with a trailing class dim, as F.one_hot."""
    labels = tensor.array if isinstance(tensor, Tensor) else np.asarray(tensor)
    if labels.dtype.kind not in 'iu':
        raise TypeError(f'one_hot is only applicable to index tensors (int64), got {labels.dtype}')
    if num_classes == -1:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise RuntimeError(f'one_hot: class values must be in [0, {num_classes - 1}]')
    xp = get_array_module(labels)
    return Tensor((labels[..., None] == xp.arange(num_classes)).astype(np.int64))

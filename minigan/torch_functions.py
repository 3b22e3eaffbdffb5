"""The torch.* functions that training scripts call on tensors (torch.flatten(x, 1), torch.mean,
torch.sigmoid, ...), under PyTorch's names and arguments: each calls minigan's op or method."""
from collections import namedtuple

from . import functional as F
from .tensor import Tensor

MaxMin = namedtuple('MaxMin', ['values', 'indices'])       # torch.return_types.max / min

flatten = F.flatten
exp, log, sqrt, abs, neg = F.exp, F.log, F.sqrt, F.abs, F.neg
tanh, sigmoid, relu = F.tanh, F.sigmoid, F.relu
add, sub, mul, div, pow = F.add, F.sub, F.mul, F.div, F.pow
matmul = mm = F.matmul
softmax, log_softmax = F.softmax, F.log_softmax
squeeze, unsqueeze = F.squeeze, F.unsqueeze


def clamp(x, min=None, max=None):
    return F.clamp(x, min, max)


def sum(x, dim=None, keepdim=False):
    return x.sum(dim=dim, keepdim=keepdim)


def mean(x, dim=None, keepdim=False):
    return x.mean(dim=dim, keepdim=keepdim)


def argmax(x, dim=None, keepdim=False):
    return x.argmax(dim=dim, keepdim=keepdim)


def reshape(x, shape):
    return x.reshape(shape)


def transpose(x, dim0, dim1):
    return x.transpose(dim0, dim1)


def permute(x, dims):
    return x.permute(dims)


def numel(x):
    return x.numel()


def is_tensor(obj):
    return isinstance(obj, Tensor)


def max(input, dim=None, keepdim=False):
    """torch.max: the largest element; with dim, (values, indices) along it; with a Tensor, the elementwise max."""
    return _extreme(input, dim, keepdim, largest=True)


def min(input, dim=None, keepdim=False):
    """torch.min: the smallest element; with dim, (values, indices) along it; with a Tensor, the elementwise min."""
    return _extreme(input, dim, keepdim, largest=False)


def _extreme(x, dim, keepdim, largest):
    if isinstance(dim, Tensor):                       # torch.max(a, b): pick elementwise, gradients to the picked
        other = dim
        pick = Tensor(((x >= other) if largest else (x <= other)).array.astype(x.dtype))
        return x * pick + other * (1 - pick)
    if dim is None:
        return x.max() if largest else x.min()
    values = x.max(dim=dim, keepdim=keepdim) if largest else x.min(dim=dim, keepdim=keepdim)
    order = x if largest else -x
    return MaxMin(values, order.argmax(dim=dim, keepdim=keepdim))

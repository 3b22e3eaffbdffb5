"""The torch.* functions that training scripts call on tensors (torch.flatten(x, 1), torch.mean,
torch.sigmoid, ...), under PyTorch's names and arguments: each calls minigan's op or method."""
from . import functional as F
from .tensor import Tensor

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

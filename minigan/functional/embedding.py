"""embedding: look up rows of a weight matrix by integer index (the class embedding of a
conditional generator). The indices are data, not variables: only the weight gets a gradient.

A Function here is named for its op, as the layer in minigan.nn that calls it is (nn.Embedding is
the layer, Embedding here the op it runs, and the name `grad_fn=<Embedding>` shows).
"""
import numbers

import numpy as np

from ..autograd import Function
from ..backend import get_array_module
from ..tensor import Tensor


class Embedding(Function):
    """weight (num, dim), fixed indices of any shape -> (*indices.shape, dim)."""

    def __init__(self, idx, padding_idx=None):
        self.idx, self.padding_idx = idx, padding_idx

    def forward(self, weight):
        self.num = weight.shape[0]
        return weight[self.idx]

    def backward(self, gy):                      # gW[k] = sum of gy over the positions holding index k
        return EmbeddingGrad(self.idx, self.num, self.padding_idx)(gy)


class EmbeddingGrad(Function):
    """gy (*indices.shape, dim) -> (num, dim): scatter-add rows by index (padding_idx's row stays 0)."""

    def __init__(self, idx, num, padding_idx=None):
        self.idx, self.num, self.padding_idx = idx, num, padding_idx

    def forward(self, gy):
        xp = get_array_module(gy)
        gw = xp.zeros((self.num, gy.shape[-1]), dtype=gy.dtype)
        xp.add.at(gw, self.idx.reshape(-1), gy.reshape(-1, gy.shape[-1]))
        if self.padding_idx is not None:
            gw[self.padding_idx] = 0
        return gw

    def backward(self, ggw):                     # the adjoint of a scatter-add is the gather
        return Embedding(self.idx, self.padding_idx)(ggw)


def embedding(input, weight, padding_idx=None):
    """Rows of `weight` (num_embeddings, embedding_dim) picked by the int64 indices `input`.

    As in PyTorch the gradient flows to `weight` only; with `padding_idx` that row gets none.
    """
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError('embedding takes (indices, weight) as Tensors: wrap them with mg.tensor(...)')
    if input.dtype.kind not in 'iu':
        raise TypeError(f'embedding: indices must be integers (int64), got {input.dtype}: use .long() '
                        'or mg.tensor(labels, dtype=mg.int64)')
    if weight.ndim != 2:
        raise ValueError(f'embedding: weight must be (num_embeddings, embedding_dim), got shape {weight.shape}')
    num = weight.shape[0]
    idx = input.array
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= num):
        raise IndexError(f'embedding: indices must lie in [0, {num - 1}], got values from {int(idx.min())} '
                         f'to {int(idx.max())}')
    if padding_idx is not None:
        if not isinstance(padding_idx, numbers.Integral) or not -num <= padding_idx < num:
            raise ValueError(f'embedding: padding_idx {padding_idx!r} is not a row of a {num}-row weight')
        padding_idx = int(padding_idx) % num
    return Embedding(idx.astype(np.int64, copy=False), padding_idx)(weight)

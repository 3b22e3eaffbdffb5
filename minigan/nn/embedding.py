"""Embedding: a table of learned vectors, one per class (a conditional GAN's label input)."""
from . import init
from ._utils import empty
from .module import Module, Parameter


class Embedding(Module):
    """weight (num_embeddings, embedding_dim) ~ N(0, 1), as in PyTorch; forward(indices) picks rows."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, device=None, dtype=None):
        super().__init__()
        if num_embeddings < 1 or embedding_dim < 1:
            raise ValueError(f'Embedding needs positive sizes, got num_embeddings={num_embeddings}, '
                             f'embedding_dim={embedding_dim}')
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        if padding_idx is not None:
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(f'Embedding: padding_idx {padding_idx} is not a row of {num_embeddings}')
            padding_idx = int(padding_idx) % self.num_embeddings
        self.padding_idx = padding_idx
        self.weight = Parameter(empty((self.num_embeddings, self.embedding_dim), device, dtype))
        self.reset_parameters()

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.array[self.padding_idx] = 0

    def forward(self, input):
        from .. import functional as F
        return F.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self):
        pad = f', padding_idx={self.padding_idx}' if self.padding_idx is not None else ''
        return f'{self.num_embeddings}, {self.embedding_dim}{pad}'

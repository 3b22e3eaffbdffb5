"""Dropout: zeroes each element with probability p in training and scales the rest by 1/(1-p);
the identity in evaluation. Masks come from minigan's seeded generator."""
from .module import Module


class Dropout(Module):
    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f'Dropout probability has to be between 0 and 1, got {p}')
        self.p, self.inplace = p, inplace

    def forward(self, x):
        from .. import functional as F
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f'p={self.p}, inplace={self.inplace}'


class Dropout2d(Dropout):
    """Zeroes whole channels with probability p in training (for conv features); scales the rest by 1/(1-p)."""

    def forward(self, x):
        from .. import functional as F
        return F.dropout2d(x, self.p, self.training)

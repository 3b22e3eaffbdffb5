"""Activation layers: thin Modules over minigan.functional."""
from .module import Module


class ReLU(Module):
    """max(x, 0). `inplace` is accepted for PyTorch compatibility; the result is always a new tensor."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        from .. import functional as F
        return F.relu(x)

    def extra_repr(self):
        return 'inplace=True' if self.inplace else ''


class LeakyReLU(Module):
    """x for x > 0, negative_slope * x otherwise (DCGAN discriminators use 0.2)."""

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, x):
        from .. import functional as F
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f'negative_slope={self.negative_slope}' + (', inplace=True' if self.inplace else '')


class Tanh(Module):
    def forward(self, x):
        from .. import functional as F
        return F.tanh(x)


class Sigmoid(Module):
    def forward(self, x):
        from .. import functional as F
        return F.sigmoid(x)


class Softmax(Module):
    def __init__(self, dim=None):
        super().__init__()
        if dim is None:
            raise ValueError('Softmax needs dim (the class dimension, usually 1)')
        self.dim = dim

    def forward(self, x):
        from .. import functional as F
        return F.softmax(x, self.dim)

    def extra_repr(self):
        return f'dim={self.dim}'


class LogSoftmax(Softmax):
    def forward(self, x):
        from .. import functional as F
        return F.log_softmax(x, self.dim)

"""Activation layers: thin Modules over minigan.functional."""
import numpy as np

from ._utils import empty
from .module import Module, Parameter


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


class PReLU(Module):
    """max(0, x) + a · min(0, x) with a learned slope a: one for all channels (num_parameters=1)
    or one per channel (num_parameters=C), initialised to `init` (0.25, as in PyTorch)."""

    def __init__(self, num_parameters=1, init=0.25, device=None, dtype=None):
        super().__init__()
        if num_parameters < 1:
            raise ValueError(f'PReLU: num_parameters must be positive, got {num_parameters}')
        self.num_parameters = int(num_parameters)
        self.init = float(init)
        self.weight = Parameter(empty((self.num_parameters,), device, dtype))
        self.weight.array[...] = np.asarray(self.init, dtype=self.weight.dtype)

    def forward(self, x):
        from .. import functional as F
        return F.prelu(x, self.weight)

    def extra_repr(self):
        return f'num_parameters={self.num_parameters}'

"""Linear: y = x W^T + b with W of shape (out_features, in_features), as in PyTorch."""
import math

from . import init
from ._utils import empty
from .module import Module, Parameter


class Linear(Module):
    """Fully connected layer. weight (out_features, in_features) ~ U(-1/sqrt(in), 1/sqrt(in))
    (kaiming_uniform_ with a = sqrt 5, PyTorch's default); bias likewise."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        if in_features < 0 or out_features < 0:
            raise ValueError(f'Linear needs non-negative sizes, got in_features={in_features}, '
                             f'out_features={out_features}')
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = Parameter(empty((out_features, in_features), device, dtype))
        if bias:
            self.bias = Parameter(empty((out_features,), device, dtype))
        else:
            self.register_parameter('bias', None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        from .. import functional as F
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f'Linear({self.in_features}, {self.out_features}) got input of shape {x.shape}: '
                             f'its last dim must be {self.in_features} (flatten images first)')
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f'in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}'


class Identity(Module):
    """Returns its input unchanged (a placeholder layer)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x

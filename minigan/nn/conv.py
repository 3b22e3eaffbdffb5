"""Conv2d and ConvTranspose2d with PyTorch's weight layouts and default initialisation.

Conv2d weight: (out_channels, in_channels, kH, kW).
ConvTranspose2d weight: (in_channels, out_channels, kH, kW).
Both: kaiming_uniform_(a = sqrt 5) on the weight, bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
with fan_in = weight.size(1) * kH * kW as PyTorch computes it (for ConvTranspose2d that is
out_channels * kH * kW).
"""
import math

from . import init
from ._utils import empty, pair, check_positive
from .module import Module, Parameter


class _ConvNd(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                 bias, padding_mode, weight_shape, device, dtype):
        super().__init__()
        name = type(self).__name__
        if in_channels <= 0 or out_channels <= 0:
            raise ValueError(f'{name} needs positive channel counts, got in_channels={in_channels}, '
                             f'out_channels={out_channels}')
        if groups != 1:
            raise NotImplementedError(f'{name}: groups={groups} is not supported (only groups=1)')
        if padding_mode != 'zeros':
            raise NotImplementedError(f'{name}: padding_mode={padding_mode!r} is not supported (only "zeros")')
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = pair(kernel_size, 'kernel_size')
        self.stride = pair(stride, 'stride')
        self.padding = pair(padding, 'padding')
        self.dilation = pair(dilation, 'dilation')
        self.groups, self.padding_mode = groups, padding_mode
        check_positive(self.kernel_size, 'kernel_size', name)
        check_positive(self.stride, 'stride', name)
        check_positive(self.dilation, 'dilation', name)
        if min(self.padding) < 0:
            raise ValueError(f'{name}: padding must be non-negative, got {padding}')
        self.weight = Parameter(empty(weight_shape + self.kernel_size, device, dtype))
        if bias:
            self.bias = Parameter(empty((self.out_channels,), device, dtype))
        else:
            self.register_parameter('bias', None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def _check_input(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'{type(self).__name__}({self.in_channels}, {self.out_channels}) expects input '
                             f'of shape (N, {self.in_channels}, H, W), got {x.shape}')

    def _options(self):
        """Keyword arguments for the functional op, only the non-default ones beyond stride/padding."""
        kw = {}
        if self.dilation != (1, 1):
            kw['dilation'] = self.dilation
        return kw

    def extra_repr(self):
        s = (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, '
             f'stride={self.stride}')
        if self.padding != (0, 0):
            s += f', padding={self.padding}'
        if self.dilation != (1, 1):
            s += f', dilation={self.dilation}'
        if getattr(self, 'output_padding', (0, 0)) != (0, 0):
            s += f', output_padding={self.output_padding}'
        if self.bias is None:
            s += ', bias=False'
        return s


class Conv2d(_ConvNd):
    """2-D convolution (cross-correlation, as in PyTorch) over NCHW input."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode='zeros', device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, padding_mode, (int(out_channels), int(in_channels)), device, dtype)

    def forward(self, x):
        from .. import functional as F
        self._check_input(x)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, **self._options())


class ConvTranspose2d(_ConvNd):
    """2-D transposed convolution (the gradient of Conv2d with respect to its input)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 groups=1, bias=True, dilation=1, padding_mode='zeros', device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, padding_mode, (int(in_channels), int(out_channels)), device, dtype)
        self.output_padding = pair(output_padding, 'output_padding')
        if any(op >= max(s, d) for op, s, d in zip(self.output_padding, self.stride, self.dilation)):
            raise ValueError(f'ConvTranspose2d: output_padding {self.output_padding} must be smaller '
                             f'than stride {self.stride} or dilation {self.dilation}')

    def forward(self, x):
        from .. import functional as F
        self._check_input(x)
        kw = self._options()
        if self.output_padding != (0, 0):
            kw['output_padding'] = self.output_padding
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, **kw)

"""MaxPool2d and AvgPool2d over NCHW input (stride defaults to kernel_size, as in PyTorch)."""
from ._utils import pair, squash, check_positive
from .module import Module


class _Pool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        name = type(self).__name__
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        check_positive(pair(self.kernel_size, 'kernel_size'), 'kernel_size', name)
        check_positive(pair(self.stride, 'stride'), 'stride', name)
        k, p = pair(kernel_size, 'kernel_size'), pair(padding, 'padding')
        if any(pi < 0 or pi > ki // 2 for pi, ki in zip(p, k)):
            raise ValueError(f'{name}: padding {padding} must be between 0 and half the kernel size {kernel_size}')

    def _check_input(self, x):
        if x.ndim != 4:
            raise ValueError(f'{type(self).__name__} expects NCHW input (4 dims), got shape {x.shape}')

    def _args(self):
        kw = {}
        if pair(self.padding, 'padding') != (0, 0):
            kw['padding'] = squash(pair(self.padding, 'padding'))
        return squash(pair(self.kernel_size, 'kernel_size')), squash(pair(self.stride, 'stride')), kw

    def extra_repr(self):
        return f'kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}'


class MaxPool2d(_Pool2d):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__(kernel_size, stride, padding)
        if dilation != 1 or return_indices or ceil_mode:
            raise NotImplementedError('MaxPool2d supports only dilation=1, return_indices=False, ceil_mode=False')
        self.dilation, self.return_indices, self.ceil_mode = dilation, return_indices, ceil_mode

    def forward(self, x):
        from .. import functional as F
        self._check_input(x)
        k, s, kw = self._args()
        return F.max_pool2d(x, k, s, **kw)

    def extra_repr(self):
        return super().extra_repr() + f', dilation={self.dilation}, ceil_mode={self.ceil_mode}'


class AvgPool2d(_Pool2d):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__(kernel_size, stride, padding)
        if ceil_mode or divisor_override is not None:
            raise NotImplementedError('AvgPool2d supports only ceil_mode=False and divisor_override=None')
        if not count_include_pad and pair(padding, 'padding') != (0, 0):
            raise NotImplementedError('AvgPool2d supports count_include_pad=False only without padding')
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, x):
        from .. import functional as F
        self._check_input(x)
        k, s, kw = self._args()
        return F.avg_pool2d(x, k, s, **kw)

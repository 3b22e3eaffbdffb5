"""BatchNorm1d and BatchNorm2d: normalise each channel by batch statistics in training,
by running statistics in evaluation, with PyTorch's buffers and update rule
(running_var uses the unbiased batch variance; momentum=None means a cumulative average)."""
import numpy as np

from . import init
from ._utils import empty
from .module import Module, Parameter
from .. import backend
from ..tensor import Tensor


class _BatchNorm(Module):
    _expected_dims = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 device=None, dtype=None, *, bias=True):
        super().__init__()
        if num_features <= 0:
            raise ValueError(f'{type(self).__name__} needs num_features > 0, got {num_features}')
        if eps <= 0:
            raise ValueError(f'{type(self).__name__} needs eps > 0, got {eps}')
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f'{type(self).__name__} needs momentum in [0, 1] (or None), got {momentum}')
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self._has_bias = bool(bias) and affine
        if affine:
            self.weight = Parameter(empty((num_features,), device, dtype))
            if bias:
                self.bias = Parameter(empty((num_features,), device, dtype))
            else:
                self.register_parameter('bias', None)
        else:
            self.register_parameter('weight', None)
            self.register_parameter('bias', None)
        if track_running_stats:
            self.register_buffer('running_mean', Tensor(empty((num_features,), device, dtype)))
            self.register_buffer('running_var', Tensor(empty((num_features,), device, dtype)))
            count = np.zeros((), dtype=np.int64)
            self.register_buffer('num_batches_tracked',
                                 Tensor(backend.to_device(count, device) if device else count))
        else:
            self.register_buffer('running_mean', None)
            self.register_buffer('running_var', None)
            self.register_buffer('num_batches_tracked', None)
        self.reset_parameters()

    def reset_running_stats(self):
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            self.num_batches_tracked.array[...] = 0

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, x):
        from .. import functional as F
        if x.ndim not in self._expected_dims or x.shape[1] != self.num_features:
            dims = ' or '.join(f'{d}D' for d in self._expected_dims)
            raise ValueError(f'{type(self).__name__}({self.num_features}) expects {dims} input with '
                             f'{self.num_features} channels in dim 1, got shape {x.shape}')
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.array += 1
            if self.momentum is None:                  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.item())
        use_batch_stats = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        shape = x.shape
        if x.ndim == 3:                                # (N, C, L) is normalised as (N, C, L, 1)
            x = x.reshape(shape + (1,))
        y = F.batch_norm(x, self.running_mean if track else None, self.running_var if track else None,
                         self.weight, self.bias, use_batch_stats, factor, self.eps)
        return y.reshape(shape) if len(shape) == 3 else y

    def extra_repr(self):
        return (f'{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, '
                f'bias={self._has_bias}, track_running_stats={self.track_running_stats}')


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over (N, H, W) for each channel of NCHW input."""
    _expected_dims = (4,)


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over N (and L) for each feature of (N, C) or (N, C, L) input."""
    _expected_dims = (2, 3)

"""Synchronised batch norm: the batch statistics of a data-parallel run taken over the whole
global batch, not over each process's shard.

Without it, every process normalises by the mean and variance of its own shard: with 4
processes and a global batch of 64, a DCGAN discriminator's BatchNorm sees batches of 16, so
its statistics are noisier and each shard is normalised differently (the run is then not
the single-process run at batch 64). With it, the statistics are all-reduced sums, and since
all_reduce_sum is itself differentiable, the backward pass gets the cross-process terms of
the batch-norm gradient from the same graph, double backprop included.
"""
import contextlib

import numpy as np

from ..autograd import no_grad
from ..nn.batchnorm import BatchNorm1d, BatchNorm2d, _BatchNorm
from ..tensor import Tensor
from .ops import all_reduce_sum


class SyncBatchNorm(_BatchNorm):
    """BatchNorm over (N, C), (N, C, L) or (N, C, H, W) input whose statistics span every process."""
    _expected_dims = (2, 3, 4)
    synchronize = True               # off inside local_statistics()

    def forward(self, x):
        if not self.training or not self.synchronize:
            return super().forward(x)
        if x.ndim not in self._expected_dims or x.shape[1] != self.num_features:
            raise ValueError(f'SyncBatchNorm({self.num_features}) expects input with {self.num_features} '
                             f'channels in dim 1, got shape {x.shape}')
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        with no_grad():
            n = float(all_reduce_sum(Tensor(np.array(x.numel() // x.shape[1], dtype=np.float64))).item())
        if n <= 1:
            raise ValueError('SyncBatchNorm needs more than one value per channel over all processes')
        mean = all_reduce_sum(x.sum(axis=axes)) / n                        # two passes: as exact as
        var = all_reduce_sum(((x - mean.reshape(shape)) ** 2).sum(axis=axes)) / n   # single-process BN
        y = (x - mean.reshape(shape)) / (var.reshape(shape) + self.eps).sqrt()
        if self.weight is not None:
            y = y * self.weight.reshape(shape)
        if self.bias is not None:
            y = y + self.bias.reshape(shape)
        if self.track_running_stats:
            self._update_running_stats(mean, var, n)
        return y

    def _update_running_stats(self, mean, var, n):
        """r <- (1 - momentum) r + momentum stat, with the unbiased variance, as BatchNorm does."""
        self.num_batches_tracked.array += 1
        m = 1.0 / float(self.num_batches_tracked.item()) if self.momentum is None else self.momentum
        dt = self.running_mean.dtype
        self.running_mean.array[...] = ((1 - m) * self.running_mean.array + m * mean.array).astype(dt)
        self.running_var.array[...] = ((1 - m) * self.running_var.array
                                       + m * var.array * (n / (n - 1))).astype(dt)


@contextlib.contextmanager
def local_statistics(module):
    """Inside the block, the SyncBatchNorm layers of `module` use this process's batch alone: for work
    that one process does while the others do not (rank 0 drawing a sample grid), which must not wait
    for them in an all-reduce."""
    layers = [m for _, m in module.named_modules() if isinstance(m, SyncBatchNorm)]
    for m in layers:
        m.synchronize = False
    try:
        yield module
    finally:
        for m in layers:
            m.synchronize = True


def convert_sync_batchnorm(module):
    """Replace every BatchNorm1d/2d inside `module` by a SyncBatchNorm holding the same parameters
    and buffers (call it before making the optimisers: the parameters are the same objects)."""
    if isinstance(module, (BatchNorm1d, BatchNorm2d)) and not isinstance(module, SyncBatchNorm):
        sync = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                             module.track_running_stats, bias=module._has_bias)
        for name in ('weight', 'bias'):
            sync._parameters[name] = module._parameters.get(name)
        for name in ('running_mean', 'running_var', 'num_batches_tracked'):
            sync._buffers[name] = module._buffers.get(name)
        sync.train(module.training)
        return sync
    for name, child in list(module._modules.items()):
        if child is not None:
            module._modules[name] = convert_sync_batchnorm(child)
    return module


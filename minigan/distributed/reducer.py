"""Gradient averaging for data parallel training, overlapped with the backward pass.

The parameters are packed, last layer first, into buckets of about `bucket_mb` megabytes
(the backward pass produces the last layers' gradients first): by default 1 MB for NumPy
arrays over MPI, where a shared-memory all-reduce is at its best from 256 kB to 4 MB and
small buckets let more of it overlap backward (measured: bench/RESULTS.md), and 25 MB for
CuPy arrays over NCCL (PyTorch's choice; not yet measured here). As soon as the last gradient
of a bucket is ready, the bucket's all-reduce starts (non-blocking MPI, or NCCL on a GPU)
while the backward pass goes on into the earlier layers; after it, each bucket is waited for
and divided by the number of processes. One Reducer serves any number of parameter lists
(a GAN's generator and discriminator each get their own buckets).
"""
import time

from .. import autograd
from ..backend import get_array_module, is_cupy_array
from ..tensor import Tensor
from . import comm


class _Buckets:
    def __init__(self, params, bucket_bytes):
        self.params = params
        self.where = {}                                  # id(param) -> (bucket index, offset)
        self.buckets = []                                # [(flat array, [params])]
        groups, size = [[]], 0
        for p in reversed(params):                       # last layer first: its gradient comes first
            if groups[-1] and (size + p.array.nbytes > bucket_bytes or p.dtype != groups[-1][0].dtype):
                groups.append([])
                size = 0
            groups[-1].append(p)
            size += p.array.nbytes
        for group in groups:
            xp = get_array_module(group[0].array)
            flat = xp.empty(sum(p.array.size for p in group), dtype=group[0].dtype)
            offset = 0
            for p in group:
                self.where[id(p)] = (len(self.buckets), offset)
                offset += p.array.size
            self.buckets.append((flat, group))


CPU_BUCKET_MB = 1.0
GPU_BUCKET_MB = 25.0


class Reducer:
    """reducer(loss, params): like trainer.set_grads, p.grad = d loss / d p, averaged over processes.
    bucket_mb=None: CPU_BUCKET_MB for NumPy parameters, GPU_BUCKET_MB for CuPy ones."""

    def __init__(self, bucket_mb=None):
        self.bucket_mb = bucket_mb
        self._plans = {}
        self.last = {}                                   # timings of the last call (bench/RESULTS.md)

    def _plan(self, params):
        key = tuple(id(p) for p in params)
        if key not in self._plans:
            mb = self.bucket_mb
            if mb is None:
                mb = GPU_BUCKET_MB if params and is_cupy_array(params[0].array) else CPU_BUCKET_MB
            self._plans[key] = _Buckets(list(params), int(mb * 2 ** 20))
        return self._plans[key]

    def __call__(self, loss, params):
        plan = self._plan(params)
        missing = [len(group) for _, group in plan.buckets]
        pending = [None] * len(plan.buckets)

        def ready(p, g):
            b, offset = plan.where[id(p)]
            flat, _ = plan.buckets[b]
            part = flat[offset:offset + p.array.size]
            if g is None:
                part[...] = 0                            # unused here: still part of every process's sum
            else:
                part[...] = g.array.reshape(-1)
            missing[b] -= 1
            if missing[b] == 0:
                pending[b] = comm.start_all_reduce(flat, out=flat)   # summed in place
            for started in pending:
                if started is not None:
                    started.poke()

        t0 = time.perf_counter()
        grads = autograd._default_grad_outputs([loss], None)
        autograd.run_backward([loss], grads, list(params), on_ready=ready)
        t1 = time.perf_counter()
        n = comm.world_size()
        totals = [started.wait() for started in pending]
        t2 = time.perf_counter()
        for total, (flat, group) in zip(totals, plan.buckets):
            for p in group:
                _, offset = plan.where[id(p)]
                p.grad = Tensor((total[offset:offset + p.array.size] / total.dtype.type(n)).reshape(p.shape))
        self.last = {'backward_s': t1 - t0, 'wait_s': t2 - t1, 'buckets': len(plan.buckets),
                     'backward_end': t1, 'reduced': t2}     # perf_counter: one clock for all processes of a machine

"""minigan.distributed: data-parallel training over MPI on CPUs and NCCL on GPUs.

    mpiexec -n 2 python -m minigan.train --distributed [--sync-bn] ...

or from a script:

    import minigan.distributed as dist
    dist.init()                                   # connects the processes mpiexec started
    dist.broadcast_module(model)                  # rank 0's initial weights everywhere
    reducer = dist.Reducer()                      # averages gradients, overlapped with backward
    reducer(loss, params)                         # then opt.step(), as with p.grad set by backward
    images = global_batch[dist.shard(len(global_batch))]

Each process trains on its shard of every global batch; only rank 0 should write files.
"""
from .comm import (DistributedError, all_equal, barrier, init, is_initialized, rank,  # noqa: F401
                   world_size)
from .data import shard  # noqa: F401
from .ops import all_reduce, all_reduce_sum, broadcast, broadcast_module  # noqa: F401
from .reducer import Reducer  # noqa: F401
from .sync_bn import SyncBatchNorm, convert_sync_batchnorm, local_statistics  # noqa: F401

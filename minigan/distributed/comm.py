"""The processes of a data-parallel run and how they talk: MPI (mpi4py) for NumPy arrays,
NCCL (through CuPy) for CuPy arrays, with its unique id sent over MPI.

`mpiexec -n 4 python script.py` starts the processes; init() connects them. Every collective
waits at most `timeout` seconds (MINIGAN_DIST_TIMEOUT, 300 by default): a process that died
or hangs makes the others stop with a DistributedError instead of waiting forever, and an
exception in one process aborts all of them (MPI_Abort), so nothing hangs.
"""
import os
import sys
import time

import numpy as np

from ..backend import is_cupy_array


class DistributedError(RuntimeError):
    """A collective failed or timed out: another process died, raised, or is stuck."""


class _World:
    comm = None            # mpi4py's COMM_WORLD once init() ran
    nccl = None            # cupy.cuda.nccl.NcclCommunicator, made on the first CuPy collective
    timeout = 300.0


_world = _World()


def init(timeout=None):
    """Connect this process to the others started by mpiexec (a single process works too).

    Idempotent. Installs an excepthook that aborts every process when one raises."""
    if _world.comm is not None:
        return
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise DistributedError('minigan.distributed needs mpi4py and an MPI library: '
                               'pip install "minigan[mpi]" (mpi4py and MPICH), then run under mpiexec') from e
    _world.comm = MPI.COMM_WORLD
    env = os.environ.get('MINIGAN_DIST_TIMEOUT')
    _world.timeout = float(timeout if timeout is not None else env if env else 300.0)
    if _world.comm.Get_size() > 1:
        _abort_on_uncaught_exception()
    from .. import random
    random.set_batch_shard(rank(), world_size())


def _abort_on_uncaught_exception():
    previous = sys.excepthook

    def hook(kind, value, tb):
        previous(kind, value, tb)
        sys.stderr.write(f'minigan.distributed: rank {rank()} failed ({kind.__name__}); stopping all '
                         f'{world_size()} processes\n')
        sys.stderr.flush()
        time.sleep(0.5)                  # let mpiexec forward the message before it ends everyone
        _world.comm.Abort(1)
    sys.excepthook = hook


def is_initialized():
    return _world.comm is not None


def _comm():
    if _world.comm is None:
        raise DistributedError('minigan.distributed is not initialised: call minigan.distributed.init() '
                               'first (and start the script with mpiexec -n N)')
    return _world.comm


def rank():
    """This process's index, 0 .. world_size() - 1 (0 before init)."""
    return 0 if _world.comm is None else _world.comm.Get_rank()


def world_size():
    """The number of processes (1 before init)."""
    return 1 if _world.comm is None else _world.comm.Get_size()


SPIN_S = 1.0       # poll without sleeping this long first: MPI moves a transfer on only inside its
                   # calls, on both sides, so a process asleep between polls holds up the other one too


def _wait(request, what):
    """Wait for a non-blocking MPI request, at most the timeout: poll for SPIN_S, yielding the CPU
    to any process that wants it, then sleep between polls (up to 1 ms), so that a process that
    waits long (for a checkpoint, an evaluation) leaves the CPU to others."""
    start = time.monotonic()
    deadline = start + _world.timeout
    pause = 1e-5
    while not request.Test():
        now = time.monotonic()
        if now > deadline:
            raise DistributedError(f'{what} did not finish within {_world.timeout:.0f} s on rank {rank()}: '
                                   'another process died or is stuck (set MINIGAN_DIST_TIMEOUT to wait longer)')
        if now - start < SPIN_S:
            os.sched_yield()
        else:
            time.sleep(pause)
            pause = min(pause * 2, 1e-3)


class Pending:
    """A started all-reduce: wait() completes it (within the timeout) and returns the array."""

    def __init__(self, request, out, what):
        self.request, self.out, self.what = request, out, what

    def poke(self):
        """Let MPI move the transfer on (MPI progresses inside its calls): the backward pass
        calls this as it goes, so the all-reduce advances while gradients are computed."""
        if self.request is not None and self.request.Test():
            self.request = None

    def wait(self):
        if self.request is not None:
            _wait(self.request, self.what)
            self.request = None
        return self.out


def start_all_reduce(a, out=None):
    """Begin summing array `a` over every process into `out` (a new array by default; `a` itself
    when out is a, which spares a fresh buffer per step)."""
    out = np.empty_like(a) if out is None else out
    if is_cupy_array(a):
        _nccl_all_reduce(a, out)
        return Pending(None, out, 'all_reduce')
    from mpi4py import MPI
    send = MPI.IN_PLACE if out is a else np.ascontiguousarray(a)
    req = _comm().Iallreduce(send, out, op=MPI.SUM)
    return Pending(req, out, f'all_reduce of {a.size} values')


def all_reduce_array(a):
    """The sum of `a` over every process (a new array)."""
    if world_size() == 1:
        return a.copy()
    return start_all_reduce(a).wait()


def broadcast_array(a, src=0):
    """Process `src`'s values of `a`, written into `a` on every process."""
    if world_size() == 1:
        return a
    if is_cupy_array(a):
        _nccl().broadcast(a.data.ptr, a.data.ptr, a.size, _nccl_dtype(a), src,
                          _current_stream())
        return a
    buf = np.ascontiguousarray(a)
    _wait(_comm().Ibcast(buf, root=src), f'broadcast from rank {src}')
    if buf is not a:
        a[...] = buf
    return a


def barrier():
    """Wait until every process gets here (at most the timeout)."""
    if world_size() > 1:
        _wait(_comm().Ibarrier(), 'barrier')


def all_equal(value):
    """True on every process when `value` (a small picklable object) is the same everywhere."""
    if world_size() == 1:
        return True
    values = _comm().allgather(value)
    return all(v == values[0] for v in values)


# ---- NCCL, for CuPy arrays (one GPU per process) -----------------------------------------------

def _nccl():
    if _world.nccl is None:
        from cupy.cuda import nccl
        uid = nccl.get_unique_id() if rank() == 0 else None
        uid = _comm().bcast(uid, root=0)
        _world.nccl = nccl.NcclCommunicator(world_size(), uid, rank())
    return _world.nccl


def _nccl_dtype(a):
    from cupy.cuda import nccl
    table = {np.float32: nccl.NCCL_FLOAT32, np.float64: nccl.NCCL_FLOAT64, np.float16: nccl.NCCL_FLOAT16,
             np.int64: nccl.NCCL_INT64, np.int32: nccl.NCCL_INT32}
    try:
        return table[a.dtype.type]
    except KeyError:
        raise DistributedError(f'NCCL cannot reduce arrays of dtype {a.dtype}') from None


def _current_stream():
    import cupy
    return cupy.cuda.get_current_stream().ptr


def _nccl_all_reduce(a, out):
    from cupy.cuda import nccl
    a = a if a.flags.c_contiguous else a.copy()
    _nccl().allReduce(a.data.ptr, out.data.ptr, a.size, _nccl_dtype(a), nccl.NCCL_SUM, _current_stream())

"""Data parallel training: `mpiexec -n N python -m minigan.train --distributed [--sync-bn]`.

Every process builds the same run (same seed, same data order) and trains on its shard of each
global batch of --batch-size images; minigan.distributed.Reducer averages the gradients over the
processes while the backward pass goes on, and the random numbers drawn per example (noise,
WGAN-GP's mixing weights, dropout masks) are drawn for the whole global batch and sharded, so N
processes take the steps that one process takes at the same global batch (bit for bit up to the
order of float32 sums; exactly so with --sync-bn, see minigan/distributed/sync_bn.py for what
changes without it). Rank 0 alone writes the run folder; the other ranks keep its counters.
"""
import numpy as np

from .. import distributed as dist
from ..distributed import comm
from ..run_recorder import RunRecorder


class ShardedSource:
    """A training step's batches (training/batches.py's Source), cut to this process's shard."""

    def __init__(self, source):
        self.source = source
        self.part = dist.shard(source.batch_size)
        self.batch_size = source.batch_size // dist.world_size()

    def remaining(self):
        return self.source.remaining()

    def next(self):
        images, labels = self.source.next()
        return images[self.part], labels[self.part]

    def fresh(self):
        images, labels = self.source.fresh()
        return images[self.part], labels[self.part]


class AveragedStep:
    """trainer.step, with the metrics it returns averaged over the processes (images counted in all)."""

    def __init__(self, trainer):
        self.trainer = trainer

    def step(self, source, step_index=0):
        out = self.trainer.step(source, step_index)
        keys = sorted(k for k, v in out.items() if isinstance(v, (int, float)))
        total = comm.all_reduce_array(np.array([float(out[k]) for k in keys]))
        for k, v in zip(keys, total):
            out[k] = int(v) if k in ('real_images', 'critic_steps') else float(v) / dist.world_size()
        if 'critic_steps' in out:
            out['critic_steps'] //= dist.world_size()
        return out


def make_data_parallel(setup, cfg):
    """Turn a TrainingSetup into this process's part of a data-parallel run (after its networks are built)."""
    dist.init()
    nets = list(setup.nets.values())
    if cfg.get('sync_bn'):
        for net in nets:
            dist.convert_sync_batchnorm(net)
    for net in nets:
        dist.broadcast_module(net)                 # one set of initial weights, rank 0's
    setup.trainer.set_grads = dist.Reducer(cfg.get('bucket_mb'))
    setup.trainer = AveragedStep(setup.trainer)
    setup.source = ShardedSource(setup.source)


class _Consensus:
    """Ctrl-C or SIGTERM reaches the processes at different moments: all stop at the first step any
    saw it (the loop asks interrupt_requested once a step, on every process: an all-reduce).
    A loss that is not finite on one process stops them all (MPI_Abort with its status, 3)."""

    def _on_signal(self, signum, frame):
        if getattr(self, '_signal', 0):
            raise KeyboardInterrupt
        self._signal = signum

    @property
    def interrupt_requested(self):
        if not getattr(self, '_stopping', False):
            self._agreed = _max_over_processes(int(getattr(self, '_signal', 0) or 0))
        return self._agreed

    @interrupt_requested.setter
    def interrupt_requested(self, value):
        self._signal = int(value)

    def stop_interrupted(self):
        self._stopping = True
        return super().stop_interrupted()

    def stop_non_finite(self, e, step):
        status = super().stop_non_finite(e, step)
        if dist.world_size() > 1:
            comm._comm().Abort(status)
        return status


def _max_over_processes(value):
    """The largest of `value` over the processes (a signal number, or 0)."""
    from mpi4py import MPI
    return comm._comm().allreduce(value, op=MPI.MAX) if dist.world_size() > 1 else value


class LeadRecorder(_Consensus, RunRecorder):
    """Rank 0's recorder: the run folder as a single process writes it."""

    def _open(self):
        super()._open()
        dist.barrier()                             # the others read what was written only now

    def sample_grid(self, name=None):              # the others are not drawing: no synchronised BN
        with dist.local_statistics(self.setup.G):
            return super().sample_grid(name)

    def score_samples(self, scorer):
        with dist.local_statistics(self.setup.G):
            return super().score_samples(scorer)


class ReplicaRecorder(_Consensus, RunRecorder):
    """Ranks 1..N-1: the same counters and checkpoint restore as rank 0, and nothing written."""

    def say(self, msg):
        pass

    def warn(self, msg):
        pass

    def _open(self):
        from .. import checkpoint
        self.metrics = _NoLog()
        dist.barrier()                             # rank 0 has checked and written the folder
        if self.resuming:
            path, state = checkpoint.load_latest(self.run_dir, say=self.warn)
            self.load_state_dict(state, path)

    def begin(self):
        self._t_begin, self._images = 0.0, 0

    def log(self, record):
        pass

    def log_step(self, record):
        pass

    def sample_grid(self, name=None):
        return None

    def write_plots(self, animation=True):
        pass

    def end_epoch(self, test_acc=None, quality=None):
        self.epoch += 1
        self.epoch_sums, self.epoch_steps = {}, 0

    def save_checkpoint(self, epoch_file=False):
        self._check_weights_finite()
        self.last_good = (None, self.step)

    def finish(self):
        return 0

    def stop_interrupted(self):
        import signal
        from .. import errors
        self._stopping = True
        return errors.TERMINATED if self._agreed == signal.SIGTERM else errors.INTERRUPTED


class _NoLog:
    def write(self, record):
        pass

    def close(self):
        pass


def recorder(cfg, run_dir, setup, resume):
    """The run recorder of this process: LeadRecorder on rank 0, ReplicaRecorder elsewhere."""
    cls = LeadRecorder if dist.rank() == 0 else ReplicaRecorder
    return cls(cfg, run_dir, setup, resume)


def use_device(device):
    """One GPU per process: rank r takes GPU r mod (the GPUs visible); nothing to do on the CPU."""
    if device == 'cuda':
        import cupy
        cupy.cuda.Device(dist.rank() % cupy.cuda.runtime.getDeviceCount()).use()

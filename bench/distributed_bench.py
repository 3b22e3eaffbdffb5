"""Data parallel over MPI on this machine: all-reduce bandwidth and training-step times.

    mpiexec -n 2 python bench/distributed_bench.py allreduce            # bandwidth against size
    mpiexec -n 2 python bench/distributed_bench.py step --threads 1     # 2 ranks, 1 thread each
    mpiexec -n 1 python bench/distributed_bench.py step --threads 2     # 1 process, 2 threads
    mpiexec -n 2 python bench/distributed_bench.py step --bucket-mb 1 --width 128 -w dcgan32_b64

step: median ms of one training step of dcgan32_b64 and classifier32_b128 (spec/models.md) at the
global batch, each rank on its shard, gradients averaged by minigan.distributed.Reducer; also the
time the all-reduces took in all (comm_ms, measured by reducing the same buckets again alone) and
the part of it left after backward (exposed_comm_ms: from the moment the LAST process finished its
backward to the moment the gradients were averaged, summed over the step's reductions, so that one
process waiting for a slower one is not counted as communication): hidden = 1 - exposed / comm.
Rank 0 prints JSON lines.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

import minigan as mg  # noqa: E402
import minigan.distributed as dist  # noqa: E402
from minigan import optim  # noqa: E402
from minigan.distributed import comm  # noqa: E402
from minigan.gan.trainer import ClassifierTrainer, GANTrainer  # noqa: E402
from minigan.models import Classifier32, Discriminator32, Generator32  # noqa: E402


def emit(row):
    if dist.rank() == 0:
        print(json.dumps(row), flush=True)


def allreduce(repeats):
    for size in [2 ** k for k in range(10, 27, 2)]:              # 1 KiB .. 64 MiB of float32
        a = np.ones(size // 4, np.float32)
        comm.start_all_reduce(a, out=a).wait()          # in place, as the Reducer does
        times = []
        for _ in range(repeats):
            dist.barrier()
            t = time.perf_counter()
            comm.start_all_reduce(a, out=a).wait()
            times.append(time.perf_counter() - t)
        s = statistics.median(times)
        n = dist.world_size()
        emit({'bench': 'allreduce', 'ranks': n, 'bytes': size, 'median_ms': s * 1e3,
              'algbw_GBps': size / s / 1e9, 'busbw_GBps': size / s / 1e9 * 2 * (n - 1) / n})


class Source:
    def __init__(self, batch, labels=10):
        rng = np.random.default_rng(0)
        self.part = dist.shard(batch)
        self.x = rng.uniform(-1, 1, (batch, 3, 32, 32)).astype(np.float32)[self.part]
        self.y = rng.integers(0, labels, batch)[self.part]
        self.batch_size = batch // dist.world_size()

    def next(self):
        return mg.tensor(self.x), mg.tensor(self.y)

    fresh = next

    def remaining(self):
        return 10 ** 9


def step(workload, repeats, bucket_mb, width=64):
    mg.manual_seed(0)
    name, batch = workload.rsplit('_b', 1)
    reducer = dist.Reducer(bucket_mb)
    bucket_mb = bucket_mb or dist.reducer.CPU_BUCKET_MB
    if name == 'classifier32':
        net = Classifier32(3, 10)
        dist.broadcast_module(net)
        trainer = ClassifierTrainer(net, optim.SGD(net.parameters(), lr=0.01, momentum=0.9))
        params = [list(net.parameters())]
    else:
        G, D = Generator32(ngf=width), Discriminator32(ndf=width)
        dist.broadcast_module(G), dist.broadcast_module(D)
        trainer = GANTrainer('dcgan', G, D, optim.Adam(G.parameters(), 2e-4, (0.5, 0.999)),
                             optim.Adam(D.parameters(), 2e-4, (0.5, 0.999)))
        params = [list(D.parameters()), list(G.parameters())]
    marks = []

    def timed(loss, ps):
        reducer(loss, ps)
        marks.append((reducer.last['backward_end'], reducer.last['reduced']))
    trainer.set_grads = timed
    source = Source(int(batch))
    for _ in range(3):
        trainer.step(source)
    times, exposed = [], []
    for _ in range(repeats):
        dist.barrier()
        marks.clear()
        t = time.perf_counter()
        trainer.step(source)
        times.append(time.perf_counter() - t)
        everyone = comm._comm().allgather(marks) if dist.world_size() > 1 else [marks]
        exposed.append(sum(max(m[i][1] for m in everyone) - max(m[i][0] for m in everyone)
                           for i in range(len(marks))))
    wait = statistics.median(exposed)
    comm_s = []                                           # the same all-reduces, alone
    for _ in range(repeats):
        dist.barrier()
        t = time.perf_counter()
        for ps in params:
            for flat, _ in reducer._plan(ps).buckets:
                comm.start_all_reduce(flat, out=flat).wait()
        comm_s.append(time.perf_counter() - t)
    c = statistics.median(comm_s)
    n_params = sum(p.array.size for ps in params for p in ps)
    emit({'bench': 'step', 'workload': workload, 'ranks': dist.world_size(), 'threads': mg.get_num_threads(),
          'median_ms': statistics.median(times) * 1e3, 'comm_ms': c * 1e3, 'exposed_comm_ms': wait * 1e3,
          'hidden': max(0.0, 1 - wait / c) if c > 0 and dist.world_size() > 1 else None,
          'params': n_params, 'bucket_mb': bucket_mb, 'width': width if name == 'dcgan32' else None})


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('what', choices=['allreduce', 'step'])
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--repeats', type=int, default=10)
    ap.add_argument('--bucket-mb', type=float, default=None, help='default: the Reducer\'s (1 MB on the CPU)')
    ap.add_argument('--width', type=int, default=64, help='dcgan32: ngf = ndf (64 is the workload\'s)')
    ap.add_argument('-w', '--workload', action='append', choices=['dcgan32_b64', 'classifier32_b128', 'dcgan32_b32', 'classifier32_b64'])
    args = ap.parse_args()
    dist.init()
    mg.set_num_threads(args.threads)
    if args.what == 'allreduce':
        allreduce(args.repeats)
    else:
        for w in args.workload or ['dcgan32_b64', 'classifier32_b128']:
            step(w, args.repeats, args.bucket_mb, args.width)

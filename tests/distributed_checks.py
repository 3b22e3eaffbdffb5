"""Run under mpiexec by tests/test_distributed.py: `mpiexec -n N python tests/distributed_checks.py
CHECK OUT_DIR [options]`. Each check writes what rank 0 (or every rank) computed into OUT_DIR."""
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import minigan as mg  # noqa: E402
import minigan.distributed as dist  # noqa: E402
import minigan.nn.functional as F  # noqa: E402
from minigan import optim  # noqa: E402
from minigan.gan.trainer import ClassifierTrainer, GANTrainer  # noqa: E402
from minigan.models import Classifier32, Critic32, Discriminator32, Generator32  # noqa: E402


def collectives(out):
    rng = np.random.default_rng(100 + dist.rank())
    a = rng.standard_normal((3, 5)).astype(np.float32)
    total = dist.all_reduce(mg.tensor(a)).numpy()
    b = mg.tensor(np.full(4, float(dist.rank())))
    dist.broadcast(b, src=dist.world_size() - 1)
    m = dist.all_reduce(mg.tensor(np.array([float(dist.rank())])), op='max').numpy()
    dist.barrier()
    np.savez(os.path.join(out, f'collectives{dist.rank()}.npz'), a=a, total=total, b=b.numpy(), m=m)


def syncbn(out):
    """SyncBatchNorm on shards against BatchNorm2d on the global batch: y, dL/dx, and the double
    backward of |dL/dx|² into x and the weight (L = Σ y·c, a sum over the global batch)."""
    rng = np.random.default_rng(7)
    x_all = rng.standard_normal((8, 3, 5, 4))
    c_all = rng.standard_normal((8, 3, 5, 4))
    part = dist.shard(8)
    bn = mg.nn.BatchNorm2d(3).double()
    bn.weight.array[...] = rng.uniform(0.5, 1.5, 3)
    bn.bias.array[...] = rng.uniform(-0.5, 0.5, 3)
    if dist.world_size() > 1:
        bn = dist.convert_sync_batchnorm(bn)
    x = mg.tensor(x_all[part], requires_grad=True)
    y = bn(x)
    loss = (y * mg.tensor(c_all[part])).sum()
    gx, = mg.grad([loss], [x], create_graph=True)
    gx2, gw = mg.grad([(gx * gx).sum()], [x, bn.weight])
    gw = dist.all_reduce(gw)                           # the weight's gradient: a sum over the shards
    np.savez(os.path.join(out, f'syncbn-n{dist.world_size()}-r{dist.rank()}.npz'), y=y.numpy(),
             gx=gx.numpy(), gx2=gx2.numpy(), gw=gw.numpy(), rm=bn.running_mean.numpy(),
             rv=bn.running_var.numpy())


class ShardSource:
    """Global batches of a fixed dataset, in a fixed order; this process gets its shard of each."""

    def __init__(self, images, labels, batch_size):
        self.images, self.labels, self.global_batch = images, labels, batch_size
        self.part = dist.shard(batch_size)
        self.batch_size = batch_size // dist.world_size()
        self.i = 0

    def remaining(self):
        return 1000

    def next(self):
        lo = (self.i * self.global_batch) % len(self.images)
        self.i += 1
        x = self.images[lo:lo + self.global_batch][self.part]
        y = self.labels[lo:lo + self.global_batch][self.part]
        return mg.tensor(x), mg.tensor(y)

    fresh = next


def train(out, model, steps, sync_bn):
    """`steps` steps of `model` at global batch 16 from seed 0, in float64 (so that no float32
    rounding flips a max-pooling winner between the runs); rank 0 saves the weights."""
    mg.manual_seed(0)
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (64, 3, 32, 32))
    labels = rng.integers(0, 10, 64)
    reducer = dist.Reducer(bucket_mb=0.25)           # small buckets: several all-reduces per step
    if model == 'classifier':
        net = Classifier32(3, 10)
        nets = [net]
    else:
        G = Generator32(nz=16, ngf=8)
        D = Critic32(ndf=8) if model == 'wgan-gp' else Discriminator32(ndf=8)
        nets = [G, D]
    nets = [n.double() for n in nets]
    if sync_bn:
        nets = [dist.convert_sync_batchnorm(n) for n in nets]
    for n in nets:
        dist.broadcast_module(n)
    if model == 'classifier':
        trainer = ClassifierTrainer(nets[0], optim.SGD(nets[0].parameters(), lr=0.05, momentum=0.9))
    else:
        betas = (0.5, 0.9) if model == 'wgan-gp' else (0.5, 0.999)
        trainer = GANTrainer(model, nets[0], nets[1], optim.Adam(nets[0].parameters(), 2e-4, betas),
                             optim.Adam(nets[1].parameters(), 2e-4, betas), nz=16, n_critic=2)
    trainer.set_grads = reducer
    source = ShardSource(images, labels, 16)
    for step in range(steps):
        trainer.step(source, step)
    if dist.rank() == 0:
        weights = {f'{i}.{k}': v for i, n in enumerate(nets) for k, v in n.state_dict().items()}
        np.savez(os.path.join(out, f'{model}-n{dist.world_size()}-sync{int(sync_bn)}.npz'), **weights)


def failure(out, how):
    """Rank 1 fails at its second all-reduce; every process must stop, none may hang."""
    for i in range(1000):
        if dist.rank() == 1 and i == 2:
            if how == 'raise':
                raise RuntimeError('rank 1 broke on purpose')
            os._exit(3)                                  # dies without a word, as a killed process does
        dist.all_reduce(mg.ones(1000))
        time.sleep(0.01)


if __name__ == '__main__':
    check, out = sys.argv[1], sys.argv[2]
    dist.init()
    mg.set_num_threads(1)
    if check == 'collectives':
        collectives(out)
    elif check == 'syncbn':
        syncbn(out)
    elif check == 'train':
        train(out, sys.argv[3], int(sys.argv[4]), sys.argv[5] == 'sync')
    elif check == 'failure':
        failure(out, sys.argv[3])
    if dist.rank() == 0:
        with open(os.path.join(out, f'{check}-done.json'), 'w') as f:
            json.dump({'world_size': dist.world_size()}, f)

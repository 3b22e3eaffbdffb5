"""Each process's share of a global batch."""
from . import comm


def shard(batch_size):
    """The slice of a global batch of `batch_size` examples that this process trains on."""
    n, k = comm.world_size(), comm.rank()
    if batch_size % n:
        raise ValueError(f'a global batch of {batch_size} does not split over {n} processes: '
                         f'use a batch size divisible by {n}')
    per = batch_size // n
    return slice(k * per, (k + 1) * per)

"""Datasets and a DataLoader with PyTorch's protocol (torch.utils.data's names and rules).

A dataset is anything with __len__ and __getitem__; the DataLoader draws index batches
(shuffled from minigan's seeded generator, or from `generator`), fetches the samples
and merges them with default_collate: numbers, NumPy arrays and Tensors become batched
Tensors; tuples, lists and dicts are merged field by field; strings become lists.
Loading happens in this process (num_workers is accepted and ignored)."""
import collections.abc
import math
import numbers

import numpy as np

from .. import random as _random
from ..backend import get_array_module
from ..tensor import Tensor


class Dataset:
    """Subclass and define __getitem__(index) and __len__()."""

    def __getitem__(self, index):
        raise NotImplementedError(f'{type(self).__name__} must define __getitem__')

    def __add__(self, other):
        return ConcatDataset([self, other])


class TensorDataset(Dataset):
    """Sample i is (t[i] for t in tensors); every tensor has the same first dim."""

    def __init__(self, *tensors):
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError('TensorDataset needs tensors with the same size in their first dim (size mismatch)')
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(Tensor(t.array[index]) if isinstance(t, Tensor) else t[index] for t in self.tensors)

    def __len__(self):
        return len(self.tensors[0])


class Subset(Dataset):
    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)

    def __getitem__(self, index):
        return self.dataset[self.indices[index]]

    def __len__(self):
        return len(self.indices)


class ConcatDataset(Dataset):
    def __init__(self, datasets):
        self.datasets = list(datasets)
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]))

    def __len__(self):
        return int(self.cumulative_sizes[-1]) if self.datasets else 0

    def __getitem__(self, index):
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f'index {index} is out of range for a dataset of {len(self)} samples')
        d = int(np.searchsorted(self.cumulative_sizes, index, side='right'))
        start = int(self.cumulative_sizes[d - 1]) if d else 0
        return self.datasets[d][index - start]


def random_split(dataset, lengths, generator=None):
    """Split into non-overlapping Subsets of the given lengths (or fractions summing to 1)."""
    n = len(dataset)
    if all(isinstance(x, float) for x in lengths) and math.isclose(sum(lengths), 1):
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if sum(lengths) != n:
        raise ValueError('the lengths of random_split must sum to the length of the dataset')
    order = _rng(generator).permutation(n).tolist()
    out, start = [], 0
    for length in lengths:
        out.append(Subset(dataset, order[start:start + length]))
        start += length
    return out


def _rng(generator):
    """A NumPy Generator: `generator` (a mg.Generator or NumPy Generator) or minigan's global one."""
    if generator is None:
        return _random.generator()
    return getattr(generator, 'rng', generator)


def default_collate(batch):
    """Merge a list of samples into a batch, as torch.utils.data.default_collate does."""
    first = batch[0]
    if isinstance(first, Tensor):
        return Tensor(get_array_module(first.array).stack([s.array for s in batch]))
    if isinstance(first, np.ndarray):
        if first.dtype.kind not in 'biuf':
            raise TypeError(f'default_collate: cannot batch NumPy arrays of dtype {first.dtype}')
        return Tensor(np.stack(batch))
    if isinstance(first, np.generic):
        return Tensor(np.array(batch))
    if isinstance(first, bool):
        return Tensor(np.array(batch, dtype=np.bool_))
    if isinstance(first, numbers.Integral):
        return Tensor(np.array(batch, dtype=np.int64))
    if isinstance(first, numbers.Real):
        return Tensor(np.array(batch, dtype=np.float64))   # as PyTorch: Python floats batch to float64
    if isinstance(first, (str, bytes)):
        return list(batch)
    if isinstance(first, collections.abc.Mapping):
        return {key: default_collate([s[key] for s in batch]) for key in first}
    if isinstance(first, tuple) and hasattr(first, '_fields'):          # a namedtuple keeps its type
        return type(first)(*(default_collate(list(field)) for field in zip(*batch)))
    if isinstance(first, collections.abc.Sequence):
        if any(len(s) != len(first) for s in batch):
            raise RuntimeError('each element in list of batch should be of equal size')
        return [default_collate(list(field)) for field in zip(*batch)]
    raise TypeError(f'default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; '
                    f'found {type(first).__name__}')


class DataLoader:
    """Batches of a dataset: for x, y in DataLoader(TensorDataset(X, Y), batch_size=64, shuffle=True): ..."""

    def __init__(self, dataset, batch_size=1, shuffle=False, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 generator=None, **ignored):
        if batch_size is not None and (not isinstance(batch_size, numbers.Integral) or batch_size <= 0):
            raise ValueError(f'batch_size should be a positive integer value, but got batch_size={batch_size}')
        if sampler is not None and shuffle:
            raise ValueError('sampler option is mutually exclusive with shuffle')
        self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, batch_size, shuffle, drop_last
        self.sampler, self.batch_sampler, self.generator = sampler, batch_sampler, generator
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.collate_fn = default_collate if collate_fn is None else collate_fn

    def _indices(self):
        if self.sampler is not None:
            return list(self.sampler)
        n = len(self.dataset)
        return _rng(self.generator).permutation(n).tolist() if self.shuffle else list(range(n))

    def _batches(self):
        if self.batch_sampler is not None:
            return [list(b) for b in self.batch_sampler]
        order = self._indices()
        if self.batch_size is None:
            return [[i] for i in order]
        size = self.batch_size
        stop = len(order) - len(order) % size if self.drop_last else len(order)
        return [order[i:i + size] for i in range(0, stop, size)]

    def __iter__(self):
        for batch in self._batches():
            samples = [self.dataset[i] for i in batch]
            yield samples[0] if self.batch_size is None and self.batch_sampler is None else self.collate_fn(samples)

    def __len__(self):
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

"""DataLoader: batches of a uint8 dataset as float32 tensors in [-1, 1] on the target device.

The dataset stays uint8 in host memory; each batch is gathered, augmented
(random horizontal flip, random crop of a padded image) on uint8, moved to the
device as uint8 (a quarter of the bytes), and only there converted to float32
in [-1, 1]. A background thread prepares the next batches while the current
one trains.

Randomness: the order of epoch e comes from the generator seeded (seed, e),
the flips and crops of batch b from (seed, e, b). Each epoch is shuffled
differently, the same seed gives the same batches, and a loader restored from
state_dict() continues with exactly the batches the interrupted run would
have seen (or pass epoch= to start at an epoch boundary).
"""
import queue
import threading

import numpy as np

from .. import backend
from ..tensor import Tensor
from .errors import DatasetError

_LUT = (np.arange(256, dtype=np.float64) / 127.5 - 1.0).astype(np.float32)   # exact: 0 -> -1, 255 -> 1


def _arrays_of(dataset):
    if hasattr(dataset, 'images') and hasattr(dataset, 'labels'):
        return dataset.images, dataset.labels
    if isinstance(dataset, (tuple, list)) and len(dataset) == 2:
        return dataset
    if isinstance(dataset, np.ndarray):
        return dataset, np.zeros(len(dataset), dtype=np.int64)
    raise DatasetError('DataLoader needs a Dataset (from load_dataset), an (images, labels) pair or a '
                       f'uint8 image array, got {type(dataset).__name__}')


class DataLoader:
    """Iterate over (images, labels) batches of a dataset.

    dataset:      a Dataset (or (images, labels) with images uint8 (N, C, H, W))
    batch_size:   images per batch
    shuffle:      a new order each epoch (from `seed`)
    drop_last:    leave out the last, smaller batch
    flip:         flip each image left-right with probability 1/2
    crop_padding: pad each side by this many pixels, then crop a random H x W window
    padding_mode: "constant" (black, -1 after scaling) or "reflect"
    device:       "cpu" or "cuda": where the float32 batches are made
    seed:         seed of the shuffling and augmentation (default: drawn from minigan's generator,
                  so mg.manual_seed makes it reproducible)
    epoch:        the epoch the first iteration is (for resuming at an epoch boundary)
    prefetch:     batches prepared ahead by the background thread (0: none, no thread)

    images are float32 Tensors (B, C, H, W) in [-1, 1]; labels are int64 Tensors (B,)
    (float32 (B, K) for multi-label data). len(loader) is the number of batches per epoch.
    """

    def __init__(self, dataset, batch_size=64, shuffle=False, drop_last=False, flip=False,
                 crop_padding=0, padding_mode='constant', device='cpu', seed=None, epoch=0,
                 prefetch=2):
        images, labels = _arrays_of(dataset)
        images, labels = np.asarray(images), np.asarray(labels)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise DatasetError(f'DataLoader needs uint8 images (N, C, H, W), got {images.dtype} '
                               f'{images.shape}')
        if len(labels) != len(images):
            raise DatasetError(f'DataLoader: {len(labels)} labels for {len(images)} images')
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise DatasetError(f'batch_size must be a positive int, got {batch_size!r}')
        if len(images) == 0:
            raise DatasetError('DataLoader: the dataset is empty')
        if drop_last and batch_size > len(images):
            raise DatasetError(f'batch_size {batch_size} is larger than the dataset ({len(images)} '
                               'images) and drop_last=True: no batch would come out; use a smaller '
                               'batch_size or drop_last=False')
        crop_padding = int(crop_padding)
        if crop_padding < 0:
            raise DatasetError(f'crop_padding must be >= 0, got {crop_padding}')
        if padding_mode not in ('constant', 'reflect'):
            raise DatasetError(f'padding_mode must be "constant" or "reflect", got {padding_mode!r}')
        if padding_mode == 'reflect' and crop_padding >= min(images.shape[2:]):
            raise DatasetError(f'reflect padding of {crop_padding} needs images larger than that')
        self.dataset = dataset
        self.images, self.labels = images, labels
        self.batch_size = int(batch_size)
        self.shuffle, self.drop_last, self.flip = bool(shuffle), bool(drop_last), bool(flip)
        self.crop_padding, self.padding_mode = crop_padding, padding_mode
        self.device = backend.check_device(device)
        if seed is None:
            from .. import random as _random
            seed = int(_random.generator().integers(0, 2 ** 63))
        self.seed = int(seed)
        self.prefetch = max(0, int(prefetch))
        self._next_epoch = int(epoch)
        self._resume_batch = 0
        self._active = None            # the live iterator: reports (epoch, batches handed out)

    # ---- size and state ------------------------------------------------
    def __len__(self):
        n, b = len(self.images), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    @property
    def epoch(self):
        """The epoch being iterated, or the next one to start."""
        it = self._active
        return it.epoch if it is not None and not it.done else self._next_epoch

    def set_epoch(self, epoch):
        """Start the next iteration at the beginning of `epoch`."""
        self._next_epoch, self._resume_batch = int(epoch), 0

    def state_dict(self):
        """Where the loader stands: restore it with load_state_dict to see the same batches."""
        it = self._active
        if it is not None and not it.done:
            epoch, batch = it.epoch, it.handed
            if batch >= len(self):
                epoch, batch = epoch + 1, 0
        else:
            epoch, batch = self._next_epoch, self._resume_batch
        return {'seed': self.seed, 'epoch': int(epoch), 'batch': int(batch)}

    def load_state_dict(self, state):
        """Continue from a state_dict(): the next iteration resumes at its epoch and batch."""
        try:
            self.seed, self._next_epoch, self._resume_batch = (int(state['seed']), int(state['epoch']),
                                                               int(state.get('batch', 0)))
        except (KeyError, TypeError, ValueError) as e:
            raise DatasetError(f'not a DataLoader state: {state!r} (need seed, epoch, batch)') from e
        if not 0 <= self._resume_batch <= len(self):
            raise DatasetError(f'DataLoader state: batch {self._resume_batch} is outside this epoch '
                               f'of {len(self)} batches')
        if self._resume_batch == len(self):              # the epoch was finished: start the next
            self._next_epoch, self._resume_batch = self._next_epoch + 1, 0

    # ---- the batches -----------------------------------------------------
    def order(self, epoch):
        """The indices of `epoch`, in the order they are served."""
        n = len(self.images)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng(np.random.SeedSequence([self.seed, int(epoch), 0])).permutation(n)

    def batch_indices(self, epoch):
        """The list of index arrays of `epoch`'s batches."""
        order, b = self.order(epoch), self.batch_size
        return [order[i * b:(i + 1) * b] for i in range(len(self))]

    def make_batch(self, idx, epoch, b):
        """(images, labels) Tensors of the batch made of dataset indices `idx` (batch b of `epoch`)."""
        x = self.images[idx]                     # a uint8 copy, (B, C, H, W)
        if self.flip or self.crop_padding:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(epoch), 1, int(b)]))
            if self.crop_padding:
                x = self._crop(x, rng)
            if self.flip:
                sel = rng.random(len(x)) < 0.5
                x[sel] = x[sel, :, :, ::-1]
        y = self.labels[idx]
        if self.device == 'cpu':
            images = _LUT[x]
        else:
            xp = backend.array_module(self.device)
            images = backend.to_device(np.ascontiguousarray(x), self.device).astype(xp.float32)
            images /= 127.5
            images -= 1.0
        return Tensor(images), Tensor(backend.to_device(np.ascontiguousarray(y), self.device))

    def _crop(self, x, rng):
        p = self.crop_padding
        n, c, h, w = x.shape
        padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode=self.padding_mode)
        dy, dx = rng.integers(0, 2 * p + 1, n), rng.integers(0, 2 * p + 1, n)
        out = np.empty_like(x)
        for i in range(n):
            out[i] = padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        return out

    def __iter__(self):
        epoch, start = self._next_epoch, self._resume_batch
        self._next_epoch, self._resume_batch = epoch + 1, 0
        if self._active is not None:
            self._active.close()                 # an earlier pass left unfinished
        it = _Iterator(self, epoch, start)
        self._active = it
        return it


class _Iterator:
    """One pass over an epoch; a background thread keeps `prefetch` batches ready."""
    _END = object()

    def __init__(self, loader, epoch, start):
        self.loader, self.epoch, self.handed, self.done = loader, epoch, start, False
        self._batches = loader.batch_indices(epoch)
        self._stop = threading.Event()
        self._queue = None
        if loader.prefetch > 0 and start < len(self._batches):
            self._queue = queue.Queue(maxsize=loader.prefetch)
            self._thread = threading.Thread(target=self._produce, args=(start,), daemon=True,
                                            name='minigan-dataloader')
            self._thread.start()

    def _produce(self, start):
        try:
            for b in range(start, len(self._batches)):
                if self._stop.is_set():
                    return
                item = self.loader.make_batch(self._batches[b], self.epoch, b)
                if not self._put(item):
                    return
            self._put(self._END)
        except BaseException as e:       # hand the error to the training loop
            self._put(e)

    def _put(self, item):
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self):
        return self

    def __len__(self):
        return len(self._batches) - self.handed

    def __next__(self):
        if self.done:
            raise StopIteration
        if self._queue is None:
            if self.handed >= len(self._batches):
                return self._finish()
            item = self.loader.make_batch(self._batches[self.handed], self.epoch, self.handed)
        else:
            item = self._queue.get()
            if item is self._END:
                return self._finish()
            if isinstance(item, BaseException):
                self.close()
                raise item
        self.handed += 1
        return item

    def _finish(self):
        self.done = True
        self.close()
        raise StopIteration

    def close(self):
        """Stop the background thread (called on exhaustion, on error, and when dropped)."""
        self._stop.set()
        if self._queue is not None:
            while True:                  # unblock a producer waiting on a full queue
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break

    def __del__(self):
        self._stop.set()

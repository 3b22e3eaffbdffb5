"""Where a training step takes its real images from.

The DataLoader draws each epoch's order and each batch's flips from counter-based
seeds (seed, epoch, batch), so its state_dict() (seed, epoch, batch) is all it
takes to continue an epoch after a restart: a Stream keeps that position, and a
checkpoint stores it.
"""
from ..checkpoint import CheckpointError


class Stream:
    """Epoch after epoch of batches from a DataLoader, with a position that checkpoints can restore."""

    def __init__(self, loader, endless=False):
        self.loader, self.endless = loader, endless
        self.batch_size = loader.batch_size
        self.length = len(loader)
        self.active, self.pos, self._it = False, 0, None

    def start_epoch(self):
        self._it = iter(self.loader)
        self.active, self.pos = True, self.loader.state_dict()['batch']

    def remaining(self):
        return self.length - self.pos if self.active else 0

    def next(self):
        if self.endless and self.remaining() == 0:
            self.start_epoch()
        if not self.active or self.pos >= self.length:
            raise RuntimeError('internal: the epoch has no batches left')
        batch = next(self._it)
        self.pos += 1
        return batch

    def finish_epoch(self):
        if self._it is not None and hasattr(self._it, 'close'):
            self._it.close()
        self.active, self._it = False, None

    def state(self):
        return {'active': self.active, 'pos': self.pos, 'loader': self.loader.state_dict()}

    def restore(self, st):
        self.finish_epoch()
        self.loader.load_state_dict(st['loader'])
        if st['active']:
            self.start_epoch()                      # the loader resumes at the saved batch
            if self.pos != st['pos']:
                raise CheckpointError(f'the data position in the checkpoint (batch {st["pos"]}) '
                                      f'does not match the loader state {st["loader"]}')


class Source:
    """What a training step draws from (gan/trainer.py): the epoch's batches (`next`, `remaining`),
    plus fresh ones outside the epoch's count (`fresh`) for RaLSGAN's generator step."""

    def __init__(self, stream, fresh_stream=None):
        self.stream, self.fresh_stream = stream, fresh_stream
        self.batch_size = stream.batch_size

    def remaining(self):
        return self.stream.remaining()

    def next(self):
        return self.stream.next()

    def fresh(self):
        return self.fresh_stream.next()

"""Checkpoints that survive crashes.

A checkpoint is one `.npz` file: every array (weights, optimiser moments,
fixed noise) is stored as a NumPy array, and everything else (step, epoch,
RNG states, settings) as JSON text inside the same file. Nothing is pickled,
so loading one runs no code.

Writes are atomic: the file is written in full under a temporary name in the
same folder, flushed to disk, and only then renamed over the old one with
`os.replace`. A crash (or Ctrl-C, or a full disk) during the write leaves the
previous checkpoint as it was.
"""
import glob
import json
import os

import numpy as np

from . import backend

FORMAT = 1


class CheckpointError(RuntimeError):
    pass


# ---- nested state <-> (JSON tree, arrays) ----------------------------------------
def _encode(obj, arrays):
    from .tensor import Tensor
    if isinstance(obj, Tensor):
        key = f'a{len(arrays)}'
        arrays[key] = np.asarray(backend.to_device(obj.array, 'cpu'))
        return {'__tensor__': key}
    if isinstance(obj, np.ndarray) or backend.is_cupy_array(obj):
        key = f'a{len(arrays)}'
        arrays[key] = np.asarray(backend.to_device(obj, 'cpu'))
        return {'__array__': key}
    if isinstance(obj, dict):
        return {'__dict__': [[_encode(k, arrays), _encode(v, arrays)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {'__tuple__': [_encode(v, arrays) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, arrays) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise CheckpointError(f'cannot store a {type(obj).__name__} in a checkpoint '
                          '(only arrays, Tensors, numbers, strings, lists, tuples and dicts)')


def _decode(tree, arrays):
    from .tensor import Tensor
    if isinstance(tree, list):
        return [_decode(v, arrays) for v in tree]
    if isinstance(tree, dict):
        if '__tensor__' in tree:
            return Tensor(arrays[tree['__tensor__']])
        if '__array__' in tree:
            return arrays[tree['__array__']]
        if '__tuple__' in tree:
            return tuple(_decode(v, arrays) for v in tree['__tuple__'])
        if '__dict__' in tree:
            return {_decode(k, arrays): _decode(v, arrays) for k, v in tree['__dict__']}
        raise CheckpointError(f'unknown entry {sorted(tree)} in checkpoint metadata')
    return tree


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save(path, state):
    """Write `state` (a dict of arrays, Tensors, numbers, strings, lists, dicts) to `path` atomically."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    arrays = {}
    meta = {'format': FORMAT, 'state': _encode(state, arrays)}
    arrays['__meta__'] = np.array(json.dumps(meta))
    tmp = f'{path}.tmp.{os.getpid()}'
    try:
        with open(tmp, 'wb') as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(folder)
    return path


def load(path):
    """Read a checkpoint written by `save`; arrays come back as host NumPy arrays."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'no checkpoint at {path}')
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:
        raise CheckpointError(f'checkpoint {path} is damaged or not a minigan checkpoint ({e})') from e
    if '__meta__' not in arrays:
        raise CheckpointError(f'{path} is not a minigan checkpoint (no metadata)')
    meta = json.loads(str(arrays.pop('__meta__')))
    if meta.get('format') != FORMAT:
        raise CheckpointError(f'{path} has checkpoint format {meta.get("format")}, this minigan reads {FORMAT}')
    return _decode(meta['state'], arrays)


# ---- where a run keeps them --------------------------------------------------------
def folder(run_dir):
    return os.path.join(run_dir, 'checkpoints')


def latest_path(run_dir):
    return os.path.join(folder(run_dir), 'latest.npz')


def epoch_path(run_dir, epoch):
    return os.path.join(folder(run_dir), f'epoch_{epoch:03d}.npz')


def find_latest(run_dir):
    """The newest loadable checkpoint of a run: latest.npz, else the last epoch file; None if there is none."""
    candidates = [latest_path(run_dir)] + sorted(glob.glob(os.path.join(folder(run_dir), 'epoch_*.npz')),
                                                 reverse=True)
    for path in candidates:
        if os.path.isfile(path):
            return path
    return None


def remove_stale_temporaries(run_dir):
    """Delete half-written temporary files left by a crash (they are never read)."""
    for tmp in glob.glob(os.path.join(folder(run_dir), '*.tmp.*')):
        try:
            os.remove(tmp)
        except OSError:
            pass

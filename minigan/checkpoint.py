"""Checkpoints that survive crashes.

A checkpoint is one `.npz` file: every array (weights, optimiser moments,
fixed noise) is stored as a NumPy array, and everything else (step, epoch,
RNG states, settings) as JSON text inside the same file. Nothing is pickled,
so loading one runs no code.

Writes are atomic (minigan/atomic.py): the file is written in full under a
temporary name in the same folder, flushed to disk, and only then renamed over
the old one with `os.replace`. A crash (or Ctrl-C, or a full disk) during the
write leaves the previous checkpoint as it was, and readers (sample, evaluate)
never see half a file. A checkpoint never holds NaN or infinite arrays: `save`
refuses them, and `find_latest` passes over one that does (from elsewhere).
"""
import glob
import json
import os
import sys

import numpy as np

from . import backend
from .atomic import atomic_write, remove_stale_temporaries as _remove_temporaries
from .errors import USAGE, CheckpointError, NonFiniteError

FORMAT = 1


class CheckpointNotFound(CheckpointError, FileNotFoundError):
    """No checkpoint file at the path given (a usage error: exit status 2)."""
    exit_code = USAGE


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


def non_finite(state, prefix=''):
    """Names of the floating-point arrays in `state` holding NaN or infinity."""
    from .tensor import Tensor
    if isinstance(state, Tensor):
        state = state.array
    if isinstance(state, np.ndarray) or backend.is_cupy_array(state):
        if state.dtype.kind in 'fc':
            xp = backend.get_array_module(state)
            if not bool(xp.isfinite(state).all()):
                return [prefix or 'array']
        return []
    items = state.items() if isinstance(state, dict) else (
        enumerate(state) if isinstance(state, (list, tuple)) else ())
    return [name for k, v in items for name in non_finite(v, f'{prefix}.{k}' if prefix else str(k))]


def save(path, state, allow_non_finite=False):
    """Write `state` (a dict of arrays, Tensors, numbers, strings, lists, dicts) to `path` atomically.

    Arrays holding NaN or infinity raise NonFiniteError (and nothing is written) unless
    allow_non_finite=True: a checkpoint is meant to be a state worth going back to."""
    path = os.fspath(path)
    if not allow_non_finite:
        bad = non_finite(state)
        if bad:
            raise NonFiniteError(f'not writing {path}: {", ".join(bad[:3])}{" ..." if len(bad) > 3 else ""} '
                                 'hold NaN or infinite values')
    arrays = {}
    meta = {'format': FORMAT, 'state': _encode(state, arrays)}
    arrays['__meta__'] = np.array(json.dumps(meta))
    with atomic_write(path) as f:
        np.savez(f, **arrays)
    return path


def load(path):
    """Read a checkpoint written by `save`; arrays come back as host NumPy arrays.

    A missing file raises CheckpointNotFound; anything else that is not a checkpoint of this
    format (damaged, cut short, foreign metadata) raises CheckpointError naming the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointNotFound(f'no checkpoint at {path}: give the path of a .npz file in a run\'s checkpoints/ folder')
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:
        raise CheckpointError(f'checkpoint {path} is damaged or not a minigan checkpoint ({e}): '
                              'use another checkpoint (see checkpoints/)') from e
    if '__meta__' not in arrays:
        raise CheckpointError(f'{path} is not a minigan checkpoint (no metadata)')
    try:
        meta = json.loads(str(arrays.pop('__meta__')))
    except ValueError as e:
        raise CheckpointError(f'{path} has unreadable metadata ({e}): use another checkpoint') from e
    if not isinstance(meta, dict) or 'state' not in meta:
        raise CheckpointError(f'{path} has metadata minigan did not write: use another checkpoint')
    if meta.get('format') != FORMAT:
        raise CheckpointError(f'{path} has checkpoint format {meta.get("format")}, this minigan reads {FORMAT}')
    try:
        return _decode(meta['state'], arrays)
    except CheckpointError as e:
        raise CheckpointError(f'{path}: {e}') from e
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f'{path} has metadata that does not match its arrays ({type(e).__name__}: '
                              f'{e}): use another checkpoint') from e


def require(state, keys, path):
    """The checkpoint `state` read from `path` as a dict holding `keys`, or a CheckpointError."""
    if not isinstance(state, dict):
        raise CheckpointError(f'{path} holds a {type(state).__name__}, not a training state: '
                              'use a checkpoint written by minigan.train')
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(f'{path} lacks {", ".join(missing)}: it was not written by this kind of run; '
                              'use one of the run\'s own checkpoints')
    return state


def load_weights(module, weights, path, what):
    """module.load_state_dict(weights), with a mismatch reported as a CheckpointError naming `path`."""
    try:
        module.load_state_dict(weights)
    except (RuntimeError, TypeError, KeyError, ValueError, AttributeError) as e:
        detail = ' '.join(str(e).split())
        raise CheckpointError(f'the {what} weights in {path} do not fit the model of the run\'s config.json '
                              f'({detail}): use a checkpoint of this run') from e
    return module


# ---- where a run keeps them --------------------------------------------------------
def folder(run_dir):
    return os.path.join(run_dir, 'checkpoints')


def latest_path(run_dir):
    return os.path.join(folder(run_dir), 'latest.npz')


def epoch_path(run_dir, epoch):
    return os.path.join(folder(run_dir), f'epoch_{epoch:03d}.npz')


def candidates(run_dir):
    """latest.npz, then the epoch files from the newest: the order find_latest tries them in."""
    return [latest_path(run_dir)] + sorted(glob.glob(os.path.join(folder(run_dir), 'epoch_*.npz')), reverse=True)


def load_latest(run_dir, say=None):
    """(path, state) of the newest usable checkpoint of a run, or (None, None) when there is none.

    Usable: it loads, and no array in it is NaN or infinite. A checkpoint passed over is named,
    with the reason and the one used instead, through `say` (default: a warning on stderr)."""
    say = say or _warn
    skipped = []
    for path in candidates(run_dir):
        if not os.path.isfile(path):
            continue
        try:
            state = load(path)
        except CheckpointError as e:
            skipped.append(f'{path} cannot be read ({" ".join(str(e).split())})')
            continue
        bad = non_finite(state)
        if bad:
            skipped.append(f'{path} holds NaN or infinite values ({", ".join(bad[:3])})')
            continue
        if skipped:
            say(f'{"; ".join(skipped)}: using {path} instead')
        return path, state
    if skipped:
        say(f'{"; ".join(skipped)}; no other checkpoint to fall back on')
    return None, None


def find_latest(run_dir, say=None):
    """The newest usable checkpoint of a run (see load_latest); None if there is none."""
    return load_latest(run_dir, say)[0]


def has_checkpoint(run_dir):
    """Whether a run has any checkpoint file at all, usable or not."""
    return any(os.path.isfile(p) for p in candidates(run_dir))


def _warn(msg):
    print(f'warning: {msg}', file=sys.stderr, flush=True)


def remove_stale_temporaries(run_dir):
    """Delete half-written temporary files left by a crash (they are never read)."""
    return _remove_temporaries(folder(run_dir))

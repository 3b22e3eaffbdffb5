"""Small helpers shared by the layers."""
import numpy as np

from .. import backend


def pair(v, name):
    """An int or a 2-sequence of ints -> a 2-tuple (PyTorch stores kernel_size etc. this way)."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return (int(v), int(v))
    try:
        t = tuple(int(a) for a in v)
    except TypeError:
        raise TypeError(f'{name} must be an int or a pair of ints, got {v!r}') from None
    if len(t) != 2:
        raise ValueError(f'{name} must be an int or a pair of ints, got {v!r}')
    return t


def squash(t):
    """(k, k) -> k for calling the functional ops with their simplest form."""
    return t[0] if t[0] == t[1] else t


def empty(shape, device=None, dtype=None):
    """Uninitialised storage for a new weight (float32 by default), on `device`."""
    arr = np.empty(shape, dtype=np.dtype(dtype) if dtype is not None else np.float32)
    return backend.to_device(arr, device) if device is not None else arr


def check_positive(value, name, layer):
    if any(v <= 0 for v in (value if isinstance(value, tuple) else (value,))):
        raise ValueError(f'{layer}: {name} must be positive, got {value}')

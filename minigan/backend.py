"""The CPU/GPU switch: which array module (NumPy or CuPy) holds an array.

The device of a tensor is read from its array's type, never from a flag.
CuPy is imported only when a "cuda" array is asked for.
"""
import numpy as np

_cupy = None


def cupy_or_raise():
    """Import CuPy and check a GPU is visible; raise one clear error otherwise."""
    global _cupy
    if _cupy is None:
        try:
            import cupy
        except ImportError as e:
            raise RuntimeError(
                'device "cuda" needs CuPy, which is not installed: '
                'pip install "minigan[cuda]" (or a cupy-cudaXXx wheel matching your CUDA)') from e
        try:
            n = cupy.cuda.runtime.getDeviceCount()
        except Exception as e:  # no driver, no device
            raise RuntimeError(f'device "cuda": CuPy is installed but no GPU is usable ({e})') from e
        if n == 0:
            raise RuntimeError('device "cuda": CuPy is installed but no GPU was found')
        _cupy = cupy
    return _cupy


def is_cupy_array(a):
    return type(a).__module__.startswith('cupy')


def get_array_module(a):
    """numpy for host arrays, cupy for device arrays (CuPy is imported from the array's own package,
    so this holds before any cupy_or_raise())."""
    if not type(a).__module__.startswith('cupy'):
        return np
    import cupy                        # imported already: the array is one of its
    return cupy


def device_of(a):
    return 'cuda' if type(a).__module__.startswith('cupy') else 'cpu'


def check_device(device):
    device = str(device)
    if device.startswith('cuda'):
        return 'cuda'
    if device == 'cpu':
        return 'cpu'
    raise ValueError(f'unknown device {device!r}: use "cpu" or "cuda"')


def to_device(a, device):
    """Move array `a` to "cpu" or "cuda" (a no-op when it is already there)."""
    device = check_device(device)
    if device == 'cuda':
        cp = cupy_or_raise()
        return a if is_cupy_array(a) else cp.asarray(a)
    return a.get() if is_cupy_array(a) else a


def array_module(device):
    return cupy_or_raise() if check_device(device) == 'cuda' else np


def cuda_available():
    try:
        cupy_or_raise()
        return True
    except RuntimeError:
        return False

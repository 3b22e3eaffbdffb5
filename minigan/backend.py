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
                'pip install "minigan[cuda13]" for a CUDA 13 driver, "minigan[cuda12]" for CUDA 12') from e
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
        if is_cupy_array(a):
            return a
        if np.ndim(a) != 0:                # a 0-d value is written by a fill kernel, which a graph records
            refuse_during_capture(
                'a host-to-device copy (mg.tensor(..., device="cuda"), t.to("cuda"), backend.to_device)',
                'a graph records it as a copy from a staging buffer that CuPy reuses, so every replay would '
                'read stale data; make the array before the capture and pass it in as an input of the step')
        return cp.asarray(a)
    if is_cupy_array(a):
        refuse_during_capture('a device-to-host copy (t.numpy(), np.asarray(t), backend.to_device(a, "cpu"))',
                              HOST_READ)
        return a.get()
    return a


def array_module(device):
    return cupy_or_raise() if check_device(device) == 'cuda' else np


# ---- the capture guard: calls that a CUDA graph cannot record ----------------------------------

class GraphCaptureError(RuntimeError):
    """A step being captured as a CUDA graph did something a graph cannot record (minigan.cuda_graph)."""


def is_capturing():
    """Whether CuPy's current stream is recording a CUDA graph. False while CuPy was never imported
    (the CPU path), so it costs nothing there."""
    if _cupy is None or getattr(_cupy.cuda.runtime, 'is_hip', False):
        return False
    try:
        return bool(_cupy.cuda.get_current_stream().is_capturing())
    except _cupy.cuda.runtime.CUDARuntimeError as e:
        if 900 <= e.status <= 909:   # cudaErrorStreamCapture*: asked on the legacy stream while another captures
            return True
        raise
    except RuntimeError:             # CuPy's own: the stream was capturing, and an error invalidated the capture
        return True


def refuse_during_capture(call, instead):
    """Raise GraphCaptureError naming `call` and what to do `instead` when a graph is being captured."""
    if is_capturing():
        raise GraphCaptureError(f'{call} inside a step being captured as a CUDA graph: {instead}')


HOST_READ = ('it waits for the GPU and copies to the host, which a graph cannot record; return the tensor '
             'from the step and read it after the replay (keep device flags on the device: xp.isfinite)')


def cuda_available():
    try:
        cupy_or_raise()
        return True
    except RuntimeError:
        return False

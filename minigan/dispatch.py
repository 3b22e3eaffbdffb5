"""Which implementation runs each kernel, on the CPU and on the GPU: the one place that decides.

Backends, per primitive or fused op, for NumPy arrays:
    numpy  the readable reference (functional/im2col.py, the NumPy ops in norm.py, ...)
    numba  JIT kernels (numba_kernels.py), compiled once and cached on disk
    cpp    the C++/OpenMP extension minigan._cpu (csrc/), GEMMs in NumPy's own BLAS
and for CuPy arrays:
    cupy   the same reference code run on CuPy: im2col and cuBLAS GEMMs, CuPy's element-wise ops
    cuda   minigan's CUDA kernels (kernels/*.cu, launched by cuda_kernels.py): implicit-GEMM
           convolution, fused batch norm and optimiser updates
    auto   on the CPU the fastest available: on the first call with a new shape, each candidate
           (cpp and numpy, or numba and numpy without the extension) runs it twice and
           the fastest is remembered for that shape; fused ops take cpp, then numba.
           On the GPU the cuda kernels when they load (and take the dtype), else cupy
A backend of the other device counts as auto: under 'cpp', CuPy arrays get auto's GPU choice,
and under 'cuda', NumPy arrays get auto's CPU choice.

    minigan.set_conv_backend('cpp')                    # every op
    minigan.set_conv_backend('numba', ops=['conv2d_forward'])
    with minigan.conv_backend('numpy'): ...            # for a block
    MINIGAN_CONV=numpy python train.py                 # the default, from the environment

A backend that is not available (no numba, no compiled extension, no GPU) is skipped by
auto; asking for it by name raises an error saying why and what to do. Nothing here
imports CuPy unless a GPU backend is named or a CuPy array comes by.
"""
import contextlib
import importlib.util
import os
import time
import warnings

from .backend import cupy_or_raise, cuda_available, is_cupy_array
from . import cpu_ext

CPU_BACKENDS = ('numpy', 'numba', 'cpp')
GPU_BACKENDS = ('cupy', 'cuda')
BACKENDS = ('auto',) + CPU_BACKENDS + GPU_BACKENDS
CONV_OPS = ('conv2d_forward', 'conv2d_backward_data', 'conv2d_backward_weight')
FUSED_OPS = ('batch_norm_forward', 'batch_norm_backward', 'leaky_relu', 'leaky_relu_grad',
             'adam_step', 'rmsprop_step', 'sgd_momentum_step', 'max_pool2d', 'max_pool2d_grad', 'matmul',
             'channel_sum', 'add_channel_bias')
OPS = CONV_OPS + FUSED_OPS

_choice = {}                 # op -> backend name
_auto_pick = {}              # (op, shape key) -> implementation, filled by auto's measurements


def _default_backend():
    name = os.environ.get('MINIGAN_CONV', 'auto').strip().lower() or 'auto'
    if name not in BACKENDS:
        raise ValueError(f'MINIGAN_CONV={name!r} is not a backend: use one of {", ".join(BACKENDS)}')
    if name != 'auto' and not _can_run(name):
        global _env_warned
        if not _env_warned:
            _env_warned = True
            warnings.warn(f'MINIGAN_CONV={name}: {_why_unavailable(name)}; using "auto" instead',
                          RuntimeWarning, stacklevel=3)
        return 'auto'
    return name


_env_warned = False


def set_conv_backend(name, ops=None):
    """Use backend `name` ('auto', 'numpy', 'numba', 'cpp', 'cupy', 'cuda') for `ops` (default: every op)."""
    name = str(name).lower()
    if name not in BACKENDS:
        raise ValueError(f'unknown backend {name!r}: use one of {", ".join(BACKENDS)}')
    ops = OPS if ops is None else ([ops] if isinstance(ops, str) else list(ops))
    for op in ops:
        if op not in OPS:
            raise ValueError(f'unknown op {op!r}: the ops are {", ".join(OPS)}')
    if name != 'auto' and not _can_run(name):
        raise RuntimeError(f'backend {name!r} is not available here: {_why_unavailable(name)}')
    for op in ops:
        _choice[op] = name
    _auto_pick.clear()


def get_conv_backend(op='conv2d_forward'):
    """The backend name chosen for `op` ('auto' unless set)."""
    return _choice.get(op) or _choice.setdefault(op, _default_backend())


@contextlib.contextmanager
def conv_backend(name, ops=None):
    """Context manager: run the block on backend `name`, then restore the previous choice."""
    saved = {op: get_conv_backend(op) for op in OPS}
    set_conv_backend(name, ops)
    try:
        yield
    finally:
        _choice.update(saved)
        _auto_pick.clear()


_available = None


def available_backends():
    """The CPU backends that can run here, always including 'numpy' (the GPU ones: available_gpu_backends)."""
    global _available
    if _available is None:
        names = ['numpy']
        if importlib.util.find_spec('numba') is not None:   # imported only when a numba kernel runs
            names.append('numba')
        if cpu_ext.ext() is not None:
            names.append('cpp')
        _available = tuple(names)
    return list(_available)


def available_gpu_backends():
    """The GPU backends that can run here: 'cupy' where CuPy sees a GPU, and 'cuda' where minigan's
    kernels load on it too. Imports CuPy (and compiles the kernels, once)."""
    if not cuda_available():
        return []
    from . import cuda_kernels
    return ['cupy', 'cuda'] if cuda_kernels.available() else ['cupy']


def _can_run(name):
    """Whether backend `name` can run here (asking about a GPU backend imports CuPy)."""
    return name in (available_gpu_backends() if name in GPU_BACKENDS else available_backends())


def _why_unavailable(name):
    if name in GPU_BACKENDS:
        try:
            cupy_or_raise()
        except RuntimeError as e:
            return str(e)
        from . import cuda_kernels
        return f'minigan\'s CUDA kernels do not load here ({cuda_kernels.load_error()}); use "cupy"'
    if name == 'cpp':
        return ('the C++ extension minigan._cpu was not built (no C++17 compiler at install?); '
                'reinstall with `pip install -e .` after installing g++, or use "numba"/"numpy"')
    return 'numba is not installed: `pip install numba`, or use "cpp"/"numpy"'


_numba_mod = False


def _numba():
    global _numba_mod
    if _numba_mod is False:
        try:
            from . import numba_kernels
            _numba_mod = numba_kernels
        except ImportError:
            _numba_mod = None
    return _numba_mod


# ---- the implementations, by backend ------------------------------------------------------------

_impls = {}


def _impl(backend, op):
    """The callable of `op` in `backend` (None where that backend has no such kernel)."""
    key = (backend, op)
    if key not in _impls:
        _impls[key] = _load_impl(backend, op)
    return _impls[key]


def _load_impl(backend, op):
    if backend == 'numpy':
        from . import reference_kernels
        return getattr(reference_kernels, op, None)
    if backend == 'numba':
        return getattr(_numba(), op, None)
    from . import cpp_kernels
    return getattr(cpp_kernels, op, None)


def _cpu_backend(op):
    """The backend for `op` on NumPy arrays: the chosen one, or auto when that is a GPU backend."""
    backend = _choice.get(op) or get_conv_backend(op)
    return 'auto' if backend in GPU_BACKENDS else backend


def _gpu_backend(op, dtype):
    """'cuda' or 'cupy', for `op` on CuPy arrays of `dtype`: the chosen GPU backend; under auto (or
    a CPU backend) the cuda kernels when they load and take the dtype, else cupy."""
    backend = _choice.get(op) or get_conv_backend(op)
    if backend in GPU_BACKENDS:
        return backend
    from . import cuda_kernels
    return 'cuda' if dtype in cuda_kernels.DTYPES and cuda_kernels.available() else 'cupy'


def _run(op, key, *args):
    """Run `op` on the chosen backend; under auto, measure the candidates once per key."""
    backend = _cpu_backend(op)
    if backend != 'auto':
        fn = _impl(backend, op) or _impl('numpy', op)
        return fn(*args)
    fn = _auto_pick.get((op, key))
    if fn is None:
        fn = _measure(op, args)
        _auto_pick[(op, key)] = fn
    return fn(*args)


def _candidates():
    """What auto measures: the compiled kernels against NumPy. numba is a candidate only where
    the C++ extension is missing: it never beat it on the conv layers (bench/RESULTS.md), and
    leaving it out spares auto numba's compile on first use."""
    names = available_backends()
    return [n for n in names if n != 'numba'] if 'cpp' in names else names


def _measure(op, args, repeats=3):
    """The fastest candidate for these arguments, timed on one thread.

    One thread, because on a busy two-core machine the thread pools disturb each other's
    timings (NumPy's OpenBLAS workers spin ~0.1 s after a call, stalling whatever OpenMP
    loop comes next), while the work each candidate does shows in its one-thread time;
    both parallelise alike. A warm-up call each, then `repeats` rounds taking turns, best
    time kept; the NumPy reference must win by 25% to be taken over a compiled kernel."""
    fns = {name: _impl(name, op) for name in _candidates()}
    fns = {name: fn for name, fn in fns.items() if fn is not None}
    best_t = dict.fromkeys(fns, float('inf'))
    threads = cpu_ext.get_num_threads()
    cpu_ext.set_num_threads(1)
    try:
        for fn in fns.values():
            fn(*args)                                 # warm-up (and numba's compile or cache load)
        for _ in range(repeats):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn(*args)
                best_t[name] = min(best_t[name], time.perf_counter() - t0)
    finally:
        cpu_ext.set_num_threads(threads)
    if 'numpy' in best_t and len(best_t) > 1:
        best_t['numpy'] *= 1.25
    _trim_heap()
    return fns[min(best_t, key=best_t.get)]


def _trim_heap():
    """Give the heap the candidates' temporaries left behind back to the OS (glibc only): the
    NumPy reference's column matrices are large, and would otherwise stay in the process's RSS."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes
            _malloc_trim = ctypes.CDLL('libc.so.6').malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None


def auto_choices():
    """What auto picked so far: {(op, shape key): backend module name}."""
    return {k: fn.__module__.rsplit('.', 1)[-1] for k, fn in _auto_pick.items()}


def kernel(op, *arrays):
    """The fused kernel chosen for `op`, or None: then the caller runs its own NumPy code.

    Fused ops replace a few lines of NumPy inside an op or optimizer (the reference stays
    there, readable). Under auto the compiled kernel is taken when there is one (cpp,
    then numba): a single pass over memory beats NumPy's several, as bench/RESULTS.md
    shows. CuPy arrays get cuda_kernels' kernel under cuda (and auto, where they load),
    or None (the CuPy code) under cupy and for ops without one; None placeholders are skipped.
    """
    gpu = [a for a in arrays if a is not None and is_cupy_array(a)]
    if gpu:
        if _gpu_backend(op, gpu[0].dtype) != 'cuda':
            return None
        from . import cuda_kernels
        return getattr(cuda_kernels, op, None)
    backend = _cpu_backend(op)
    if backend == 'numpy':
        return None
    names = available_backends()
    for name in (('cpp', 'numba') if backend == 'auto' else (backend,)):
        if name in names:
            fn = _impl(name, op)
            if fn is not None:
                return fn
    return None


# ---- the dispatched entry points -----------------------------------------------------------------

def _pair(v):
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _gpu_conv(op, dtype):
    """The conv primitive `op` for CuPy arrays: minigan's CUDA kernel, or the reference run on CuPy."""
    if _gpu_backend(op, dtype) == 'cuda':
        from . import cuda_kernels
        return getattr(cuda_kernels, op)
    from .functional import im2col
    return getattr(im2col, op)


def conv2d_forward(x, w, stride=1, padding=0):
    """y = conv2d(x, w): (N, C, H, W), (M, C, kh, kw) -> (N, M, OH, OW)."""
    if is_cupy_array(x):
        return _gpu_conv('conv2d_forward', x.dtype)(x, w, stride, padding)
    s, p = _pair(stride), _pair(padding)
    return _run('conv2d_forward', (x.shape, w.shape, x.dtype.char, s, p), x, w, s, p)


def conv2d_backward_data(gy, w, x_shape, stride=1, padding=0):
    """gx of conv2d for an input of shape x_shape (also conv_transpose2d's forward)."""
    if is_cupy_array(gy):
        return _gpu_conv('conv2d_backward_data', gy.dtype)(gy, w, x_shape, stride, padding)
    s, p, x_shape = _pair(stride), _pair(padding), tuple(int(d) for d in x_shape)
    return _run('conv2d_backward_data', (gy.shape, w.shape, x_shape, gy.dtype.char, s, p), gy, w, x_shape, s, p)


def conv2d_backward_weight(x, gy, w_shape, stride=1, padding=0):
    """gw of conv2d, of shape w_shape (M, C, kh, kw)."""
    if is_cupy_array(x):
        return _gpu_conv('conv2d_backward_weight', x.dtype)(x, gy, w_shape, stride, padding)
    s, p, w_shape = _pair(stride), _pair(padding), tuple(int(d) for d in w_shape)
    return _run('conv2d_backward_weight', (x.shape, gy.shape, w_shape, x.dtype.char, s, p), x, gy, w_shape, s, p)

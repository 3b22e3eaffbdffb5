"""The optional C++ extension minigan._cpu, the BLAS it computes with, and the thread setting.

The extension is built by setup.py when a compiler is there; if it is missing or
broken, `ext()` returns None after one warning and minigan runs on NumPy/numba.
Its conv GEMMs call the BLAS NumPy itself uses (OpenBLAS's ILP64 CBLAS, found by
symbol in NumPy's bundled library), else SciPy's Fortran BLAS (cython_blas), else
its own loops, so no BLAS is linked at build time and one thread pool serves both.
"""
import ctypes
import glob
import os
import warnings

_blas_lib = None             # ctypes handle of NumPy's OpenBLAS, when found
_threads = None


def ext():
    """The module minigan._cpu, or None when it was not built (it is loaded with minigan, see _load)."""
    return _ext


def _load():
    """minigan._cpu with its BLAS and thread count set, or None (with one warning) when it was not built.
    Run once, at import, so that the first kernel call does no set-up."""
    if os.environ.get('MINIGAN_NO_CPP'):
        return None
    try:
        from . import _cpu
    except ImportError as e:
        warnings.warn(f'minigan: the C++ kernels (minigan._cpu) are not available ({e}); '
                      'running on the NumPy/numba paths, several times slower. If minigan was '
                      'installed with `pip install .` and you run from its source folder, Python '
                      'imports that folder, which holds no compiled kernels: install with '
                      '`pip install -e .` instead, or run from another folder. Otherwise reinstall '
                      'with a C++17 compiler (pip install -e .) to build them.',
                      RuntimeWarning, stacklevel=2)
        return None
    _cpu.set_blas(*_find_blas())
    _cpu.set_num_threads(get_num_threads())
    return _cpu


def _numpy_openblas():
    """ctypes handle of the OpenBLAS inside NumPy's wheel (numpy.libs), or None."""
    import numpy
    site = os.path.dirname(os.path.dirname(numpy.__file__))
    for path in sorted(glob.glob(os.path.join(site, 'numpy.libs', '*openblas*'))):
        try:
            return ctypes.CDLL(path)          # already loaded by NumPy: the same instance
        except OSError:
            continue
    return None


def _find_blas():
    """(kind, sgemm address, dgemm address) for _cpu.set_blas; kind 1 CBLAS ILP64, 2 Fortran, 0 none."""
    global _blas_lib
    lib = _numpy_openblas()
    if lib is not None:
        for prefix in ('scipy_', ''):                   # ILP64 symbols carry the 64_ suffix
            try:
                s, d = getattr(lib, f'{prefix}cblas_sgemm64_'), getattr(lib, f'{prefix}cblas_dgemm64_')
            except AttributeError:
                continue
            _blas_lib = lib
            local = getattr(lib, 'openblas_set_num_threads_local', None)   # OpenBLAS >= 0.3.27
            return (1, ctypes.cast(s, ctypes.c_void_p).value, ctypes.cast(d, ctypes.c_void_p).value,
                    ctypes.cast(local, ctypes.c_void_p).value if local is not None else 0)
    try:
        from scipy.linalg import cython_blas
        get = ctypes.pythonapi.PyCapsule_GetPointer
        get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
        name = ctypes.pythonapi.PyCapsule_GetName
        name.restype, name.argtypes = ctypes.c_char_p, [ctypes.py_object]
        caps = cython_blas.__pyx_capi__
        return 2, get(caps['sgemm'], name(caps['sgemm'])), get(caps['dgemm'], name(caps['dgemm'])), 0
    except Exception:  # no SciPy, or a build without the capsules
        return 0, 0, 0, 0


def get_num_threads():
    """Threads minigan's kernels use: set_num_threads, else OMP_NUM_THREADS, else os.cpu_count()."""
    if _threads is not None:
        return _threads
    try:
        return max(1, int(os.environ.get('OMP_NUM_THREADS', '').split(',')[0]))
    except ValueError:
        return os.cpu_count() or 1


def set_num_threads(n):
    """Use n threads in minigan's C++ and numba kernels and in NumPy's OpenBLAS."""
    global _threads
    n = int(n)
    if n < 1:
        raise ValueError(f'set_num_threads needs a positive thread count, got {n}')
    _threads = n
    if _ext is not None:
        _ext.set_num_threads(n)
    if _blas_lib is not None or _numpy_openblas() is not None:
        lib = _blas_lib or _numpy_openblas()
        for sym in ('scipy_openblas_set_num_threads64_', 'openblas_set_num_threads64_',
                    'openblas_set_num_threads'):
            fn = getattr(lib, sym, None)
            if fn is not None:
                fn.argtypes = [ctypes.c_int]
                fn(n)
                break
    import sys
    if 'numba' in sys.modules:
        import numba
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


_ext = _load()

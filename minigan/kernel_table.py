"""Which function computes each kernel: one table per device, a row per op, a column per backend.

An op calls a named function here (`kernel_table.conv2d_forward(x, w, stride, padding)`); the
function takes its row's implementation for the chosen kernel backend and calls it. The
NumPy reference is the last column: the readable code every other column is tested against
(tests/test_kernel_table.py).

Kernel backends:
    cpp    the C++/OpenMP extension minigan._cpu (csrc/, wrapped by cpp_kernels.py)
    numba  JIT loops (numba_kernels.py), compiled on first use and cached on disk
    numpy  the reference (functional/im2col.py, reference.py)
    cuda   minigan's CUDA kernels (kernels/*.cu, launched by cuda_kernels.py), for CuPy arrays
    cupy   the reference run on CuPy arrays
    auto   the default, the same on every run: on the CPU cpp where the extension is built,
           else numba for the fused ops and the reference for the convolutions (on most model
           layers the reference's one big BLAS GEMM beats numba's loops: bench/RESULTS.md),
           else numpy; on the GPU cuda where the kernels load and take the dtype, else cupy
    tune   opt-in: the conv primitives time every CPU candidate on the first call of each shape
           and keep the fastest, printing each pick (minigan.tune(), or MINIGAN_TUNE=1)
A backend of the other device counts as auto: under 'cpp' CuPy arrays get auto's GPU choice.
An empty cell (None) is an op that backend has no kernel for: the reference runs.

    minigan.set_kernel_backend('numpy')                   # every op
    minigan.set_kernel_backend('numba', ops=['leaky_relu'])
    with minigan.kernel_backend('numpy'): ...             # for a block
    MINIGAN_KERNELS=numpy python -m pytest                # from the environment
The old names set_conv_backend, get_conv_backend, conv_backend and MINIGAN_CONV still work.
"""
import contextlib
import importlib.util
import os
import sys
import time
import warnings

import numpy as np

# the columns' modules: minigan's cpp_kernels.py, numba_kernels.py (numba itself is imported when a
# loop first runs), cuda_kernels.py, and the references reference.py and functional/im2col.py
from . import cpp_kernels as cpp, cpu_ext, cuda_kernels as cuda, numba_kernels as numba, reference as ref
from .backend import cuda_available, cupy_or_raise
from .functional import im2col

# op                          C++                          numba                         NumPy reference
CPU = {
    'conv2d_forward':         (cpp.conv2d_forward,         numba.conv2d_forward,         im2col.conv2d_forward),
    'conv2d_backward_data':   (cpp.conv2d_backward_data,   numba.conv2d_backward_data,   im2col.conv2d_backward_data),
    'conv2d_backward_weight': (cpp.conv2d_backward_weight, numba.conv2d_backward_weight, im2col.conv2d_backward_weight),
    'add_channel_bias':       (cpp.add_channel_bias,       None,                         ref.add_channel_bias),
    'channel_sum':            (cpp.channel_sum,            None,                         ref.channel_sum),
    'matmul':                 (cpp.matmul,                 None,                         ref.matmul),
    'leaky_relu':             (cpp.leaky_relu,             numba.leaky_relu,             ref.leaky_relu),
    'leaky_relu_grad':        (cpp.leaky_relu_grad,        numba.leaky_relu_grad,        ref.leaky_relu_grad),
    'batch_norm_forward':     (cpp.batch_norm_forward,     numba.batch_norm_forward,     ref.batch_norm_forward),
    'batch_norm_backward':    (cpp.batch_norm_backward,    numba.batch_norm_backward,    ref.batch_norm_backward),
    'max_pool2d':             (cpp.max_pool2d,             None,                         ref.max_pool2d),
    'max_pool2d_grad':        (cpp.max_pool2d_grad,        None,                         ref.max_pool2d_grad),
    'adam_step':              (cpp.adam_step,              numba.adam_step,              ref.adam_step),
    'rmsprop_step':           (cpp.rmsprop_step,           numba.rmsprop_step,           ref.rmsprop_step),
    'sgd_momentum_step':      (cpp.sgd_momentum_step,      numba.sgd_momentum_step,      ref.sgd_momentum_step),
}
CPU_COLUMNS = ('cpp', 'numba', 'numpy')

# op                          CUDA                         CuPy: the reference on CuPy arrays
GPU = {
    'conv2d_forward':         (cuda.conv2d_forward,         im2col.conv2d_forward),
    'conv2d_backward_data':   (cuda.conv2d_backward_data,   im2col.conv2d_backward_data),
    'conv2d_backward_weight': (cuda.conv2d_backward_weight, im2col.conv2d_backward_weight),
    'add_channel_bias':       (None,                        ref.add_channel_bias),
    'channel_sum':            (None,                        ref.channel_sum),
    'matmul':                 (None,                        ref.matmul),
    'leaky_relu':             (None,                        ref.leaky_relu),
    'leaky_relu_grad':        (None,                        ref.leaky_relu_grad),
    'batch_norm_forward':     (cuda.batch_norm_forward,     ref.batch_norm_forward),
    'batch_norm_backward':    (cuda.batch_norm_backward,    ref.batch_norm_backward),
    'max_pool2d':             (None,                        ref.max_pool2d),
    'max_pool2d_grad':        (None,                        ref.max_pool2d_grad),
    'adam_step':              (cuda.adam_step,              ref.adam_step),
    'rmsprop_step':           (cuda.rmsprop_step,           ref.rmsprop_step),
    'sgd_momentum_step':      (cuda.sgd_momentum_step,      ref.sgd_momentum_step),
}
GPU_COLUMNS = ('cuda', 'cupy')

OPS = tuple(CPU)
CONV_OPS = OPS[:3]
BACKENDS = ('auto', 'tune') + CPU_COLUMNS + GPU_COLUMNS


# ---- the named kernels the ops call: the chosen implementation of their row ------------------------
# NumPy arrays take _cpu[op], set from CPU by the backend choice; CuPy arrays take _gpu(op, dtype).

def conv2d_forward(x, w, stride, padding):
    """y = conv2d(x, w): (N, C, H, W), (M, C, kh, kw) -> (N, M, OH, OW); stride, padding (h, w) pairs."""
    fn = _cpu['conv2d_forward'] if isinstance(x, np.ndarray) else _gpu('conv2d_forward', x.dtype)
    return fn(x, w, stride, padding)


def conv2d_backward_data(gy, w, x_shape, stride, padding):
    """gx of conv2d for an input of shape x_shape (also conv_transpose2d's forward)."""
    fn = _cpu['conv2d_backward_data'] if isinstance(gy, np.ndarray) else _gpu('conv2d_backward_data', gy.dtype)
    return fn(gy, w, x_shape, stride, padding)


def conv2d_backward_weight(x, gy, w_shape, stride, padding):
    """gw of conv2d, of shape w_shape (M, C, kh, kw)."""
    fn = _cpu['conv2d_backward_weight'] if isinstance(x, np.ndarray) else _gpu('conv2d_backward_weight', x.dtype)
    return fn(x, gy, w_shape, stride, padding)


def add_channel_bias(y, b):
    """y += b over the channel axis, in place; returns y."""
    fn = _cpu['add_channel_bias'] if isinstance(y, np.ndarray) else _gpu('add_channel_bias', y.dtype)
    return fn(y, b)


def channel_sum(x):
    """x.sum(axis=(0, 2, 3)) of a 4-D float array."""
    fn = _cpu['channel_sum'] if isinstance(x, np.ndarray) else _gpu('channel_sum', x.dtype)
    return fn(x)


def matmul(a, b):
    """a @ b of 2-D arrays of one dtype."""
    fn = _cpu['matmul'] if isinstance(a, np.ndarray) else _gpu('matmul', a.dtype)
    return fn(a, b)


def leaky_relu(x, slope):
    """x where x > 0, else slope * x (slope 0: relu, NaN stays NaN)."""
    fn = _cpu['leaky_relu'] if isinstance(x, np.ndarray) else _gpu('leaky_relu', x.dtype)
    return fn(x, slope)


def leaky_relu_grad(gy, x, slope):
    """gy * (1 if x > 0 else slope)."""
    fn = _cpu['leaky_relu_grad'] if isinstance(x, np.ndarray) else _gpu('leaky_relu_grad', x.dtype)
    return fn(gy, x, slope)


def batch_norm_forward(x, weight, bias, eps):
    """(y, mean, biased var, invstd) of training-mode batch norm over channel axis 1."""
    fn = _cpu['batch_norm_forward'] if isinstance(x, np.ndarray) else _gpu('batch_norm_forward', x.dtype)
    return fn(x, weight, bias, eps)


def batch_norm_backward(x, weight, g, mean, invstd):
    """(gx, gw, gb) of training-mode batch norm."""
    fn = _cpu['batch_norm_backward'] if isinstance(x, np.ndarray) else _gpu('batch_norm_backward', x.dtype)
    return fn(x, weight, g, mean, invstd)


def max_pool2d(x, kernel, stride, padding):
    """(y, arg): window maxima and the offset i * kw + j of each (kernel, stride, padding: pairs)."""
    fn = _cpu['max_pool2d'] if isinstance(x, np.ndarray) else _gpu('max_pool2d', x.dtype)
    return fn(x, kernel, stride, padding)


def max_pool2d_grad(gy, arg, hw, kernel, stride, padding):
    """gx of max pooling: each gy added at its window's argmax."""
    fn = _cpu['max_pool2d_grad'] if isinstance(gy, np.ndarray) else _gpu('max_pool2d_grad', gy.dtype)
    return fn(gy, arg, hw, kernel, stride, padding)


# The optimiser kernels update in place and return False (nothing done) for arrays they cannot
# update in place (not contiguous, mixed dtypes): the reference does it then.

def adam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """One Adam (decoupled: AdamW) update of p, m, v in place."""
    fn = _cpu['adam_step'] if isinstance(p, np.ndarray) else _gpu('adam_step', p.dtype)
    fn(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step) or \
        ref.adam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step)


def rmsprop_step(p, g, s, lr, alpha, eps, weight_decay):
    """One RMSprop update (not centred, no momentum) of p and s in place."""
    fn = _cpu['rmsprop_step'] if isinstance(p, np.ndarray) else _gpu('rmsprop_step', p.dtype)
    fn(p, g, s, lr, alpha, eps, weight_decay) or ref.rmsprop_step(p, g, s, lr, alpha, eps, weight_decay)


def sgd_momentum_step(p, g, buf, lr, momentum, weight_decay):
    """One SGD update with momentum (no dampening, not Nesterov) of p and buf in place."""
    fn = _cpu['sgd_momentum_step'] if isinstance(p, np.ndarray) else _gpu('sgd_momentum_step', p.dtype)
    fn(p, g, buf, lr, momentum, weight_decay) or ref.sgd_momentum_step(p, g, buf, lr, momentum, weight_decay)


# ---- choosing the backend ------------------------------------------------------------------------

_choice = {}        # op -> backend name, as set (every op has one)
_cpu = {}           # op -> the CPU implementation that _choice picks from CPU
_gpu_cache = {}     # (op, dtype) -> the GPU implementation, filled on the first CuPy array


def _auto_column(op):
    """auto's rule on the CPU: cpp where the extension is built; else numba for the fused ops (for the
    convolutions the reference's one BLAS GEMM beats numba's loops on most layers: bench/RESULTS.md);
    else numpy."""
    names = available_backends()
    if 'cpp' in names:
        return 'cpp'
    if 'numba' in names and op not in CONV_OPS:
        return 'numba'
    return 'numpy'


def _cpu_implementation(op, backend):
    """The cell of CPU's row `op` that `backend` runs: auto's column for auto, for tune's fused ops and
    for a GPU backend; the reference where the column is empty."""
    if backend == 'tune' and op in CONV_OPS:
        return _Tuned(op)
    column = backend if backend in CPU_COLUMNS else _auto_column(op)
    return CPU[op][CPU_COLUMNS.index(column)] or CPU[op][-1]


def _gpu(op, dtype):
    """The GPU implementation of `op` for CuPy arrays of `dtype`: the chosen GPU backend's; under
    auto (or a CPU backend) the cuda kernel where the kernels load and take the dtype, else cupy's."""
    fn = _gpu_cache.get((op, dtype))
    if fn is None:
        cuda_fn, cupy_fn = GPU[op]
        backend = _choice[op]
        if backend not in GPU_COLUMNS:
            backend = 'cuda' if cuda.available() else 'cupy'
        use_cuda = backend == 'cuda' and cuda_fn is not None and dtype in cuda.DTYPES
        fn = _gpu_cache[(op, dtype)] = cuda_fn if use_cuda else cupy_fn
    return fn


def set_kernel_backend(name, ops=None):
    """Run `ops` (default: every op) on kernel backend `name`: 'auto', 'tune', 'cpp', 'numba',
    'numpy', 'cuda' or 'cupy'."""
    name = str(name).lower()
    if name not in BACKENDS:
        raise ValueError(f'unknown backend {name!r}: the kernel backends are {", ".join(BACKENDS)}')
    ops = OPS if ops is None else ([ops] if isinstance(ops, str) else list(ops))
    for op in ops:
        if op not in CPU:
            raise ValueError(f'unknown op {op!r}: the ops are {", ".join(OPS)}')
    if name not in ('auto', 'tune') and not _can_run(name):
        raise RuntimeError(f'kernel backend {name!r} is not available here: {_why_unavailable(name)}')
    for op in ops:
        _choice[op] = name
        _cpu[op] = _cpu_implementation(op, name)
    _gpu_cache.clear()


def get_kernel_backend(op='conv2d_forward'):
    """The kernel backend name chosen for `op` ('auto' unless set)."""
    return _choice[op]


def chosen(op, like=None):
    """The function that computes `op` now (a cell of the table): for NumPy arrays, or for arrays
    like `like` (a CuPy array: a cell of GPU)."""
    if like is None or isinstance(like, np.ndarray):
        return _cpu[op]
    return _gpu(op, like.dtype)


@contextlib.contextmanager
def kernel_backend(name, ops=None):
    """Context manager: run the block on kernel backend `name`, then restore the previous choice."""
    saved = dict(_choice)
    set_kernel_backend(name, ops)
    try:
        yield
    finally:
        for op, backend in saved.items():
            _choice[op], _cpu[op] = backend, _cpu_implementation(op, backend)
        _gpu_cache.clear()


def tune(enabled=True):
    """Measure instead of rule: each conv primitive times the CPU candidates on the first call of
    each shape, keeps the fastest and prints the pick. tune(False) returns to auto."""
    set_kernel_backend('tune' if enabled else 'auto', CONV_OPS)


set_conv_backend, get_conv_backend, conv_backend = set_kernel_backend, get_kernel_backend, kernel_backend

_available = None


def available_backends():
    """The CPU backends that can run here, always including 'numpy' (the GPU ones: available_gpu_backends)."""
    global _available
    if _available is None:
        names = ['numpy']
        if importlib.util.find_spec('numba') is not None:   # imported when a numba kernel first runs
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
    return ['cupy', 'cuda'] if cuda.available() else ['cupy']


def _can_run(name):
    """Whether backend `name` can run here (asking about a GPU backend imports CuPy)."""
    return name in (available_gpu_backends() if name in GPU_COLUMNS else available_backends())


def _why_unavailable(name):
    if name in GPU_COLUMNS:
        try:
            cupy_or_raise()
        except RuntimeError as e:
            return str(e)
        return f'minigan\'s CUDA kernels do not load here ({cuda.load_error()}); use "cupy"'
    if name == 'cpp':
        return ('the C++ extension minigan._cpu was not built (no C++17 compiler at install?); '
                'reinstall with `pip install -e .` after installing g++, or use "numba"/"numpy"')
    return 'numba is not installed: `pip install numba`, or use "cpp"/"numpy"'


def _backend_from_environment():
    """MINIGAN_KERNELS (or its old name MINIGAN_CONV), 'tune' where MINIGAN_TUNE=1, else 'auto'.
    A name that is not a backend here gives one warning, and auto."""
    var = 'MINIGAN_KERNELS' if os.environ.get('MINIGAN_KERNELS') else 'MINIGAN_CONV'
    name = os.environ.get(var, '').strip().lower()
    if not name:
        return 'tune' if os.environ.get('MINIGAN_TUNE', '') not in ('', '0') else 'auto'
    if name not in BACKENDS:
        why = f'not a kernel backend (use one of {", ".join(BACKENDS)})'
    elif name in ('auto', 'tune') or _can_run(name):
        return name
    else:
        why = _why_unavailable(name)
    warnings.warn(f'{var}={name}: {why}; using "auto" instead', RuntimeWarning, stacklevel=2)
    return 'auto'


# ---- tune: the measured choice, per shape --------------------------------------------------------

class _Tuned:
    """A conv primitive under tune: on the first call with new shapes, each candidate runs it (a
    warm-up call each, then three rounds taking turns, best time kept, on one thread so that the
    thread pools do not disturb each other's timings); the fastest is kept for those shapes and
    printed. The candidates: cpp and the reference, or numba and the reference without the
    extension (numba's convolutions never beat cpp's: bench/RESULTS.md). The reference must win
    by 25% over a compiled kernel."""

    def __init__(self, op):
        self.op, self.picks = op, {}

    def __call__(self, *args):
        key = tuple((a.shape, a.dtype.char) if isinstance(a, np.ndarray) else a for a in args)
        fn = self.picks.get(key)
        if fn is None:
            fn = self.picks[key] = self._fastest(args)
        return fn(*args)

    def _fastest(self, args, repeats=3):
        names = available_backends()
        names = [n for n in CPU_COLUMNS if n in names and not (n == 'numba' and 'cpp' in names)]
        fns = {n: CPU[self.op][CPU_COLUMNS.index(n)] for n in names}
        best = dict.fromkeys(fns, float('inf'))
        threads = cpu_ext.get_num_threads()
        cpu_ext.set_num_threads(1)
        try:
            for fn in fns.values():
                fn(*args)
            for _ in range(repeats):
                for n, fn in fns.items():
                    t0 = time.perf_counter()
                    fn(*args)
                    best[n] = min(best[n], time.perf_counter() - t0)
        finally:
            cpu_ext.set_num_threads(threads)
        handicap = {'numpy': 1.25} if len(best) > 1 else {}
        pick = min(best, key=lambda n: best[n] * handicap.get(n, 1))
        shapes = ' '.join(str(a.shape) for a in args if isinstance(a, np.ndarray))
        times = ', '.join(f'{n} {1e3 * t:.2f} ms' for n, t in best.items())
        print(f'minigan.tune: {self.op} {shapes} -> {pick} ({times})', file=sys.stderr)
        return fns[pick]


set_kernel_backend(_backend_from_environment())

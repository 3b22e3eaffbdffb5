"""minigan's CUDA kernels (kernels/*.cu) for CuPy arrays: finding the sources, loading, launching.

The same sources reach the GPU in one of two ways, picked per call by `via`:
    'nvrtc'      compiled at run time by CuPy's RawModule (NVRTC), once per process and device
                 (CuPy keeps the binaries in its on-disk cache too)
    'extension'  compiled by nvcc at install into the module minigan._cuda (only with
                 MINIGAN_BUILD_CUDA=1 where nvcc is found; see setup.py), whose functions take
                 device pointers as integers and launch on CuPy's current stream
    None         the way that loaded: the extension where it was built and runs on this GPU, else
                 NVRTC (with a RuntimeWarning saying why the extension was passed over)
Either way the launch (grid, block, arguments) is worked out here, in one place. Which way loads is
decided once, on first use, by cuda_loading.py (never during a graph capture); load_error says why not.

MINIGAN_CUDA_DEBUG=1 fills every kernel output (WRITES) with NaN before its launch, so an element a
kernel never writes shows as NaN, not as what the memory pool held; the GPU tests run so.

The kernels, each for float32 and float64 (the math is written at the top of each .cu file):
conv2d_forward, conv2d_backward_data, conv2d_backward_weight: implicit GEMMs tiled in shared memory
(tf32=True multiplies float32 on tensor cores); batch_norm_act_forward, batch_norm_act_backward:
training-mode batch norm and a leaky ReLU (slope 1: none, 0: ReLU); adam_step, rmsprop_step,
sgd_momentum_step: the optimisers' updates, in place.
The conv primitives, batch_norm_forward / batch_norm_backward and the optimiser steps take the
arguments of the CPU backends' kernels (cpp_kernels.py), so that dispatch.py can hand them CuPy
arrays. Arrays are checked on the way in: CuPy arrays on the current device, all float32 or all
float64, shapes that agree. Inputs that are not C-contiguous are copied; arrays updated in place
cannot be, and the optimiser steps then return False (nothing done), as the CPU kernels do.
"""
import functools
import importlib
import importlib.resources
import importlib.util
import os
import warnings
from pathlib import Path

import numpy as np

from . import cuda_launch, cuda_loading
from .backend import cupy_or_raise, is_cupy_array
from .cuda_launch import THREADS
from .functional.im2col import conv_output_size, pair

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# every kernel: (its source file, the dtype suffixes of its extern "C" entry points)
KERNELS = {
    'conv2d_forward': ('conv2d.cu', ('f32', 'f64', 'tf32')),
    'conv2d_backward_data': ('conv2d.cu', ('f32', 'f64', 'tf32')),
    'conv2d_backward_weight': ('conv2d.cu', ('f32', 'f64', 'tf32')),
    'conv2d_sum_splits': ('conv2d.cu', ('f32', 'f64')),
    'batch_norm_act_stats': ('batch_norm.cu', ('f32', 'f64')),
    'batch_norm_act_forward': ('batch_norm.cu', ('f32', 'f64')),
    'batch_norm_act_backward_sums': ('batch_norm.cu', ('f32', 'f64')),
    'batch_norm_act_backward': ('batch_norm.cu', ('f32', 'f64')),
    'adam_step': ('optimizers.cu', ('f32', 'f64')),
    'rmsprop_step': ('optimizers.cu', ('f32', 'f64')),
    'sgd_momentum_step': ('optimizers.cu', ('f32', 'f64')),
}

# every kernel: the positions of its output arrays among the launch arguments (the non-const pointers
# of its signature that it only writes; the optimisers update theirs in place, so they have none)
WRITES = {'conv2d_forward': (2,), 'conv2d_backward_data': (2,), 'conv2d_backward_weight': (2,),
          'conv2d_sum_splits': (1,), 'batch_norm_act_stats': (1,), 'batch_norm_act_forward': (4, 5, 6, 7),
          'batch_norm_act_backward_sums': (4,), 'batch_norm_act_backward': (7, 8, 9),
          'adam_step': (), 'rmsprop_step': (), 'sgd_momentum_step': ()}

INT_MAX = 2 ** 31 - 1           # the kernels index with 32-bit ints


# ---- the sources --------------------------------------------------------------------------------

def source_dir():
    """The folder of the .cu files.

    Installed (a wheel, or `pip install -e .`), it is the package minigan.kernels, which setup.py
    maps onto the repository's top-level kernels/ folder; in a source tree used without
    installing, it is that kernels/ folder beside the minigan package.
    """
    try:
        return importlib.resources.files('minigan.kernels')
    except ModuleNotFoundError:
        pass
    checkout = Path(__file__).resolve().parent.parent / 'kernels'
    if (checkout / '__init__.py').is_file():
        return checkout
    raise FileNotFoundError(f"minigan's CUDA sources are missing: there is no package minigan.kernels and no "
                            f'{checkout}; reinstall minigan (pip install .)')


def source(name):
    """The text of the kernel source `name` (e.g. 'conv2d.cu')."""
    path = source_dir() / name
    if not path.is_file():
        files = sorted({f for f, _ in KERNELS.values()})
        raise FileNotFoundError(f'no CUDA source {name!r} in {source_dir()}: the sources are {", ".join(files)}')
    return path.read_text()


def entry_points():
    """{name: source file} of every extern "C" kernel that this module launches."""
    return {f'{kernel}_{suffix}': file for kernel, (file, suffixes) in KERNELS.items() for suffix in suffixes}


# ---- the two ways of loading them ---------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _extension():
    """The nvcc-built module minigan._cuda, or None where it was not built (the default)."""
    if importlib.util.find_spec(f'{__package__}._cuda') is None:
        return None
    try:
        return importlib.import_module(f'{__package__}._cuda')
    except ImportError as e:                      # built, but it does not load here
        warnings.warn(f'minigan: the compiled CUDA kernels (minigan._cuda) do not load ({e}); '
                      'compiling them with NVRTC instead', RuntimeWarning, stacklevel=3)
        return None


def ways():
    """The ways of loading the kernels that exist here: 'nvrtc', and 'extension' where it was built."""
    return ['nvrtc'] + (['extension'] if _extension() is not None else [])


def _way(via):
    if via is None:
        loaded = _load()[0]
        return loaded or ('extension' if _extension() is not None else 'nvrtc')
    if via == 'extension' and _extension() is None:
        raise RuntimeError('via="extension": minigan._cuda was not built; reinstall with '
                           '`MINIGAN_BUILD_CUDA=1 pip install -e .` where nvcc is, or use via="nvrtc"')
    if via not in ('nvrtc', 'extension'):
        raise ValueError(f'via must be "nvrtc", "extension" or None, got {via!r}')
    return via


@functools.lru_cache(maxsize=None)
def _raw_module(file, device_id):
    """The RawModule of kernels/<file> for one GPU (NVRTC compiles it on first use)."""
    cp = cupy_or_raise()
    return cp.RawModule(code=source(file), options=('-std=c++17',))


@functools.lru_cache(maxsize=None)
def _raw_kernel(name, device_id):
    return _raw_module(entry_points()[name], device_id).get_function(name)


def debug_mode():
    """Whether MINIGAN_CUDA_DEBUG=1: kernel outputs are filled with NaN before each launch."""
    return os.environ.get('MINIGAN_CUDA_DEBUG') == '1'


def _launch(name, grid, block, args, via):
    """Run entry point `name` on CuPy's current stream; args: CuPy arrays and NumPy scalars."""
    cp = cupy_or_raise()
    if debug_mode():
        for i in WRITES[name.rsplit('_', 1)[0]]:
            args[i].fill(np.nan)
    if _way(via) == 'nvrtc':
        _raw_kernel(name, cp.cuda.Device().id)(grid, block, args)
    else:
        pointers = [a.data.ptr if is_cupy_array(a) else a for a in args]
        getattr(_extension(), name)(grid, block, cp.cuda.get_current_stream().ptr, *pointers)


def _probe(way):
    """None when the kernels load `way` and run on the current GPU, else why not, as text.

    Compiles every kernel (NVRTC) or finds each in the extension, then runs one tiny launch: an
    extension built for other GPUs has its kernels, but cannot run them here."""
    try:
        cp = cupy_or_raise()
        if way == 'extension':
            missing = [name for name in entry_points() if not hasattr(_extension(), name)]
            if missing:
                return f'minigan._cuda lacks {", ".join(missing)}: rebuild it (MINIGAN_BUILD_CUDA=1 pip install -e .)'
        else:
            for name in entry_points():
                _raw_kernel(name, cp.cuda.Device().id)
        p = cp.zeros(1, dtype=np.float32)
        sgd_momentum_step(p, p, cp.zeros(1, dtype=np.float32), 0.0, 0.0, 0.0, via=way)
        cp.cuda.get_current_stream().synchronize()
    except Exception as e:  # no CuPy, no GPU, no NVRTC, a compile error, no code for this GPU
        return f'{type(e).__name__}: {e}'
    return None


def _load():
    """(the way the kernels load here, None), else (None, why not): cuda_loading.load, which tries the
    extension first where it was built, once per process and never during a graph capture."""
    return cuda_loading.load(ways()[::-1], _probe)


def load_error():
    """None when the kernels load and run (the default way, on the current GPU), else why not, as text."""
    return _load()[1]


def available():
    """Whether the kernels can run here (compiles them on the first call)."""
    return load_error() is None


# ---- checks at the door -------------------------------------------------------------------------

def _array(op, what, a, ndim=None, like=None):
    """`a` as a C-contiguous CuPy array (a copy if it is not one), after checking what the kernels need."""
    if not is_cupy_array(a):
        raise TypeError(f'{op}: {what} is a {type(a).__module__}.{type(a).__name__}; the CUDA kernels take '
                        'CuPy arrays (move tensors with .to("cuda"), arrays with cupy.asarray)')
    if a.dtype not in DTYPES:
        raise TypeError(f'{op}: {what} is {a.dtype}; the CUDA kernels take float32 or float64 '
                        '(cast it, or run this op on CuPy\'s own code with MINIGAN_CONV=cupy)')
    if like is not None and a.dtype != like.dtype:
        raise TypeError(f'{op}: {what} is {a.dtype} but the other arrays are {like.dtype}: cast one so they match')
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f'{op}: {what} must be {ndim}-D, got shape {a.shape}')
    if a.size > INT_MAX:
        raise ValueError(f'{op}: {what} has {a.size} elements, more than the 2**31 - 1 that the kernels '
                         'index: use a smaller batch')
    _check_device(op, what, a)
    return cupy_or_raise().ascontiguousarray(a)


def _check_device(op, what, a):
    current = cupy_or_raise().cuda.Device().id
    if a.device.id != current:
        raise ValueError(f'{op}: {what} is on GPU {a.device.id} but the current device is GPU {current}: '
                         f'call it under `with cupy.cuda.Device({a.device.id}):`')


def _channel_vector(op, what, v, channels, like, default=None):
    """A (C,) array of like's dtype: v checked, or `default` everywhere when v is None (then required
    if there is no default)."""
    if v is None:
        if default is None:
            raise ValueError(f'{op}: {what} is required: a ({channels},) array')
        return cupy_or_raise().full(channels, default, dtype=like.dtype)
    v = _array(op, what, v, ndim=1, like=like)
    if v.shape != (channels,):
        raise ValueError(f'{op}: {what} has shape {v.shape}, but x has {channels} channels: it needs ({channels},)')
    return v


def _scalars(dtype, *values):
    return tuple(dtype.type(v) for v in values)


def _ints(*values):
    return tuple(np.int32(v) for v in values)


# ---- convolution --------------------------------------------------------------------------------

def _conv_geometry(op, x_shape, w_shape, stride, padding, gy_shape=None):
    """conv2d.cu's ConvGeometry (n, c, h, w, o, kh, kw, oh, ow, sh, sw, ph, pw), once the shapes agree."""
    (sh, sw), (ph, pw) = pair(stride, 'stride'), pair(padding, 'padding')
    if min(sh, sw) < 1 or min(ph, pw) < 0:
        raise ValueError(f'{op}: stride must be >= 1 and padding >= 0, got stride {stride} and padding {padding}')
    n, c, h, w = (int(d) for d in x_shape)
    o, c_w, kh, kw = (int(d) for d in w_shape)
    if c_w != c:
        raise ValueError(f'{op}: the input has {c} channels but the weight {tuple(w_shape)} expects {c_w} '
                         '(weight layout (C_out, C_in, kH, kW))')
    oh, ow = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    if oh < 1 or ow < 1:
        raise ValueError(f'{op}: the {kh}x{kw} kernel is larger than the input of spatial size {(h, w)} '
                         f'padded by {(ph, pw)}')
    if gy_shape is not None and tuple(gy_shape) != (n, o, oh, ow):
        raise ValueError(f'{op}: gy has shape {tuple(gy_shape)}, but an input {tuple(x_shape)} and a weight '
                         f'{tuple(w_shape)} with stride {(sh, sw)} and padding {(ph, pw)} give {(n, o, oh, ow)}')
    return n, c, h, w, o, kh, kw, oh, ow, sh, sw, ph, pw


def _suffix(op, dtype, tf32=False):
    """The entry point's dtype suffix: f32, f64, or tf32 (float32 on tensor cores, checked to be there)."""
    if not tf32:
        return 'f32' if dtype == np.float32 else 'f64'
    if dtype != np.float32:
        raise TypeError(f'{op}: tf32=True multiplies float32 on tensor cores, but the arrays are {dtype}')
    capability = int(cupy_or_raise().cuda.Device().compute_capability)
    if capability < 80:
        raise RuntimeError(f'{op}: tf32=True needs tensor cores of compute capability 8.0 or newer; this GPU '
                           f'has {capability // 10}.{capability % 10}')
    return 'tf32'


@functools.lru_cache(maxsize=None)
def _sm_count(device_id):
    """The multiprocessors of GPU device_id: the grid that fills it (cuda_launch.py)."""
    return int(cupy_or_raise().cuda.Device(device_id).attributes['MultiProcessorCount'])


def _implicit_gemm(op, suffix, a, b, out_shape, geometry, rows, cols, depth, via):
    """A new array of out_shape = the product of conv2d.cu's `op` on a and b, in the tile and with
    the depth splits of cuda_launch.py; split partials are added by conv2d_sum_splits, in order."""
    cp = cupy_or_raise()
    out = cp.empty(out_shape, dtype=a.dtype)
    if out.size > INT_MAX:
        raise ValueError(f'{op}: an output of {out.size} elements is more than the 2**31 - 1 that the '
                         'kernels index: use a smaller batch')
    if out.size == 0:
        return out
    if depth == 0:
        out.fill(0)
        return out
    tile = cuda_launch.conv_tile(cols)
    splits = cuda_launch.conv_splits(rows, cols, depth, tile, _sm_count(cp.cuda.Device().id))
    splits = max(1, min(splits, INT_MAX // out.size))
    target = out if splits == 1 else cp.empty((splits,) + tuple(out_shape), dtype=a.dtype)
    _launch(f'{op}_{suffix}', cuda_launch.conv_grid(rows, cols, tile, splits), (THREADS, 1, 1),
            (a, b, target) + _ints(*geometry, tile), via)
    if splits > 1:
        grid = (cuda_launch.elementwise_blocks(out.size), 1, 1)
        _launch(f'conv2d_sum_splits_{_suffix(op, a.dtype)}', grid, (THREADS, 1, 1),
                (target, out, np.int64(out.size), np.int32(splits)), via)
    return out


def conv2d_forward(x, w, stride=1, padding=0, *, tf32=False, via=None):
    """y = conv2d(x, w): x (N, C, H, W), w (O, C, KH, KW) -> y (N, O, OH, OW)."""
    op = 'conv2d_forward'
    x = _array(op, 'x', x, ndim=4)
    w = _array(op, 'w', w, ndim=4, like=x)
    g = _conv_geometry(op, x.shape, w.shape, stride, padding)
    n, c, _, _, o, kh, kw, oh, ow = g[:9]
    return _implicit_gemm(op, _suffix(op, x.dtype, tf32), x, w, (n, o, oh, ow), g, n * oh * ow, o, c * kh * kw, via)


def conv2d_backward_data(gy, w, x_shape, stride=1, padding=0, *, tf32=False, via=None):
    """gx of conv2d for an input of shape x_shape (N, C, H, W), from gy (N, O, OH, OW) and w (O, C, KH, KW).
    This is conv_transpose2d's forward too."""
    op = 'conv2d_backward_data'
    gy = _array(op, 'gy', gy, ndim=4)
    w = _array(op, 'w', w, ndim=4, like=gy)
    if len(x_shape) != 4:
        raise ValueError(f'{op}: x_shape must be (N, C, H, W), got {x_shape}')
    g = _conv_geometry(op, x_shape, w.shape, stride, padding, gy_shape=gy.shape)
    n, c, h, wd, o, kh, kw = g[:7]
    return _implicit_gemm(op, _suffix(op, gy.dtype, tf32), gy, w, (n, c, h, wd), g, n * h * wd, c, o * kh * kw, via)


def conv2d_backward_weight(x, gy, w_shape, stride=1, padding=0, *, tf32=False, via=None):
    """gw (O, C, KH, KW) of conv2d, from its input x (N, C, H, W) and gy (N, O, OH, OW)."""
    op = 'conv2d_backward_weight'
    x = _array(op, 'x', x, ndim=4)
    gy = _array(op, 'gy', gy, ndim=4, like=x)
    if len(w_shape) != 4:
        raise ValueError(f'{op}: w_shape must be (O, C, KH, KW), got {w_shape}')
    g = _conv_geometry(op, x.shape, w_shape, stride, padding, gy_shape=gy.shape)
    n, c, _, _, o, kh, kw, oh, ow = g[:9]
    return _implicit_gemm(op, _suffix(op, x.dtype, tf32), x, gy, (o, c, kh, kw), g, c * kh * kw, o, n * oh * ow, via)


# ---- batch norm with an activation --------------------------------------------------------------

def _check_slope(op, slope):
    if not 0 <= slope <= 1:
        raise ValueError(f'{op}: slope must be in [0, 1] (1: no activation, 0: ReLU, between: leaky ReLU), '
                         f'got {slope}')


def _per_channel(op, x):
    """(n, c, m) of x (N, C, ...) seen as (N, C, M)."""
    if x.ndim < 2:
        raise ValueError(f'{op}: x must be (N, C) or (N, C, ...), got shape {x.shape}')
    if x.size == 0:
        raise ValueError(f'{op}: x of shape {x.shape} is empty: batch norm needs values in every channel')
    n, c = x.shape[:2]
    return n, c, x.size // (n * c)


def _batch_norm_grid(channels, count, dtype):
    """batch_norm.cu's grid (C, blocks per channel, 1) and its partial statistics (C, blocks, 2)."""
    cp = cupy_or_raise()
    blocks = cuda_launch.batch_norm_blocks(channels, count, _sm_count(cp.cuda.Device().id))
    return (channels, blocks, 1), cp.empty((channels, blocks, 2), dtype=dtype)


def batch_norm_act_forward(x, weight, bias, eps, slope=1.0, *, via=None):
    """(y, mean, var, invstd) of y = leaky_relu(batch_norm(x), slope), training mode, in one kernel.

    x (N, C, ...) with statistics per channel over the other axes; weight, bias (C,) or None;
    var is the biased variance (norm.py turns it into the running variance)."""
    op = 'batch_norm_act_forward'
    x = _array(op, 'x', x)
    n, c, m = _per_channel(op, x)
    _check_slope(op, slope)
    weight = _channel_vector(op, 'weight', weight, c, x, 1)
    bias = _channel_vector(op, 'bias', bias, c, x, 0)
    cp = cupy_or_raise()
    y = cp.empty_like(x)
    mean, var, invstd = (cp.empty(c, dtype=x.dtype) for _ in range(3))
    grid, partial = _batch_norm_grid(c, n * m, x.dtype)
    suffix = _suffix(op, x.dtype)
    _launch(f'batch_norm_act_stats_{suffix}', grid, (THREADS, 1, 1), (x, partial) + _ints(n, c, m), via)
    args = (x, weight, bias, partial, y, mean, var, invstd) + _ints(n, c, m) + _scalars(x.dtype, eps, slope)
    _launch(f'{op}_{suffix}', grid, (THREADS, 1, 1), args, via)
    return y, mean, var, invstd


def batch_norm_act_backward(x, y, gy, weight, mean, invstd, slope=1.0, *, via=None):
    """(gx, gw, gb): the gradients of batch_norm_act_forward's y in x, weight and bias, from gy.

    y is that forward's output (the activation's mask is y > 0); mean and invstd its statistics."""
    op = 'batch_norm_act_backward'
    x = _array(op, 'x', x)
    n, c, m = _per_channel(op, x)
    _check_slope(op, slope)
    y, gy = _array(op, 'y', y, like=x), _array(op, 'gy', gy, like=x)
    for what, a in (('y', y), ('gy', gy)):
        if a.shape != x.shape:
            raise ValueError(f'{op}: {what} has shape {a.shape} but x has {x.shape}; they must match')
    weight = _channel_vector(op, 'weight', weight, c, x, 1)
    mean = _channel_vector(op, 'mean', mean, c, x)
    invstd = _channel_vector(op, 'invstd', invstd, c, x)
    cp = cupy_or_raise()
    gx = cp.empty_like(x)
    gw, gb = cp.empty(c, dtype=x.dtype), cp.empty(c, dtype=x.dtype)
    grid, partial = _batch_norm_grid(c, n * m, x.dtype)
    suffix = _suffix(op, x.dtype)
    args = (x, y, gy, mean, partial) + _ints(n, c, m) + _scalars(x.dtype, slope)
    _launch(f'batch_norm_act_backward_sums_{suffix}', grid, (THREADS, 1, 1), args, via)
    args = (x, y, gy, weight, mean, invstd, partial, gx, gw, gb) + _ints(n, c, m) + _scalars(x.dtype, slope)
    _launch(f'{op}_{suffix}', grid, (THREADS, 1, 1), args, via)
    return gx, gw, gb


def batch_norm_forward(x, weight, bias, eps):
    """(y, mean, biased var, invstd) of training-mode batch norm: the fused op of functional/norm.py."""
    return batch_norm_act_forward(x, weight, bias, eps, 1.0)


def batch_norm_backward(x, weight, g, mean, invstd):
    """(gx, gw, gb) of training-mode batch norm. With slope 1 the activation's mask is all ones and
    never reads y, so g stands in for it."""
    return batch_norm_act_backward(x, g, g, weight, mean, invstd, 1.0)


# ---- optimiser updates, in place ----------------------------------------------------------------

def _updatable(op, p, *state):
    """Whether p and its state arrays can be updated in place by the kernels (same shape checked)."""
    for what, a in (('p', p),) + tuple((f'state array {i}', s) for i, s in enumerate(state)):
        if not is_cupy_array(a):
            raise TypeError(f'{op}: {what} is a {type(a).__module__}.{type(a).__name__}; the CUDA kernels '
                            'take CuPy arrays')
        if a.shape != p.shape:
            raise ValueError(f'{op}: {what} has shape {a.shape} but the parameter has {p.shape}')
        _check_device(op, what, a)
    return p.dtype in DTYPES and all(a.dtype == p.dtype and a.flags.c_contiguous for a in (p,) + state)


def _gradient(op, g, p):
    if not is_cupy_array(g):
        raise TypeError(f'{op}: the gradient is a {type(g).__module__}.{type(g).__name__}; it must be a CuPy array')
    if g.shape != p.shape:
        raise ValueError(f'{op}: the gradient has shape {g.shape} but the parameter has {p.shape}')
    _check_device(op, 'the gradient', g)
    return cupy_or_raise().ascontiguousarray(g, dtype=p.dtype)


def _update(op, p, args, via):
    if p.size:
        grid = (cuda_launch.elementwise_blocks(p.size), 1, 1)
        _launch(f'{op}_{_suffix(op, p.dtype)}', grid, (THREADS, 1, 1), args, via)
    return True


def adam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step, *, via=None):
    """One Adam update (AdamW's when decoupled) of p, m, v in place, from gradient g at step >= 1.

    False, with nothing changed, when p, m, v are not C-contiguous float arrays of one dtype."""
    op = 'adam_step'
    if step < 1:
        raise ValueError(f'{op}: step counts from 1, got {step}')
    if not _updatable(op, p, m, v):
        return False
    g = _gradient(op, g, p)
    args = ((p, g, m, v, np.int64(p.size)) + _scalars(p.dtype, lr, beta1, beta2, eps, weight_decay)
            + _ints(bool(decoupled)) + _scalars(p.dtype, lr / (1 - beta1 ** step), (1 - beta2 ** step) ** 0.5))
    return _update(op, p, args, via)


def rmsprop_step(p, g, s, lr, alpha, eps, weight_decay, *, via=None):
    """One RMSprop update (not centred, no momentum) of p and its square average s in place."""
    op = 'rmsprop_step'
    if not _updatable(op, p, s):
        return False
    g = _gradient(op, g, p)
    return _update(op, p, (p, g, s, np.int64(p.size)) + _scalars(p.dtype, lr, alpha, eps, weight_decay), via)


def sgd_momentum_step(p, g, buf, lr, momentum, weight_decay, *, via=None):
    """One SGD update with momentum (no dampening, not Nesterov, the buffer already there), in place."""
    op = 'sgd_momentum_step'
    if not _updatable(op, p, buf):
        return False
    g = _gradient(op, g, p)
    return _update(op, p, (p, g, buf, np.int64(p.size)) + _scalars(p.dtype, lr, momentum, weight_decay), via)

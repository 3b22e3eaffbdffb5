"""minigan's CUDA kernels (kernels/*.cu, minigan/cuda_kernels.py) and the GPU side of the dispatcher.

On a GPU (tests marked gpu): every kernel, loaded each way there is (NVRTC, and the nvcc-built
extension where it was built), against the NumPy reference in float64 on the host, on random
shapes (batch 1, one channel, 1x1 kernels, odd and non-square sizes, strides 1-3, paddings 0-2,
several tiles, a split batch); gradcheck through the GPU path; the backends cupy and cuda.
Tolerances relative to the largest reference value: float64 1e-10, float32 1e-4, TF32 5e-3.
Anywhere: the sources compile with nvcc (where it is installed), keep to what NVRTC compiles,
are found through the package lookup, and the GPU backends are refused clearly without a GPU.
"""
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import minigan as mg
import minigan.nn.functional as F
from minigan import backend, cuda_kernels, dispatch, kernel_table, optim, reference
from minigan.functional import im2col as ref

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted((REPO / 'kernels').glob('*.cu'))
ENTRY = re.compile(r'extern "C" __global__ void(?: __launch_bounds__\(\w+\))?\s+(\w+)\(')

WAYS = ['nvrtc', pytest.param('extension', marks=pytest.mark.skipif(
    'extension' not in cuda_kernels.ways(), reason='minigan._cuda was not built (MINIGAN_BUILD_CUDA=1 at install)'))]

# (N, C, H, W, O, kh, kw, stride, padding)
SHAPES = [
    (1, 1, 5, 5, 1, 1, 1, 1, 0),          # batch 1, one channel, 1x1 kernel
    (2, 3, 7, 5, 4, 3, 2, 2, 1),
    (3, 2, 9, 8, 5, 4, 3, 3, 2),
    (1, 4, 6, 11, 3, 2, 3, (1, 3), (2, 0)),
    (2, 6, 4, 4, 7, 4, 4, 1, 0),          # a DCGAN last layer: 4x4 -> 1x1
    (5, 3, 1, 1, 2, 1, 1, 1, 2),          # 1x1 input, padding larger than the kernel
    (2, 70, 5, 6, 67, 3, 3, 1, 1),        # several 64-wide tiles along every axis of each GEMM
    (16, 3, 12, 12, 5, 3, 3, 1, 1),       # backward-weight splits the batch into partial sums
]
TOL = {'float32': 1e-4, 'float64': 1e-10, 'tf32': 5e-3}


def close(got, want, tol):
    """max |got - want| <= tol * max(|want|, 1), got fetched to the host in float64."""
    got = np.asarray(backend.to_device(got, 'cpu'), dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    err = np.abs(got - want).max() if got.size else 0.0
    assert err <= tol * max(np.abs(want).max(initial=0.0), 1.0), f'max error {err}'


def gpu(a, dtype):
    return backend.to_device(np.asarray(a, dtype=dtype), 'cuda')


def nvcc_path():
    for path in (shutil.which('nvcc'), '/usr/local/cuda/bin/nvcc'):
        if path and os.path.isfile(path):
            return path
    return None


# ---- the sources, checked without a GPU -------------------------------------------------------------

def test_there_are_kernel_sources():
    assert [p.name for p in SOURCES] == ['batch_norm.cu', 'conv2d.cu', 'optimizers.cu']


@pytest.mark.skipif(nvcc_path() is None, reason='nvcc is not installed')
@pytest.mark.parametrize('source', SOURCES, ids=lambda p: p.name)
def test_source_compiles_with_nvcc(source, tmp_path):
    """nvcc turns each file into PTX for sm_90, with every entry point under its unmangled name."""
    out = tmp_path / (source.stem + '.ptx')
    r = subprocess.run([nvcc_path(), '-arch=sm_90', '--ptx', '-std=c++17', str(source), '-o', str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    ptx = out.read_text()
    for name, file in cuda_kernels.entry_points().items():
        if file == source.name:
            assert re.search(rf'\.entry {name}\(', ptx), f'{name} is missing from the PTX of {file}'


@pytest.mark.parametrize('source', SOURCES, ids=lambda p: p.name)
def test_source_keeps_to_what_nvrtc_compiles(source):
    """NVRTC has no host headers, and RawModule finds kernels by their extern "C" names."""
    text = source.read_text()
    assert not re.search(r'^\s*#\s*include', text, re.M), f'{source.name} includes a header'
    assert text.count('__global__') == len(ENTRY.findall(text)), f'a __global__ of {source.name} is not extern "C"'


def test_launched_kernels_are_the_ones_the_sources_define():
    defined = {name: p.name for p in SOURCES for name in ENTRY.findall(p.read_text())}
    assert defined == cuda_kernels.entry_points()


def test_sources_are_found_through_the_package_lookup():
    found = cuda_kernels.source_dir()
    assert sorted(p.name for p in found.iterdir() if p.name.endswith('.cu')) == [p.name for p in SOURCES]
    for p in SOURCES:
        assert cuda_kernels.source(p.name) == p.read_text()
    with pytest.raises(FileNotFoundError, match='conv2d.cu'):
        cuda_kernels.source('conv3d.cu')


def test_sources_are_found_from_outside_the_repository(tmp_path):
    """From another folder the repository is not on sys.path: the installed package must lead to them."""
    code = textwrap.dedent('''
        import minigan.cuda_kernels as ck
        print(sorted(p.name for p in ck.source_dir().iterdir() if p.name.endswith('.cu')))
        print(len(ck.source('conv2d.cu')) > 0)
    ''')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split('\n')[:2] == [str([p.name for p in SOURCES]), 'True']


@pytest.mark.skipif('extension' not in cuda_kernels.ways(), reason='minigan._cuda was not built')
def test_extension_has_every_entry_point():
    from minigan import _cuda
    missing = [name for name in cuda_kernels.entry_points() if not hasattr(_cuda, name)]
    assert not missing


def test_kernels_refuse_host_arrays():
    x, w = np.zeros((1, 1, 3, 3), np.float32), np.zeros((1, 1, 1, 1), np.float32)
    with pytest.raises(TypeError, match='CuPy arrays'):
        cuda_kernels.conv2d_forward(x, w)
    with pytest.raises(TypeError, match='CuPy arrays'):
        cuda_kernels.adam_step(x, x, x, x, 1e-3, 0.9, 0.999, 1e-8, 0, False, 1)


@pytest.mark.skipif(mg.cuda_available(), reason='CuPy and a GPU are present')
def test_gpu_backends_are_refused_without_a_gpu():
    assert dispatch.available_gpu_backends() == []
    for name in ('cupy', 'cuda'):
        with pytest.raises(RuntimeError, match='not available here.*CuPy'):
            mg.set_conv_backend(name)
    r = subprocess.run([sys.executable, '-W', 'always', '-c', textwrap.dedent('''
        import numpy as np, minigan as mg, minigan.nn.functional as F
        x = mg.tensor(np.ones((1, 1, 4, 4), np.float32))
        y = F.conv2d(x, mg.tensor(np.ones((1, 1, 3, 3), np.float32)))
        print(mg.get_conv_backend('conv2d_forward'), float(y.numpy().sum()))
    ''')], capture_output=True, text=True, timeout=120, env=dict(os.environ, MINIGAN_CONV='cuda'))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ['auto', '36.0']
    assert 'MINIGAN_CONV=cuda' in r.stderr and 'CuPy' in r.stderr


# ---- the kernels on a GPU, against the float64 reference on the host -----------------------------------

def _precision(name):
    """(dtype, tf32) of a precision name, skipping TF32 on GPUs without it."""
    if name == 'tf32':
        if int(backend.cupy_or_raise().cuda.Device().compute_capability) < 80:
            pytest.skip('TF32 needs compute capability 8.0')
        return np.float32, True
    return np.dtype(name).type, False


@pytest.mark.gpu
@pytest.mark.parametrize('way', WAYS)
@pytest.mark.parametrize('precision', ['float32', 'float64', 'tf32'])
@pytest.mark.parametrize('shape', SHAPES, ids=str)
def test_conv_primitives_match_reference(way, precision, shape):
    n, c, h, w, o, kh, kw, s, p = shape
    rng = np.random.default_rng(SHAPES.index(shape))
    dtype, tf32 = _precision(precision)
    x = rng.standard_normal((n, c, h, w)).astype(dtype).astype(np.float64)   # values the GPU sees exactly
    wt = rng.standard_normal((o, c, kh, kw)).astype(dtype).astype(np.float64)
    sp, pp = ref.pair(s), ref.pair(p)
    y = ref.conv2d_forward(x, wt, sp, pp)
    gy = rng.standard_normal(y.shape).astype(dtype).astype(np.float64)
    gx, gw = ref.conv2d_backward_data(gy, wt, x.shape, sp, pp), ref.conv2d_backward_weight(x, gy, wt.shape, sp, pp)
    xg, wg, gyg = gpu(x, dtype), gpu(wt, dtype), gpu(gy, dtype)
    tol = TOL[precision]
    close(cuda_kernels.conv2d_forward(xg, wg, s, p, tf32=tf32, via=way), y, tol)
    close(cuda_kernels.conv2d_backward_data(gyg, wg, x.shape, s, p, tf32=tf32, via=way), gx, tol)
    close(cuda_kernels.conv2d_backward_weight(xg, gyg, wt.shape, s, p, tf32=tf32, via=way), gw, tol)


@pytest.mark.gpu
def test_conv_copies_inputs_that_are_not_contiguous():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 3, 9, 10))
    wt = rng.standard_normal((5, 4, 3, 3))
    xg = gpu(x, np.float64)[::2, :, 1:, ::-1]
    wg = gpu(wt, np.float64).transpose(1, 0, 3, 2)[:, :3]
    assert not xg.flags.c_contiguous and not wg.flags.c_contiguous
    want = ref.conv2d_forward(np.ascontiguousarray(x[::2, :, 1:, ::-1]),
                              np.ascontiguousarray(wt.transpose(1, 0, 3, 2)[:, :3]), 2, 1)
    close(cuda_kernels.conv2d_forward(xg, wg, 2, 1), want, TOL['float64'])


@pytest.mark.gpu
def test_conv_refuses_what_does_not_fit():
    x, w = gpu(np.zeros((2, 3, 5, 5)), np.float32), gpu(np.zeros((4, 3, 3, 3)), np.float32)
    with pytest.raises(TypeError, match='float64 but the other arrays are float32'):
        cuda_kernels.conv2d_forward(x, w.astype(np.float64))
    with pytest.raises(TypeError, match='float32 or float64'):
        cuda_kernels.conv2d_forward(x.astype(np.float16), w.astype(np.float16))
    with pytest.raises(ValueError, match='3 channels but the weight'):
        cuda_kernels.conv2d_forward(x, w[:, :2])
    with pytest.raises(ValueError, match='larger than the input'):
        cuda_kernels.conv2d_forward(x, gpu(np.zeros((4, 3, 7, 7)), np.float32))
    with pytest.raises(ValueError, match='gy has shape'):
        cuda_kernels.conv2d_backward_weight(x, gpu(np.zeros((2, 4, 2, 2)), np.float32), w.shape)
    with pytest.raises(TypeError, match='tf32'):
        cuda_kernels.conv2d_forward(x.astype(np.float64), w.astype(np.float64), tf32=True)


def _batch_norm_reference(x, weight, bias, gy, slope, eps):
    """y, mean, var, invstd, gx, gw, gb of leaky_relu(batch_norm(x), slope) by minigan's float64 CPU ops."""
    with mg.conv_backend('numpy'):
        xt, wt, bt = (mg.tensor(a, requires_grad=True) for a in (x, weight, bias))
        z = F.batch_norm(xt, None, None, wt, bt, True, eps=eps)
        y = z if slope == 1 else F.leaky_relu(z, slope) if slope > 0 else F.relu(z)
        y.backward(mg.tensor(gy))
    axes = (0,) + tuple(range(2, x.ndim))
    var = x.var(axes)
    return y.numpy(), x.mean(axes), var, 1 / np.sqrt(var + eps), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


@pytest.mark.gpu
@pytest.mark.parametrize('way', WAYS)
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('slope', [1.0, 0.0, 0.2], ids=['none', 'relu', 'leaky'])
@pytest.mark.parametrize('shape', [(2, 3, 4, 5), (1, 1, 3, 3), (7, 4), (3, 300, 2, 2), (16, 2, 9, 9)], ids=str)
def test_batch_norm_act_matches_reference(way, dtype, slope, shape):
    rng = np.random.default_rng(2)
    c = shape[1]
    x, gy = (rng.standard_normal(shape) * 2 + 1).astype(dtype), rng.standard_normal(shape).astype(dtype)
    weight, bias = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    want = _batch_norm_reference(*(a.astype(np.float64) for a in (x, weight, bias, gy)), slope, 1e-5)
    xg, wg = gpu(x, dtype), gpu(weight, dtype)
    y, mean, var, invstd = cuda_kernels.batch_norm_act_forward(xg, wg, gpu(bias, dtype), 1e-5, slope, via=way)
    got = (y, mean, var, invstd) + cuda_kernels.batch_norm_act_backward(xg, y, gpu(gy, dtype), wg, mean, invstd,
                                                                        slope, via=way)
    for g, w in zip(got, want):
        close(g, w, TOL[np.dtype(dtype).name])


@pytest.mark.gpu
def test_plain_batch_norm_kernels_take_no_weight_or_bias():
    rng = np.random.default_rng(3)
    x, g = rng.standard_normal((4, 3, 2, 2)), rng.standard_normal((4, 3, 2, 2))
    want = _batch_norm_reference(x, np.ones(3), np.zeros(3), g, 1.0, 1e-5)
    y, mean, var, invstd = cuda_kernels.batch_norm_forward(gpu(x, np.float64), None, None, 1e-5)
    got = (y, mean, var, invstd) + cuda_kernels.batch_norm_backward(gpu(x, np.float64), None, gpu(g, np.float64),
                                                                    mean, invstd)
    for a, b in zip(got, want):
        close(a, b, TOL['float64'])


OPTIMIZERS = {   # a minigan optimizer, and the same update through the kernel: (p, g, state, step) -> bool
    'adam': (lambda ps: optim.Adam(ps, lr=1e-2, betas=(0.5, 0.999)),
             lambda p, g, s, t, via: cuda_kernels.adam_step(p, g, s[0], s[1], 1e-2, 0.5, 0.999, 1e-8, 0, False, t,
                                                            via=via)),
    'adam_l2': (lambda ps: optim.Adam(ps, lr=1e-2, weight_decay=0.1),
                lambda p, g, s, t, via: cuda_kernels.adam_step(p, g, s[0], s[1], 1e-2, 0.9, 0.999, 1e-8, 0.1, False,
                                                               t, via=via)),
    'adamw': (lambda ps: optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
              lambda p, g, s, t, via: cuda_kernels.adam_step(p, g, s[0], s[1], 1e-2, 0.9, 0.999, 1e-8, 0.1, True, t,
                                                             via=via)),
    'rmsprop': (lambda ps: optim.RMSprop(ps, lr=1e-2, weight_decay=0.01),
                lambda p, g, s, t, via: cuda_kernels.rmsprop_step(p, g, s[0], 1e-2, 0.99, 1e-8, 0.01, via=via)),
}


@pytest.mark.gpu
@pytest.mark.parametrize('way', WAYS)
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('case', list(OPTIMIZERS))
def test_optimizer_steps_match_reference(way, dtype, case):
    make, kernel_step = OPTIMIZERS[case]
    rng = np.random.default_rng(4)
    p0 = rng.standard_normal((5, 7)).astype(dtype)
    grads = [rng.standard_normal((5, 7)).astype(dtype) for _ in range(4)]
    with mg.conv_backend('numpy'):
        p = mg.tensor(p0.astype(np.float64), requires_grad=True)
        opt = make([p])
        for g in grads:
            p.grad = mg.tensor(g.astype(np.float64))
            opt.step()
    cp = backend.cupy_or_raise()
    pg, state = gpu(p0, dtype), [cp.zeros(p0.shape, dtype), cp.zeros(p0.shape, dtype)]
    for t, g in enumerate(grads, 1):
        assert kernel_step(pg, gpu(g, dtype), state, t, way) is True
    close(pg, p.numpy(), TOL[np.dtype(dtype).name])


@pytest.mark.gpu
@pytest.mark.parametrize('way', WAYS)
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_sgd_momentum_step_matches_reference(way, dtype):
    """The kernel takes over from the second step, once the optimizer has made the buffer."""
    rng = np.random.default_rng(5)
    p0, grads = rng.standard_normal(300).astype(dtype), [rng.standard_normal(300).astype(dtype) for _ in range(4)]
    with mg.conv_backend('numpy'):
        p = mg.tensor(p0.astype(np.float64), requires_grad=True)
        opt = optim.SGD([p], lr=1e-2, momentum=0.9, weight_decay=0.01)
        for g in grads:
            p.grad = mg.tensor(g.astype(np.float64))
            opt.step()
    buf = grads[0].astype(np.float64) + 0.01 * p0
    pg, bufg = gpu(p0 - 1e-2 * buf, dtype), gpu(buf, dtype)
    for g in grads[1:]:
        assert cuda_kernels.sgd_momentum_step(pg, gpu(g, dtype), bufg, 1e-2, 0.9, 0.01, via=way) is True
    close(pg, p.numpy(), TOL[np.dtype(dtype).name])


@pytest.mark.gpu
def test_optimizer_step_declines_state_it_cannot_update_in_place():
    cp = backend.cupy_or_raise()
    p = gpu(np.ones((4, 6)), np.float32)
    m = cp.zeros((6, 4), np.float32).T                      # the right shape, not C-contiguous
    v = cp.zeros((4, 6), np.float32)
    assert cuda_kernels.adam_step(p, p, m, v, 1e-2, 0.9, 0.999, 1e-8, 0, False, 1) is False
    np.testing.assert_array_equal(backend.to_device(p, 'cpu'), np.ones((4, 6)))
    with pytest.raises(ValueError, match='shape'):
        cuda_kernels.rmsprop_step(p, p, cp.zeros(3, np.float32), 1e-2, 0.99, 1e-8, 0)


# ---- through the autograd and the dispatcher on the GPU --------------------------------------------------

CASES = {
    'conv2d': (lambda x, w: (F.conv2d(x, w, None, 2, 1) ** 2).sum(), [(2, 3, 7, 6), (4, 3, 3, 3)]),
    'conv_transpose2d': (lambda x, w: (F.conv_transpose2d(x, w, None, 2, 1) ** 2).sum(), [(2, 4, 3, 5), (4, 3, 4, 4)]),
    'batch_norm_leaky_relu': (lambda x, g, b: (F.leaky_relu(F.batch_norm(x, None, None, g, b, True), 0.2) ** 2).sum(),
                              [(4, 3, 3, 5), (3,), (3,)]),
}


@pytest.mark.gpu
@pytest.mark.parametrize('case', list(CASES))
def test_gradcheck_through_the_cuda_kernels(case):
    fn, shapes = CASES[case]
    rng = np.random.default_rng(6)
    inputs = [mg.tensor(rng.standard_normal(s), requires_grad=True, device='cuda') for s in shapes]
    with mg.conv_backend('cuda'):
        assert mg.gradcheck(fn, inputs)


@pytest.mark.gpu
def test_gradgradcheck_conv_and_batch_norm_through_the_cuda_kernels():
    rng = np.random.default_rng(7)
    x = mg.tensor(rng.standard_normal((2, 2, 5, 4)), requires_grad=True, device='cuda')
    w = mg.tensor(rng.standard_normal((3, 2, 3, 3)), requires_grad=True, device='cuda')
    g = mg.tensor(rng.standard_normal(3) + 1, requires_grad=True, device='cuda')
    y = mg.tensor(rng.standard_normal((4, 3, 2, 2)), requires_grad=True, device='cuda')
    with mg.conv_backend('cuda'):
        assert mg.gradgradcheck(lambda x, w: F.leaky_relu(F.conv2d(x, w, None, 1, 1), 0.2), [x, w])
        assert mg.gradgradcheck(lambda y, g: F.batch_norm(y, None, None, g, None, True), [y, g])


@pytest.mark.gpu
@pytest.mark.parametrize('case', list(CASES))
def test_gpu_backends_agree_with_the_cpu(case):
    fn, shapes = CASES[case]
    rng = np.random.default_rng(8)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    results = []
    for name, device in (('numpy', 'cpu'), ('cupy', 'cuda'), ('cuda', 'cuda')):
        with mg.conv_backend(name):
            ts = [mg.tensor(a, requires_grad=True, device=device) for a in arrays]
            out = fn(*ts)
            out.backward()
            results.append([out.numpy()] + [t.grad.numpy() for t in ts])
    for other in results[1:]:
        for a, b in zip(other, results[0]):
            close(a, b.astype(np.float64), TOL['float32'])


@pytest.mark.gpu
def test_kernel_table_picks_the_chosen_gpu_backend():
    assert kernel_table.available_gpu_backends() == ['cupy', 'cuda']
    p = gpu(np.ones(3), np.float32)
    with mg.kernel_backend('auto'):
        assert kernel_table.chosen('adam_step', p) is cuda_kernels.adam_step
        assert kernel_table.chosen('adam_step', p.astype(np.float16)) is reference.adam_step   # a dtype the kernels lack
    with mg.kernel_backend('cuda'):
        assert kernel_table.chosen('batch_norm_forward', p) is cuda_kernels.batch_norm_forward
        assert kernel_table.chosen('max_pool2d', p) is reference.max_pool2d          # no CUDA kernel: the reference
        x, w = np.random.default_rng(9).standard_normal((2, 3, 6, 6)), np.ones((4, 3, 3, 3))
        close(kernel_table.conv2d_forward(x, w, (1, 1), (1, 1)), ref.conv2d_forward(x, w, 1, 1), TOL['float64'])  # CPU: auto
    with mg.kernel_backend('cupy'):
        assert kernel_table.chosen('adam_step', p) is reference.adam_step


@pytest.mark.gpu
def test_env_var_selects_a_gpu_backend():
    r = subprocess.run([sys.executable, '-c', 'import minigan as mg; print(mg.get_conv_backend("conv2d_forward"))'],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, MINIGAN_CONV='cupy'))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ['cupy']

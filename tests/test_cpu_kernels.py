"""The CPU kernels (C++ extension and numba) against the NumPy reference, and the backend choice.

Every fast kernel must give the reference's numbers: conv primitives on random
shapes (batch 1, one channel, 1x1 kernels, odd and non-square sizes, strides 1-3,
paddings 0-2, non-contiguous inputs, float32 and float64), the fused element-wise
kernels through the ops that use them, gradcheck through each backend, and the
kernel backend's choice, environment variable and fallbacks (the table itself and the
call path: test_kernel_table.py). Tolerances: float64
rtol 1e-10, float32 rtol 1e-4 (relative to the largest value). Seeds fixed per test.
"""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import minigan as mg
import minigan.nn.functional as F
from minigan import cpp_kernels, kernel_table, numba_kernels, optim
from minigan.functional import im2col as ref

FAST = [b for b in ('cpp', 'numba') if b in kernel_table.available_backends()]
fast_backend = pytest.mark.parametrize('backend', FAST or [pytest.param('none', marks=pytest.mark.skip(
    reason='neither the C++ extension nor numba is available'))])

# (N, C, H, W, O, kh, kw, stride, padding): batch 1, one channel, 1x1, odd, non-square, strides 1-3, pads 0-2
SHAPES = [
    (1, 1, 5, 5, 1, 1, 1, 1, 0),
    (2, 3, 7, 5, 4, 3, 2, 2, 1),
    (3, 2, 9, 8, 5, 4, 3, 3, 2),
    (1, 4, 6, 11, 3, 2, 3, (1, 3), (2, 0)),
    (4, 5, 8, 8, 6, 4, 4, 2, 1),
    (2, 6, 4, 4, 7, 4, 4, 1, 0),          # a DCGAN last layer: 4x4 -> 1x1
    (5, 3, 1, 1, 2, 1, 1, 1, 2),          # 1x1 input, padding larger than the kernel
]
TOL = {np.float32: 1e-4, np.float64: 1e-10}


def close(a, b, dtype):
    """max |a - b| <= tol * max(|b|, 1) for the dtype's tolerance."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype == dtype, (a.shape, b.shape, a.dtype, b.dtype)
    err = np.abs(a.astype(np.float64) - b).max() if a.size else 0.0
    assert err <= TOL[dtype] * max(np.abs(b).max(initial=0.0), 1.0), f'max error {err}'


def column(backend):
    """The module of a backend's kernels (same signatures as functional/im2col.py's primitives)."""
    return {'cpp': cpp_kernels, 'numba': numba_kernels}[backend]


@fast_backend
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('shape', SHAPES, ids=str)
def test_conv_primitives_match_reference(backend, dtype, shape):
    n, c, h, w, o, kh, kw, s, p = shape
    rng = np.random.default_rng(hash(shape) % 2**32)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((o, c, kh, kw)).astype(dtype)
    k = column(backend)
    sp, pp = ref.pair(s), ref.pair(p)
    y = ref.conv2d_forward(x, wt, sp, pp)
    gy = rng.standard_normal(y.shape).astype(dtype)
    close(k.conv2d_forward(x, wt, sp, pp), y, dtype)
    close(k.conv2d_backward_data(gy, wt, x.shape, sp, pp), ref.conv2d_backward_data(gy, wt, x.shape, sp, pp), dtype)
    close(k.conv2d_backward_weight(x, gy, wt.shape, sp, pp),
          ref.conv2d_backward_weight(x, gy, wt.shape, sp, pp), dtype)


@fast_backend
def test_conv_primitives_take_non_contiguous_inputs(backend):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((6, 3, 9, 10)).astype(np.float32)
    x = base[::2, :, 1:, ::-1]                              # strided, reversed, offset view
    wt = rng.standard_normal((5, 4, 3, 3)).astype(np.float32).transpose(1, 0, 3, 2)[:, :3]   # (4, 3, 3, 3) view
    assert not x.flags.c_contiguous and not wt.flags.c_contiguous
    k = column(backend)
    y = ref.conv2d_forward(np.ascontiguousarray(x), np.ascontiguousarray(wt), (2, 2), (1, 1))
    close(k.conv2d_forward(x, wt, (2, 2), (1, 1)), y, np.float32)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gy = np.ascontiguousarray(gy.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)   # same values, NHWC memory
    assert not gy.flags.c_contiguous
    close(k.conv2d_backward_data(gy, wt, x.shape, (2, 2), (1, 1)),
          ref.conv2d_backward_data(np.ascontiguousarray(gy), np.ascontiguousarray(wt), x.shape, (2, 2), (1, 1)),
          np.float32)
    close(k.conv2d_backward_weight(x, gy, wt.shape, (2, 2), (1, 1)),
          ref.conv2d_backward_weight(np.ascontiguousarray(x), np.ascontiguousarray(gy), wt.shape, (2, 2), (1, 1)),
          np.float32)


@pytest.mark.skipif('cpp' not in kernel_table.available_backends(), reason='C++ extension not built')
@pytest.mark.parametrize('threads', [1, 2])
@pytest.mark.parametrize('batch', [9, 1])
def test_cpp_conv_batch_split_over_threads_matches_reference(threads, batch):
    """Large enough for the batch to be split into chunks over the threads (batch 9), or, at batch 1,
    for each GEMM (about 1M multiply-adds, im2col + GEMM: the direct conv off) to be split into row
    blocks (forward) or column blocks (the two backward GEMMs, wider than tall): same numbers."""
    from minigan import cpu_ext
    rng = np.random.default_rng(2)
    c, m = (8, 16) if batch > 1 else (16, 64)
    x = rng.standard_normal((batch, c, 16, 16)).astype(np.float32)  # above the size that is split
    wt = rng.standard_normal((m, c, 4, 4)).astype(np.float32)
    ext, saved = cpu_ext.ext(), cpu_ext.get_num_threads()
    chunk = ext.get_chunk_bytes()
    try:
        mg.set_num_threads(threads)
        ext.set_direct(False)
        ext.set_chunk_bytes(8 * 1024)                       # a few samples per chunk
        y = ref.conv2d_forward(x, wt, 2, 1)
        gy = rng.standard_normal(y.shape).astype(np.float32)
        close(ext.conv2d_forward(x, wt, 2, 2, 1, 1), y, np.float32)
        close(ext.conv2d_backward_data(gy, wt, 16, 16, 2, 2, 1, 1), ref.conv2d_backward_data(gy, wt, x.shape, 2, 1),
              np.float32)
        close(ext.conv2d_backward_weight(x, gy, 4, 4, 2, 2, 1, 1),
              ref.conv2d_backward_weight(x, gy, wt.shape, 2, 1), np.float32)
    finally:
        ext.set_direct(True)
        ext.set_chunk_bytes(chunk)
        mg.set_num_threads(saved)


@pytest.mark.skipif('cpp' not in kernel_table.available_backends(), reason='C++ extension not built')
@pytest.mark.parametrize('threads', [1, 2])
def test_cpp_matmul_split_over_threads_matches_numpy(threads):
    """Tall products (over 1M multiply-adds) split by rows, wide ones by columns, small ones serial,
    transposes included. Seed 3."""
    from minigan import cpu_ext
    rng = np.random.default_rng(3)
    saved = cpu_ext.get_num_threads()
    try:
        mg.set_num_threads(threads)
        for (m, k, n) in [(600, 70, 40), (3, 400, 1000), (1, 5, 7), (64, 1, 1)]:   # 1.7M and 1.2M: split
            for ta in (False, True):
                for tb in (False, True):
                    a = rng.standard_normal((k, m) if ta else (m, k))
                    b = rng.standard_normal((n, k) if tb else (k, n))
                    expected = (a.T if ta else a) @ (b.T if tb else b)
                    close(cpu_ext.ext().matmul(a, b, ta, tb), expected, np.float64)
    finally:
        mg.set_num_threads(saved)


@pytest.mark.skipif('cpp' not in kernel_table.available_backends(), reason='C++ extension not built')
def test_cpp_im2col_col2im_and_transpose_match_reference():
    from minigan import cpu_ext
    ext = cpu_ext.ext()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 6))
    col = ref.im2col(x, 3, 2, (2, 1), (1, 2))
    close(ext.im2col(x, 3, 2, 2, 1, 1, 2), col.reshape(-1, col.shape[3] * col.shape[4] * col.shape[5]), np.float64)
    back = ref.col2im(col, x.shape, (2, 1), (1, 2))
    close(ext.col2im(col.reshape(ext.im2col(x, 3, 2, 2, 1, 1, 2).shape), 2, 3, 7, 6, 3, 2, 2, 1, 1, 2), back,
          np.float64)
    a = rng.standard_normal((3, 13, 21)).astype(np.float32)
    np.testing.assert_array_equal(ext.transpose(a), a.transpose(0, 2, 1))
    b = ext.matmul(a[0], a[1].T.copy())
    close(b, (a[0].astype(np.float64) @ a[1].T.astype(np.float64)).astype(np.float32), np.float32)


@pytest.mark.skipif('cpp' not in kernel_table.available_backends(), reason='C++ extension not built')
def test_cpp_results_are_channels_last_views_with_reference_values():
    """The C++ conv returns NCHW-shaped views of NHWC memory, which the other kernels take as they are."""
    from minigan import cpp_kernels
    rng = np.random.default_rng(10)
    x = rng.standard_normal((3, 4, 7, 6)).astype(np.float32)
    w = rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
    y = cpp_kernels.conv2d_forward(x, w, (1, 1), (1, 1))
    assert y.shape == (3, 5, 7, 6) and y.transpose(0, 2, 3, 1).flags.c_contiguous
    close(y, ref.conv2d_forward(x, w, 1, 1), np.float32)
    yc = np.ascontiguousarray(y)
    out = cpp_kernels.batch_norm_forward(y, None, None, 1e-5)
    ref_out = cpp_kernels.batch_norm_forward(yc, None, None, 1e-5)
    for a, b in zip(out, ref_out):
        close(a, b, np.float32)
    close(cpp_kernels.leaky_relu(y, 0.2), cpp_kernels.leaky_relu(yc, 0.2), np.float32)
    p, arg = cpp_kernels.max_pool2d(y, (2, 2), (2, 2), (0, 0))
    pc, argc = cpp_kernels.max_pool2d(yc, (2, 2), (2, 2), (0, 0))
    close(p, pc, np.float32)
    np.testing.assert_array_equal(arg, argc)
    g = rng.standard_normal(p.shape).astype(np.float32)
    close(cpp_kernels.max_pool2d_grad(g, arg, (7, 6), (2, 2), (2, 2), (0, 0)),
          cpp_kernels.max_pool2d_grad(g, argc, (7, 6), (2, 2), (2, 2), (0, 0)), np.float32)


@pytest.mark.skipif('cpp' not in kernel_table.available_backends(), reason='C++ extension not built')
def test_cpp_conv_rejects_mismatched_shapes():
    from minigan import cpu_ext
    ext = cpu_ext.ext()
    x, w = np.zeros((1, 3, 5, 5), np.float32), np.zeros((2, 4, 3, 3), np.float32)
    with pytest.raises(ValueError, match='channels'):
        ext.conv2d_forward(x, w, 1, 1, 0, 0)
    with pytest.raises(ValueError, match='larger than'):
        ext.conv2d_forward(x, np.zeros((2, 3, 9, 9), np.float32), 1, 1, 0, 0)


# ---- through the autograd ops: forward, gradients, gradcheck per backend ----------------------------

def _run_ops(backend, fn, arrays):
    """fn(*tensors) -> scalar under `backend`: (value, gradients) as NumPy arrays."""
    with mg.conv_backend(backend):
        ts = [mg.tensor(a, requires_grad=True) for a in arrays]
        out = fn(*ts)
        out.backward()
        return out.numpy(), [t.grad.numpy() for t in ts]


CASES = {
    'conv2d': (lambda x, w: (F.conv2d(x, w, None, 2, 1) ** 2).sum(), [(2, 3, 7, 6), (4, 3, 3, 3)]),
    'conv_transpose2d': (lambda x, w: (F.conv_transpose2d(x, w, None, 2, 1) ** 2).sum(), [(2, 4, 3, 5), (4, 3, 4, 4)]),
    'batch_norm_leaky_relu': (lambda x, g, b: (F.leaky_relu(F.batch_norm(x, None, None, g, b, True), 0.2) ** 2).sum(),
                              [(4, 3, 3, 5), (3,), (3,)]),
    'relu_max_pool': (lambda x: (F.max_pool2d(F.relu(x), 2) ** 2).sum(), [(2, 3, 6, 5)]),
    # conv biases: the fused in-place bias add and the per-channel sums of their gradients
    'conv2d_bias_convT_bias': (lambda x, w, b, w2, b2: (F.conv_transpose2d(F.relu(F.conv2d(x, w, b, 2, 1)),
                                                                           w2, b2, 2, 1) ** 2).sum(),
                               [(2, 3, 7, 6), (4, 3, 3, 3), (4,), (4, 3, 4, 4), (3,)]),
    # a chain, so that the C++ kernels meet the channels-last views that the conv returns
    'conv_bn_leaky_pool_convT': (lambda x, w, g, w2: (F.conv_transpose2d(F.max_pool2d(F.leaky_relu(
        F.batch_norm(F.conv2d(x, w, None, 1, 1), None, None, g, None, True), 0.2), 2), w2, None, 2, 1) ** 2).sum(),
        [(2, 3, 6, 6), (4, 3, 3, 3), (4,), (4, 2, 4, 4)]),
}


@fast_backend
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('case', list(CASES))
def test_ops_match_numpy_backend(backend, dtype, case):
    fn, shapes = CASES[case]
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal(s).astype(dtype) for s in shapes]
    y0, g0 = _run_ops('numpy', fn, arrays)
    y1, g1 = _run_ops(backend, fn, arrays)
    close(y1, y0, dtype)
    for a, b in zip(g1, g0):
        close(a, b, dtype)


@fast_backend
@pytest.mark.parametrize('case', list(CASES))
def test_gradcheck_through_backend(backend, case):
    fn, shapes = CASES[case]
    rng = np.random.default_rng(5)
    inputs = [mg.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes]
    with mg.conv_backend(backend):
        assert mg.gradcheck(fn, inputs)


@fast_backend
def test_gradgradcheck_conv_and_batch_norm_through_backend(backend):
    """Double backward (the WGAN-GP penalty) runs on the same kernels."""
    rng = np.random.default_rng(6)
    x = mg.tensor(rng.standard_normal((2, 2, 5, 4)), requires_grad=True)
    w = mg.tensor(rng.standard_normal((3, 2, 3, 3)), requires_grad=True)
    with mg.conv_backend(backend):
        assert mg.gradgradcheck(lambda x, w: F.leaky_relu(F.conv2d(x, w, None, 1, 1), 0.2), [x, w])
        g = mg.tensor(rng.standard_normal(3) + 1, requires_grad=True)
        y = mg.tensor(rng.standard_normal((4, 3, 2, 2)), requires_grad=True)
        assert mg.gradgradcheck(lambda y, g: F.batch_norm(y, None, None, g, None, True), [y, g])


@fast_backend
@pytest.mark.parametrize('make', [
    lambda ps: optim.Adam(ps, lr=1e-2, betas=(0.5, 0.999)),
    lambda ps: optim.Adam(ps, lr=1e-2, weight_decay=0.1),
    lambda ps: optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
    lambda ps: optim.RMSprop(ps, lr=1e-2, weight_decay=0.01),
    lambda ps: optim.SGD(ps, lr=1e-2, momentum=0.9, weight_decay=0.01),
], ids=['adam', 'adam_l2', 'adamw', 'rmsprop', 'sgd_momentum'])
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_fused_optimizer_steps_match_numpy(backend, make, dtype):
    rng = np.random.default_rng(7)
    p0 = rng.standard_normal((5, 7)).astype(dtype)
    grads = [rng.standard_normal((5, 7)).astype(dtype) for _ in range(4)]
    results = []
    for b in ('numpy', backend):
        with mg.conv_backend(b):
            p = mg.tensor(p0.copy(), requires_grad=True)
            opt = make([p])
            for g in grads:
                p.grad = mg.tensor(g)
                opt.step()
            results.append(p.numpy())
    close(results[1], results[0], dtype)


# ---- choosing the kernel backend ------------------------------------------------------------------

def test_backend_names_and_errors():
    assert 'numpy' in mg.available_backends()
    with pytest.raises(ValueError, match='unknown backend'):
        mg.set_conv_backend('fortran')
    with pytest.raises(ValueError, match='unknown op'):
        mg.set_conv_backend('numpy', ops=['conv3d'])
    before = mg.get_conv_backend('conv2d_forward')
    with mg.conv_backend('numpy', ops='conv2d_forward'):
        assert mg.get_conv_backend('conv2d_forward') == 'numpy'
    assert mg.get_conv_backend('conv2d_forward') == before


def test_unavailable_backend_is_refused_with_a_reason(monkeypatch):
    monkeypatch.setattr(kernel_table, 'available_backends', lambda: ['numpy'])
    with pytest.raises(RuntimeError, match='not available'):
        mg.set_conv_backend('cpp')


def test_tune_measures_once_per_shape_prints_its_pick_and_matches_reference(capsys):
    """Under tune the conv primitives time the candidates on the first call of each shape (one
    printed line), keep the pick for that shape, and give the reference's numbers. Seed 8."""
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    x2 = rng.standard_normal((1, 3, 5, 5))
    with mg.kernel_backend('auto'):
        mg.tune()
        assert mg.get_kernel_backend('conv2d_forward') == 'tune'
        assert mg.get_kernel_backend('adam_step') == 'auto'             # only the conv primitives are tuned
        capsys.readouterr()
        y = kernel_table.conv2d_forward(x, w, (1, 1), (1, 1))
        kernel_table.conv2d_forward(x, w, (1, 1), (1, 1))
        kernel_table.conv2d_forward(x2, w, (1, 1), (1, 1))
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 2 and all(line.startswith('minigan.tune: conv2d_forward ') for line in lines), lines
        picks = {line.split(' -> ')[1].split()[0] for line in lines}
        assert picks <= set(kernel_table.available_backends())
        close(y, ref.conv2d_forward(x, w, 1, 1), np.float64)
        mg.tune(False)
        assert mg.get_kernel_backend('conv2d_forward') == 'auto'


def _python(code, env=None):
    import os
    full_env = {k: v for k, v in os.environ.items() if k not in ('MINIGAN_KERNELS', 'MINIGAN_CONV')}
    full_env.update(env or {})                      # the test's own choice, not the suite's
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True,
                          env=full_env, timeout=120)


def test_env_var_selects_backend():
    r = _python("""
        import minigan as mg
        print(mg.get_conv_backend('conv2d_forward'), mg.get_conv_backend('adam_step'))
    """, {'MINIGAN_CONV': 'numpy'})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ['numpy', 'numpy']


def test_missing_extension_warns_once_and_falls_back():
    """Import never fails without minigan._cpu: one warning, then the other paths run."""
    r = _python("""
        import sys, warnings
        sys.modules['minigan._cpu'] = None          # as if the build had failed
        warnings.simplefilter('always')
        with warnings.catch_warnings(record=True) as caught:
            import numpy as np, minigan as mg, minigan.nn.functional as F
            from minigan import kernel_table
            names = kernel_table.available_backends()
            x = mg.tensor(np.ones((1, 1, 4, 4), np.float32))
            y = F.conv2d(x, mg.tensor(np.ones((1, 1, 3, 3), np.float32)))
            F.leaky_relu(y, 0.2)
            kernel_table.available_backends()
        n = sum('C++ kernels' in str(w.message) for w in caught)
        print('cpp' in names, n, float(y.numpy().sum()))
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ['False', '1', '36.0']


def test_set_num_threads():
    from minigan import cpu_ext
    saved = mg.get_num_threads()
    try:
        mg.set_num_threads(1)
        assert mg.get_num_threads() == 1
        if cpu_ext.ext() is not None:
            assert cpu_ext.ext().get_num_threads() == 1
        with pytest.raises(ValueError, match='positive'):
            mg.set_num_threads(0)
    finally:
        mg.set_num_threads(saved)


@pytest.mark.skipif('cpp' not in kernel_table.available_backends(), reason='C++ extension not built')
@pytest.mark.parametrize('mode', ['blas', 'own_sgemm', 'builtin_loops'])
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_cpp_gemm_paths_agree_with_reference(mode, dtype):
    """The conv GEMM through NumPy's BLAS, minigan's own sgemm, or the plain loops: same numbers."""
    from minigan import cpu_ext
    ext = cpu_ext.ext()
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 5, 9, 7)).astype(dtype)
    wt = rng.standard_normal((6, 5, 3, 4)).astype(dtype)
    y = ref.conv2d_forward(x, wt, (2, 1), (1, 2))
    gy = rng.standard_normal(y.shape).astype(dtype)
    try:
        if mode == 'own_sgemm':
            ext.set_own_sgemm(True)
        elif mode == 'builtin_loops':
            ext.set_blas(0, 0, 0, 0)
        close(ext.conv2d_forward(x, wt, 2, 1, 1, 2), y, dtype)
        close(ext.conv2d_backward_data(gy, wt, 9, 7, 2, 1, 1, 2),
              ref.conv2d_backward_data(gy, wt, x.shape, (2, 1), (1, 2)), dtype)
        close(ext.conv2d_backward_weight(x, gy, 3, 4, 2, 1, 1, 2),
              ref.conv2d_backward_weight(x, gy, wt.shape, (2, 1), (1, 2)), dtype)
    finally:
        ext.set_own_sgemm(False)
        ext.set_blas(*cpu_ext._find_blas())


@fast_backend
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('threads', [1, 2])
def test_channel_sum_and_bias_add_match_numpy_in_both_layouts(backend, dtype, threads):
    """Per-channel sums over (N, H, W) and y += b[c], on arrays large enough for the threaded loops
    (over 32K elements), NCHW-contiguous and as NCHW views of channels-last memory. Seed 11."""
    ks = column(backend)
    if not hasattr(ks, 'channel_sum'):
        pytest.skip(f'{backend} has no channel_sum kernel (the NumPy code runs)')
    rng = np.random.default_rng(11)
    before = mg.get_num_threads()
    mg.set_num_threads(threads)
    try:
        for shape in [(3, 5, 33, 17), (1, 1, 1, 1), (2, 64, 16, 16)]:
            x = rng.standard_normal(shape).astype(dtype)
            b = rng.standard_normal(shape[1]).astype(dtype)
            views = [x, np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)]
            for v in views:
                close(ks.channel_sum(v), x.astype(np.float64).sum(axis=(0, 2, 3)).astype(dtype), dtype)
                y = v.copy(order='K')                     # keeps the layout of v
                out = ks.add_channel_bias(y, b)
                close(np.asarray(out), x + b.reshape(1, -1, 1, 1), dtype)
                assert np.shares_memory(out, y)           # in place
    finally:
        mg.set_num_threads(before)


@fast_backend
def test_relu_kernel_keeps_numpy_semantics_for_nan_inf_and_signed_zero(backend):
    """relu = maximum(x, 0): NaN stays NaN, -inf and -0.0 give +0.0 (a fused leaky ReLU with slope 0
    would give NaN for -inf and -0.0 for negatives)."""
    x = np.array([np.nan, -np.inf, -0.0, -1.5, 0.0, 2.0, np.inf] * 5000, dtype=np.float32)
    with mg.conv_backend(backend):
        y = F.relu(mg.tensor(x)).numpy()
    expected = np.maximum(x, 0)
    assert np.array_equal(y, expected, equal_nan=True)
    assert not np.signbit(y[~np.isnan(y)]).any()


# (N, C, H, W, M, kh, kw, stride, padding) with >= 16 channels in and out: the direct conv's
# shapes. M not a multiple of 32 or 16 (masked lanes), output pixels not a multiple of 12
# (the last tile), 1x1 and non-square kernels, strides 1-3, paddings 0-2, batch 1.
DIRECT_SHAPES = [
    (2, 16, 7, 9, 17, 3, 3, 1, 1),
    (1, 32, 8, 8, 32, 3, 3, 1, 0),
    (3, 20, 6, 5, 48, 1, 1, 1, 0),
    (2, 24, 9, 7, 33, 3, 2, 1, (2, 1)),
    (2, 16, 11, 10, 64, 4, 4, 2, 1),
    (1, 40, 9, 9, 16, 3, 3, 3, 2),
    (4, 16, 5, 5, 100, 5, 5, 1, 2),
]


@pytest.mark.skipif('cpp' not in kernel_table.available_backends(), reason='C++ extension not built')
@pytest.mark.parametrize('threads', [1, 2])
@pytest.mark.parametrize('shape', DIRECT_SHAPES, ids=str)
def test_cpp_direct_conv_matches_reference_and_the_gemm_path(shape, threads):
    """The direct float32 conv (forward, backward-weight, and the stride-1 backward-data as a conv of
    the flipped kernel) against the float64 reference and against im2col + GEMM, NCHW and channels-last
    inputs. Tolerance float32 1e-4 relative; seed 13."""
    from minigan import cpu_ext
    ext = cpu_ext.ext()
    if not ext.direct_available():
        pytest.skip('built without AVX-512: no direct conv')
    n, c, h, w, m, kh, kw, stride, padding = shape
    (sh, sw), (ph, pw) = ref.pair(stride), ref.pair(padding)
    rng = np.random.default_rng(13)
    x = rng.standard_normal((n, c, h, w))
    wt = rng.standard_normal((m, c, kh, kw))
    y = ref.conv2d_forward(x, wt, (sh, sw), (ph, pw))
    gy = rng.standard_normal(y.shape)
    gx = ref.conv2d_backward_data(gy, wt, x.shape, (sh, sw), (ph, pw))
    gw = ref.conv2d_backward_weight(x, gy, wt.shape, (sh, sw), (ph, pw))
    x32, w32, gy32 = x.astype(np.float32), wt.astype(np.float32), gy.astype(np.float32)
    nhwc = lambda a: np.ascontiguousarray(a.transpose(0, 2, 3, 1))
    # which primitives conv.cpp's rule (direct_for) gives the direct kernel for this shape; the
    # profile's im2col/col2im phases show which path ran (the direct one builds no column matrix)
    takes = {'forward': m <= 64,
             'backward_data': (sh, sw) == (1, 1) and ph < kh and pw < kw and c <= 64,
             'backward_weight': c * kh * kw * m < 2 ** 17}
    calls = {
        'forward': [lambda: ext.conv2d_forward(x32, w32, sh, sw, ph, pw),
                    lambda: ext.conv2d_forward(nhwc(x32), w32, sh, sw, ph, pw, True, True).transpose(0, 3, 1, 2)],
        'backward_data': [lambda: ext.conv2d_backward_data(gy32, w32, h, w, sh, sw, ph, pw),
                          lambda: ext.conv2d_backward_data(nhwc(gy32), w32, h, w, sh, sw, ph, pw, True,
                                                           True).transpose(0, 3, 1, 2)],
        'backward_weight': [lambda: ext.conv2d_backward_weight(x32, gy32, kh, kw, sh, sw, ph, pw),
                            lambda: ext.conv2d_backward_weight(nhwc(x32), nhwc(gy32), kh, kw, sh, sw, ph, pw,
                                                               True, True)]}
    saved = cpu_ext.get_num_threads()
    try:
        mg.set_num_threads(threads)
        results = {True: [], False: []}
        for direct in (True, False):
            ext.set_direct(direct)
            for prim, fns in calls.items():
                for f in fns:
                    ext.set_profile(True)
                    results[direct].append(f())
                    phases = ext.profile()
                    ext.set_profile(False)
                    built_columns = phases['im2col'] + phases['col2im'] > 0
                    assert built_columns != (direct and takes[prim]), (prim, direct, phases)
    finally:
        ext.set_profile(False)
        ext.set_direct(True)
        mg.set_num_threads(saved)
    for direct in (True, False):
        fy, fy_cl, fgx, fgx_cl, fgw, fgw_cl = results[direct]
        for got, want in ((fy, y), (fy_cl, y), (fgx, gx), (fgx_cl, gx), (fgw, gw), (fgw_cl, gw)):
            close(got, want.astype(np.float32), np.float32)
    for a, b in zip(results[True], results[False]):
        close(a, b, np.float32)

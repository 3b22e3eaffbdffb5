"""Same inputs, same outputs, bit for bit, on the default CPU backend at 2 threads.

The C++ kernels split every reduction (conv weight gradients, channel sums, batch-norm
statistics) in a way fixed by the shapes and the thread count, and add the parts in a
fixed order, so that a kernel called twice on the same arrays, and a training run started
twice with the same seed, give the same bits. Nothing here pins the NumPy backend.

Part 1 calls each C++ primitive 20 times on one seeded input at 2 threads (at shapes where
the old dynamically scheduled sums gave up to 15 different results in 20 calls). Part 2
runs `python -m minigan.train` in fresh processes: two same-seed runs, a run resumed
halfway, and a run killed (SIGKILL) 20 times at random points and resumed each time, all
compared with one straight run, once on the C++ kernels named explicitly and once on
the default backend.
"""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import minigan as mg
from minigan import checkpoint, cpu_ext, runlog

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREADS = 2
REPEATS = 20


@pytest.fixture
def ext():
    """minigan._cpu at THREADS threads (restored after the test)."""
    e = cpu_ext.ext()
    if e is None:
        pytest.skip('the C++ extension minigan._cpu is not built here')
    saved = cpu_ext.get_num_threads()
    mg.set_num_threads(THREADS)
    yield e
    mg.set_num_threads(saved)


def _bits(result):
    """The raw bytes of an array or of a tuple of arrays."""
    arrays = result if isinstance(result, tuple) else (result,)
    return [(a.dtype.str, a.shape, np.ascontiguousarray(a).tobytes()) for a in arrays]


def assert_repeats_bit_for_bit(fn, repeats=REPEATS):
    first = _bits(fn())
    for i in range(1, repeats):
        assert _bits(fn()) == first, f'call {i + 1} of {repeats} differs from the first'


# ---- part 1: each C++ primitive, called again and again --------------------------------------
# (N, C, H, M, k, stride, pad): a stride-1 3x3 layer, a DCGAN down-sampling layer, an image layer.
CONV_SHAPES = [(64, 32, 16, 32, 3, 1, 1), (32, 64, 16, 128, 4, 2, 1), (16, 3, 32, 64, 4, 2, 1)]


@pytest.fixture(params=['im2col', 'direct'])
def conv_path(request, ext):
    """The two float32 conv paths: im2col + GEMM, and the direct (AVX-512) kernel of direct.cpp."""
    if request.param == 'direct' and not ext.direct_available():
        pytest.skip('the direct conv needs an AVX-512 build')
    ext.set_direct(request.param == 'direct')
    yield request.param
    ext.set_direct(True)


@pytest.mark.parametrize('shape', CONV_SHAPES, ids=lambda s: 'n{}c{}h{}m{}k{}s{}'.format(*s[:6]))
@pytest.mark.parametrize('nhwc', [False, True], ids=['nchw', 'nhwc'])
def test_conv_primitives_repeat_bit_for_bit(ext, conv_path, shape, nhwc):
    n, c, h, m, k, s, p = shape
    rng = np.random.default_rng(11)
    x = rng.standard_normal((n, c, h, h)).astype(np.float32)
    w = rng.standard_normal((m, c, k, k)).astype(np.float32)
    oh = (h + 2 * p - k) // s + 1
    gy = rng.standard_normal((n, m, oh, oh)).astype(np.float32)
    if nhwc:
        x, gy = np.ascontiguousarray(x.transpose(0, 2, 3, 1)), np.ascontiguousarray(gy.transpose(0, 2, 3, 1))
    assert_repeats_bit_for_bit(lambda: ext.conv2d_forward(x, w, s, s, p, p, nhwc, nhwc))
    assert_repeats_bit_for_bit(lambda: ext.conv2d_backward_data(gy, w, h, h, s, s, p, p, nhwc, nhwc))
    assert_repeats_bit_for_bit(lambda: ext.conv2d_backward_weight(x, gy, k, k, s, s, p, p, nhwc, nhwc))


def test_float64_conv_weight_gradient_repeats_bit_for_bit(ext):
    rng = np.random.default_rng(12)
    x, gy = rng.standard_normal((32, 32, 16, 16)), rng.standard_normal((32, 32, 16, 16))
    assert_repeats_bit_for_bit(lambda: ext.conv2d_backward_weight(x, gy, 3, 3, 1, 1, 1, 1))


def _bn_inputs(dtype=np.float32):
    rng = np.random.default_rng(13)
    x = (rng.standard_normal((64, 96, 8, 8)) * 3 + 1).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    weight, bias = rng.standard_normal(96).astype(dtype), rng.standard_normal(96).astype(dtype)
    rows = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).reshape(-1, 96)       # channels last
    grows = np.ascontiguousarray(g.transpose(0, 2, 3, 1)).reshape(-1, 96)
    return x, g, weight, bias, rows, grows


def _reductions(ext, dtype=np.float32):
    """name -> a call of each C++ kernel that sums over the batch (all but conv and matmul)."""
    x, g, weight, bias, rows, grows = _bn_inputs(dtype)
    _, mean, _, invstd = ext.batch_norm_forward(x, weight, bias, 1e-5)
    return {
        'channel_sum (N, C, S)': lambda: ext.channel_sum(x.reshape(64, 96, -1), False),
        'channel_sum rows': lambda: ext.channel_sum(rows, True),
        'batch_norm_forward': lambda: ext.batch_norm_forward(x, weight, bias, 1e-5),
        'batch_norm_backward': lambda: ext.batch_norm_backward(x, weight, g, mean, invstd),
        'batch_norm_forward_nhwc': lambda: ext.batch_norm_forward_nhwc(rows, weight, bias, 1e-5),
        'batch_norm_backward_nhwc': lambda: ext.batch_norm_backward_nhwc(rows, weight, grows, mean, invstd),
    }


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_batch_norm_and_channel_sums_repeat_bit_for_bit(ext, dtype):
    for name, fn in _reductions(ext, dtype).items():
        first = _bits(fn())
        for i in range(1, REPEATS):
            assert _bits(fn()) == first, f'{name}: call {i + 1} differs from the first'


def test_batch_norm_and_channel_sums_do_not_depend_on_the_thread_count(ext):
    """Their row blocks are fixed by the shape alone: 1, 2 and 3 threads give the same bits.
    (float64: float32 values add up exactly in the kernels' double sums, hiding any order.)"""
    calls = _reductions(ext, np.float64)
    want = {}
    for threads in (1, 2, 3):
        mg.set_num_threads(threads)
        for name, fn in calls.items():
            got = _bits(fn())
            assert want.setdefault(name, got) == got, f'{name} differs at {threads} threads'


def test_reductions_do_not_depend_on_the_arrays_alignment(ext):
    """The same values at 16 different addresses (offsets of one element) give the same bits, so
    where the allocator puts an array cannot change a result from one run to the next."""
    x, g, weight, bias, rows, grows = _bn_inputs()

    def at(a, offset):
        buf = np.empty(a.size + 16, a.dtype)
        view = buf[offset:offset + a.size].reshape(a.shape)
        view[...] = a
        return view

    _, mean, _, invstd = ext.batch_norm_forward(x, weight, bias, 1e-5)
    xs = np.random.default_rng(14).standard_normal((16, 32, 16, 16)).astype(np.float32)
    gys = np.random.default_rng(15).standard_normal((16, 64, 8, 8)).astype(np.float32)
    calls = {
        'channel_sum': lambda o: ext.channel_sum(at(rows, o), True),
        'batch_norm_forward': lambda o: ext.batch_norm_forward(at(x, o), weight, bias, 1e-5),
        'batch_norm_backward': lambda o: ext.batch_norm_backward(at(x, o), weight, at(g, o), mean, invstd),
        'batch_norm_backward_nhwc': lambda o: ext.batch_norm_backward_nhwc(at(rows, o), weight, at(grows, o),
                                                                           mean, invstd),
        'conv2d_backward_weight': lambda o: ext.conv2d_backward_weight(at(xs, o), at(gys, o), 4, 4, 2, 2, 1, 1),
    }
    for name, fn in calls.items():
        first = _bits(fn(0))
        for offset in range(1, 16):
            assert _bits(fn(offset)) == first, f'{name} differs with the input {offset} elements further on'


def test_matmul_repeats_bit_for_bit(ext):
    """minigan's matmul (row blocks over the threads, one serial BLAS call each) and NumPy's own
    (OpenBLAS's thread pool, which splits the output, never the inner dimension)."""
    rng = np.random.default_rng(16)
    a = rng.standard_normal((512, 2048)).astype(np.float32)
    b = rng.standard_normal((2048, 256)).astype(np.float32)
    assert_repeats_bit_for_bit(lambda: ext.matmul(a, b))
    assert_repeats_bit_for_bit(lambda: ext.matmul(a, a, False, True))
    assert_repeats_bit_for_bit(lambda: a @ b)
    assert_repeats_bit_for_bit(lambda: a.astype(np.float64) @ b.astype(np.float64))


def _blas_thread_count():
    """NumPy's OpenBLAS's openblas_get_num_threads (skips the test where there is none)."""
    lib = cpu_ext._numpy_openblas()
    get = lib and next((getattr(lib, n) for n in ('scipy_openblas_get_num_threads64_', 'openblas_get_num_threads64_',
                                                  'openblas_get_num_threads') if hasattr(lib, n)), None)
    if get is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS found by minigan")
    return get


def test_cpp_kernels_leave_numpys_blas_thread_count_alone(ext):
    """The C++ kernels make NumPy's OpenBLAS serial inside their parallel regions; its call for
    that acts on every thread, so a count restored by several threads at once could be left at
    1 or at 2, and NumPy's next products would round differently from run to run."""
    get = _blas_thread_count()
    rng = np.random.default_rng(17)
    x = rng.standard_normal((64, 64, 16, 16)).astype(np.float32)
    w = rng.standard_normal((128, 64, 4, 4)).astype(np.float32)
    gy = rng.standard_normal((64, 128, 8, 8)).astype(np.float32)
    a = rng.standard_normal((1024, 512)).astype(np.float32)
    counts = set()
    for _ in range(30):
        ext.conv2d_forward(x, w, 2, 2, 1, 1)
        ext.conv2d_backward_weight(x, gy, 4, 4, 2, 2, 1, 1)
        ext.matmul(a, a, True, False)
        counts.add(get())
    assert counts == {THREADS}


# DCGAN-32 at ngf = ndf = 8, batch 8 (the model of the training tests below): D's convs
# (C, H, M, k, stride, pad); G's transposed convs are their backward-data.
DCGAN32_SMALL = [(3, 32, 8, 4, 2, 1), (8, 16, 16, 4, 2, 1), (16, 8, 32, 4, 2, 1), (32, 4, 1, 4, 1, 0)]


def test_cpp_kernels_under_cpu_contention_repeat_and_leave_the_blas_thread_count(ext):
    """With more runnable threads than cores (3 busy processes beside 2 OpenMP threads), which
    OpenMP thread finishes first changes from call to call. The conv primitives at the training
    tests' shapes must still give the same bits, and leave NumPy's OpenBLAS at THREADS threads:
    a count left at 1 by the thread that happened to finish last made same-seed training runs
    on a busy machine differ from step ~5 (NumPy's next products ran on another thread count)."""
    from minigan import cpp_kernels
    get = _blas_thread_count()
    rng = np.random.default_rng(18)
    calls = []
    for c, h, m, k, s, p in DCGAN32_SMALL:
        x = rng.standard_normal((8, c, h, h)).astype(np.float32)
        w = rng.standard_normal((m, c, k, k)).astype(np.float32)
        oh = (h + 2 * p - k) // s + 1
        gy = rng.standard_normal((8, m, oh, oh)).astype(np.float32)
        calls += [lambda x=x, w=w, s=s, p=p: cpp_kernels.conv2d_forward(x, w, (s, s), (p, p)),
                  lambda gy=gy, w=w, x=x, s=s, p=p: cpp_kernels.conv2d_backward_data(gy, w, x.shape, (s, s), (p, p)),
                  lambda x=x, gy=gy, w=w, s=s, p=p: cpp_kernels.conv2d_backward_weight(x, gy, w.shape, (s, s), (p, p))]
    busy = [subprocess.Popen([sys.executable, '-c', 'while True: pass']) for _ in range(3)]
    try:
        time.sleep(0.2)
        first = [_bits(fn()) for fn in calls]
        counts = {get()}
        for _ in range(10):
            for i, fn in enumerate(calls):
                assert _bits(fn()) == first[i], f'call {i} ({len(calls)} per round) gave other bits'
                counts.add(get())
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    assert counts == {THREADS}, f"NumPy's OpenBLAS was left at {sorted(counts)} threads, not {THREADS}"


# ---- part 2: whole training runs, each in its own process -----------------------------------
STEPS = 30
BACKENDS = ['cpp', 'default']     # default: MINIGAN_CONV unset, what a user gets


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp('data'))


def _env(backend):
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), PYTHONHASHSEED='0')
    env.pop('MINIGAN_CONV', None)
    if backend != 'default':
        env['MINIGAN_CONV'] = backend
    return env


def _train_args(data_dir, out, steps):
    # DCGAN-32 at 1/8 of its width: small enough for a fraction of a second per step, large
    # enough that its convs and batch norms run on 2 threads (their weight gradients split the batch)
    return ['--data', 'synth', '--data-dir', data_dir, '--subset', '64', '--batch-size', '8',
            '--nz', '16', '--ngf', '8', '--ndf', '8', '--seed', '7', '--device', 'cpu', '--quiet',
            '--sample-every', '10', '--checkpoint-every', '1', '--max-steps', str(steps), '--out', str(out)]


def _train(backend, args, timeout=300):
    return subprocess.run([sys.executable, '-m', 'minigan.train', *args], cwd=ROOT, env=_env(backend),
                          capture_output=True, text=True, timeout=timeout)


def _start(backend, args):
    return subprocess.Popen([sys.executable, '-m', 'minigan.train', *args], cwd=ROOT, env=_env(backend),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _resume_args(run, steps=STEPS):
    return ['--resume', str(run), '--max-steps', str(steps), '--quiet']


def _records(run):
    return [runlog.without_timing(r) for r in runlog.read_jsonl(os.path.join(run, 'metrics.jsonl'))]


def _step_numbers(run):
    return [r['step'] for r in runlog.read_jsonl(os.path.join(run, 'metrics.jsonl')) if r.get('type') == 'step']


def _flat(tree, prefix=''):
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_flat(v, f'{prefix}/{k}'))
        return out
    if isinstance(tree, (list, tuple)):
        out = {}
        for i, v in enumerate(tree):
            out.update(_flat(v, f'{prefix}/{i}'))
        return out
    return {prefix: tree}


def _weights(run):
    """Every array and number of the latest checkpoint that training computes: the step, both
    networks, the optimiser states, the random generator and the data stream (not the clock)."""
    state = checkpoint.load(checkpoint.latest_path(str(run)))
    keep = {k: v for k, v in state.items() if k in ('step', 'G', 'D', 'rng', 'stream') or k.startswith('opt')}
    assert 'G' in keep and 'D' in keep and any(k.startswith('opt') for k in keep)
    return _flat(keep)


def assert_same_run(a, b):
    ra, rb = _records(a), _records(b)
    assert len(ra) == len(rb), f'{len(ra)} records vs {len(rb)}'
    for x, y in zip(ra, rb):
        assert x == y, f'metrics differ at step {x.get("step")}:\n{x}\n{y}'
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert np.array_equal(np.asarray(wa[k]), np.asarray(wb[k])), f'checkpoint entry {k} differs'


_straight = {}


@pytest.fixture(scope='module')
def straight(data_dir, tmp_path_factory):
    """backend -> the folder of one uninterrupted STEPS-step run (made once per module)."""
    def get(backend, steps=STEPS):
        if (backend, steps) not in _straight:
            out = tmp_path_factory.mktemp('straight') / f'{backend}-{steps}'
            r = _train(backend, _train_args(data_dir, out, steps))
            assert r.returncode == 0, r.stderr
            assert _step_numbers(out) == list(range(1, steps + 1))
            _straight[(backend, steps)] = out
        return _straight[(backend, steps)]
    return get


@pytest.mark.parametrize('backend', BACKENDS)
def test_two_runs_with_one_seed_are_identical(backend, straight, data_dir, tmp_path):
    r = _train(backend, _train_args(data_dir, tmp_path / 'again', STEPS))
    assert r.returncode == 0, r.stderr
    assert_same_run(straight(backend), tmp_path / 'again')


@pytest.mark.parametrize('backend', BACKENDS)
def test_resumed_halfway_equals_the_straight_run(backend, straight, data_dir, tmp_path):
    run = tmp_path / 'halves'
    r = _train(backend, _train_args(data_dir, run, STEPS // 2))
    assert r.returncode == 0, r.stderr
    r = _train(backend, _resume_args(run))
    assert r.returncode == 0, r.stderr
    assert_same_run(straight(backend), run)


def _wait_for_steps(run, count, proc, limit=60.0):
    """Until metrics.jsonl holds `count` steps, or the process has ended."""
    t_end = time.monotonic() + limit
    path = os.path.join(run, 'metrics.jsonl')
    while time.monotonic() < t_end and proc.poll() is None:
        if os.path.exists(path) and len(_step_numbers(run)) >= count:
            return
        time.sleep(0.01)


def _last_step_time(run):
    """Seconds the last logged step took (a kill within the next step lands within that), 0.3 at most."""
    times = [r['step_time'] for r in runlog.read_jsonl(os.path.join(run, 'metrics.jsonl'))
             if r.get('type') == 'step' and 'step_time' in r]
    return min(times[-1], 0.3) if times else 0.3


@pytest.mark.parametrize('backend', BACKENDS)
def test_killed_twenty_times_and_resumed_equals_the_straight_run(backend, straight, data_dir, tmp_path):
    """SIGKILL at seeded random points: during start-up, mid-step, mid-checkpoint. After each
    kill the latest checkpoint loads and metrics.jsonl holds steps 1..N exactly, N the
    checkpoint's step or one more (a step is logged before its checkpoint is written); the
    run then resumes from there, and once finished equals the straight run bit for bit."""
    rng = np.random.default_rng(2024)
    run = tmp_path / 'killed'
    kills = 0
    steps_in_all = 4 * STEPS                  # on a fast machine a step takes ~30 ms: room for 20 kills
    for trial in range(20):
        ckpt = os.path.join(run, 'checkpoints', 'latest.npz')
        first = not os.path.exists(ckpt)
        args = _train_args(data_dir, run, steps_in_all) if first else _resume_args(run, steps_in_all)
        before = 0 if first else len(_step_numbers(run))
        proc = _start(backend, args)
        try:
            if first:                         # the first kill lands once a checkpoint exists
                _wait_for_steps(run, 2, proc)
            elif rng.random() < 0.25:         # during start-up: loading, before any step
                time.sleep(rng.uniform(0.0, 2.0))
            else:                             # after 0 or 1 new steps, somewhere in the next one
                _wait_for_steps(run, before + int(rng.integers(0, 2)), proc)
                time.sleep(rng.uniform(0.0, _last_step_time(run)))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=60)
        if proc.returncode == 0:              # it finished before the kill came
            break
        state = checkpoint.load(checkpoint.latest_path(str(run)))
        steps = _step_numbers(run)
        assert steps == list(range(1, len(steps) + 1)), f'trial {trial}: steps logged {steps}'
        assert state['step'] <= len(steps) <= state['step'] + 1, (trial, state['step'], len(steps))
    assert kills >= 15, f'only {kills} of 20 trials were killed before the run finished'
    if proc.returncode != 0:
        r = _train(backend, _resume_args(run, steps_in_all))
        assert r.returncode == 0, r.stderr
    assert_same_run(straight(backend, steps_in_all), run)

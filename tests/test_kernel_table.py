"""kernel_table.py's table: a NumPy reference for every op, every fast cell against it, and the path
a call takes from an op to its kernel.

Hop counts are measured with sys.setprofile: a 'call' event of a Python function in a minigan
source file is one call; the C++ entry point (a builtin of minigan._cpu) counts as the last hop.
Tolerances: float64 rtol 1e-10, float32 1e-4 (relative to the largest value); integers exact.
Seed 21.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import minigan as mg
import minigan.nn.functional as F
from minigan import kernel_table, reference
from minigan.functional import im2col

MINIGAN_DIR = os.path.dirname(mg.__file__) + os.sep
TOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}


def close(a, b):
    """Same shape and dtype; floats within the dtype's tolerance, integers equal."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
    if a.dtype.kind != 'f':
        assert np.array_equal(a, b)
        return
    err = np.abs(a.astype(np.float64) - b).max() if a.size else 0.0
    assert err <= TOL[a.dtype] * max(np.abs(b).max(initial=0.0), 1.0), f'max error {err}'


# ---- the table -----------------------------------------------------------------------------------

def test_every_op_has_a_numpy_reference_in_the_last_column():
    assert set(kernel_table.GPU) == set(kernel_table.CPU) == set(kernel_table.OPS)
    for op, row in kernel_table.CPU.items():
        assert len(row) == len(kernel_table.CPU_COLUMNS) and kernel_table.CPU_COLUMNS[-1] == 'numpy'
        reference_fn = row[-1]
        assert reference_fn.__module__ in ('minigan.functional.im2col', 'minigan.reference'), op
        assert reference_fn.__name__ == op                      # the reference is named for its op
        assert kernel_table.GPU[op][-1] is reference_fn              # and runs on CuPy arrays as it is
        for name, cell in zip(kernel_table.CPU_COLUMNS, row):
            assert cell is None or (callable(cell) and cell.__name__ == op), (op, name)


def test_ops_call_named_kernels_and_nothing_looks_kernels_up_by_string():
    """No op body asks for a kernel by name, and no module on the way picks one with getattr."""
    sources = [os.path.join(root, f) for root, _, files in os.walk(MINIGAN_DIR) for f in files if f.endswith('.py')]
    for path in sources:
        text = open(path).read()
        assert 'dispatch.kernel(' not in text, path
        assert 'reference_kernels' not in text, path
    for module in ('kernel_table.py', 'cpp_kernels.py', 'numba_kernels.py', 'reference.py'):
        assert 'getattr(' not in open(os.path.join(MINIGAN_DIR, module)).read(), module
    assert not os.path.exists(os.path.join(MINIGAN_DIR, 'reference_kernels.py'))


def _nhwc(a):
    """The same values as an NCHW view of channels-last memory (what the C++ convolutions return)."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def _arguments(op, dtype, rng):
    """One set of arguments for `op` (float arrays of `dtype`), exercising strides and layouts."""
    def r(*shape):
        return rng.standard_normal(shape).astype(dtype)
    x = r(2, 3, 7, 6)
    if op == 'conv2d_forward':
        return x, r(4, 3, 3, 3), (2, 1), (1, 0)
    if op == 'conv2d_backward_data':
        return r(2, 4, 4, 4), r(4, 3, 3, 3), (2, 3, 7, 6), (2, 1), (1, 0)
    if op == 'conv2d_backward_weight':
        return _nhwc(x), r(2, 4, 4, 4), (4, 3, 3, 3), (2, 1), (1, 0)
    if op == 'add_channel_bias':
        return _nhwc(x), r(3)
    if op == 'channel_sum':
        return _nhwc(x),
    if op == 'matmul':
        return r(5, 7), r(3, 7).T
    if op == 'leaky_relu':
        return _nhwc(x), 0.2
    if op == 'leaky_relu_grad':
        return r(2, 3, 7, 6), _nhwc(x), 0.2
    if op == 'batch_norm_forward':
        return _nhwc(x), r(3), r(3), 1e-5
    if op == 'batch_norm_backward':
        _, mean, _, invstd = reference.batch_norm_forward(x.copy(), None, None, 1e-5)
        return x, r(3), r(2, 3, 7, 6), mean, invstd
    if op == 'max_pool2d':
        return _nhwc(x), (3, 3), (2, 2), (1, 1)
    if op == 'max_pool2d_grad':
        _, arg = reference.max_pool2d(x, (3, 3), (2, 2), (1, 1))
        return r(*arg.shape), arg, (7, 6), (3, 3), (2, 2), (1, 1)
    if op == 'adam_step':
        return r(4, 5), r(4, 5), r(4, 5), np.abs(r(4, 5)), 1e-2, 0.9, 0.999, 1e-8, 0.1, False, 3
    if op == 'rmsprop_step':
        return r(4, 5), r(4, 5), np.abs(r(4, 5)), 1e-2, 0.99, 1e-8, 0.01
    if op == 'sgd_momentum_step':
        return r(4, 5), r(4, 5), r(4, 5), 1e-2, 0.9, 0.01
    raise AssertionError(f'no test arguments for {op}: add them here')


FAST_CELLS = [(op, name) for op, row in kernel_table.CPU.items()
              for name, cell in zip(kernel_table.CPU_COLUMNS[:-1], row) if cell is not None]


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('op,backend', FAST_CELLS, ids=[f'{b}-{op}' for op, b in FAST_CELLS])
def test_every_fast_cell_matches_the_reference(op, backend, dtype):
    """Each C++/numba cell against the reference of its row, on the same arguments: results and
    every array the kernel updates in place."""
    if backend not in kernel_table.available_backends():
        pytest.skip(f'the {backend} backend is not available here')
    fast, ref = kernel_table.CPU[op][kernel_table.CPU_COLUMNS.index(backend)], kernel_table.CPU[op][-1]
    args = _arguments(op, dtype, np.random.default_rng(21))
    got_args, want_args = ([a.copy(order='K') if isinstance(a, np.ndarray) else a for a in args] for _ in range(2))
    got, want = fast(*got_args), ref(*want_args)
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for a, b in zip(got, want):
            close(a, b)
    elif isinstance(want, np.ndarray):
        close(got, want)
    else:
        assert got is True and want is True                    # an optimiser step, done in place
    for a, b in zip(got_args, want_args):
        if isinstance(a, np.ndarray):
            close(a, b)


# ---- the default choice --------------------------------------------------------------------------

def _python(code, **env):
    full = {k: v for k, v in os.environ.items() if k not in ('MINIGAN_KERNELS', 'MINIGAN_CONV', 'MINIGAN_TUNE')}
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True,
                          env=dict(full, **env), timeout=120, cwd=os.path.dirname(MINIGAN_DIR.rstrip(os.sep)))


def test_the_default_is_a_fixed_rule():
    """auto: the C++ kernels where built; else numba's fused kernels and the reference's convolutions;
    else the reference. The same cells on every run, chosen without running anything."""
    r = _python('''
        from minigan import kernel_table
        print(' '.join(f'{op}={kernel_table.chosen(op).__module__}' for op in kernel_table.OPS))
    ''')
    assert r.returncode == 0, r.stderr
    chosen = dict(item.split('=') for item in r.stdout.split())
    names = kernel_table.available_backends()
    for op in kernel_table.OPS:
        row = kernel_table.CPU[op]
        if 'cpp' in names:
            want = row[0]
        elif 'numba' in names and op not in kernel_table.CONV_OPS and row[1] is not None:
            want = row[1]
        else:
            want = row[-1]
        assert chosen[op] == want.__module__, op


@pytest.mark.parametrize('var', ['MINIGAN_KERNELS', 'MINIGAN_CONV'])
def test_environment_names_the_kernel_backend(var):
    r = _python('''
        import minigan as mg
        from minigan import kernel_table
        print(mg.get_kernel_backend('leaky_relu'), mg.get_conv_backend('conv2d_forward'),
              kernel_table.chosen('conv2d_forward').__module__)
    ''', **{var: 'numpy'})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ['numpy', 'numpy', 'minigan.functional.im2col']


def test_an_unknown_name_in_the_environment_warns_and_runs_auto():
    r = _python('import minigan as mg; print(mg.get_kernel_backend())', MINIGAN_KERNELS='fortran')
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ['auto']
    assert 'MINIGAN_KERNELS=fortran' in r.stderr and 'not a kernel backend' in r.stderr


def test_minigan_tune_from_the_environment():
    r = _python('''
        import numpy as np, minigan as mg, minigan.nn.functional as F
        x = mg.tensor(np.ones((2, 3, 6, 6), np.float32))
        F.conv2d(x, mg.tensor(np.ones((4, 3, 3, 3), np.float32)), padding=1)
        print(mg.get_kernel_backend('conv2d_forward'))
    ''', MINIGAN_TUNE='1')
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ['tune']
    assert r.stderr.count('minigan.tune: conv2d_forward') == 1


# ---- the path of a call --------------------------------------------------------------------------

def _chain_to(target, run):
    """The minigan functions on the stack, from the conv op's Function.__call__ down, when `target`
    is entered: a Python function (by its code) or a builtin (by the function object), which then
    ends the chain as one more hop."""
    found = []

    def hook(frame, event, arg):
        if found:
            return
        hit = (event == 'call' and frame.f_code is getattr(target, '__code__', None)) or \
              (event == 'c_call' and arg is target)
        if not hit:
            return
        chain, f = [], frame
        while f is not None:
            if f.f_code.co_filename.startswith(MINIGAN_DIR):
                chain.append(f'{os.path.relpath(f.f_code.co_filename, MINIGAN_DIR)}:{f.f_code.co_name}')
            if f.f_code is mg.Function.__call__.__code__:
                break
            f = f.f_back
        chain.reverse()
        found.append(chain + (['C++ ' + target.__name__] if event == 'c_call' else []))

    sys.setprofile(hook)
    try:
        run()
    finally:
        sys.setprofile(None)
    assert found, f'{target} was never called'
    return found[0]


def _conv_call():
    rng = np.random.default_rng(21)
    x = mg.tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    w = mg.tensor(rng.standard_normal((8, 3, 3, 3)).astype(np.float32))
    return lambda: F.conv2d(x, w, None, 1, 1)


def test_a_steady_state_call_reaches_the_numpy_reference_in_four_calls():
    run = _conv_call()
    with mg.kernel_backend('numpy'):
        run()
        chain = _chain_to(im2col.conv2d_forward, run)
    assert chain[0].endswith(':__call__') and chain[1:] == [
        'functional/conv.py:forward', 'kernel_table.py:conv2d_forward', 'functional/im2col.py:conv2d_forward'], chain


@pytest.mark.skipif('cpp' not in kernel_table.available_backends(), reason='C++ extension not built')
def test_a_steady_state_call_reaches_the_cpp_entry_point_in_five_calls():
    from minigan import cpu_ext
    run = _conv_call()
    with mg.kernel_backend('cpp'):
        run()
        chain = _chain_to(cpu_ext.ext().conv2d_forward, run)
    assert chain[0].endswith(':__call__') and chain[1:] == [
        'functional/conv.py:forward', 'kernel_table.py:conv2d_forward', 'cpp_kernels.py:conv2d_forward',
        'C++ conv2d_forward'], chain


def test_the_first_conv_of_a_fresh_process_does_no_more_than_the_next():
    """No first-call work on the default backend: no timing of candidates, no loading, no look-up.
    The first nn.Conv2d forward of a fresh process makes the same minigan calls as the second, at most
    40 over at most 6 files (counting every Python frame in the package: generator expressions,
    property getters and helpers included); with the C++ kernels, under the op's Function.forward
    only the table's functions and their cells run: at most 8 calls over three files."""
    r = _python('''
        import os, sys
        import numpy as np
        import minigan as mg
        from minigan import nn
        root = os.path.dirname(mg.__file__) + os.sep
        conv = nn.Conv2d(3, 8, 3, padding=1)
        x = mg.tensor(np.random.default_rng(21).standard_normal((2, 3, 8, 8)).astype(np.float32))
        for _ in range(2):
            calls, below, inside = [], [], [None]
            def hook(frame, event, arg):
                if event == 'call' and frame.f_code.co_filename.startswith(root):
                    name = os.path.relpath(frame.f_code.co_filename, root) + ':' + frame.f_code.co_name
                    calls.append(name)
                    if inside[0] is None and name == 'functional/conv.py:forward':
                        inside[0] = frame
                    if inside[0] not in (None, False):
                        below.append(name)
                elif event == 'return' and frame is inside[0]:
                    inside[0] = False
            sys.setprofile(hook)
            conv(x)
            sys.setprofile(None)
            print(' '.join(calls))
            print(' '.join(below))
    ''')
    assert r.returncode == 0, r.stderr
    first, first_below, second, second_below = (line.split() for line in r.stdout.splitlines())
    assert first == second and first_below == second_below
    assert len(first) <= 40, first
    assert len({c.split(':')[0] for c in first}) <= 6, sorted({c.split(':')[0] for c in first})
    if 'cpp' in kernel_table.available_backends():
        assert len(first_below) <= 8, first_below
        assert {c.split(':')[0] for c in first_below} == {'functional/conv.py', 'kernel_table.py', 'cpp_kernels.py'}


@pytest.mark.parametrize('backend', ['auto', 'numpy'])
def test_a_dtype_the_kernels_lack_runs_the_reference(backend):
    """float16 through leaky ReLU, batch norm and max pooling keeps its dtype and the reference's values."""
    x = np.random.default_rng(21).standard_normal((2, 3, 4, 4)).astype(np.float16)
    with mg.kernel_backend(backend):
        y = F.max_pool2d(F.leaky_relu(F.batch_norm(mg.tensor(x), None, None, training=True), 0.2), 2)
    want, _ = reference.max_pool2d(reference.leaky_relu(reference.batch_norm_forward(x.copy(), None, None, 1e-5)[0],
                                                         0.2), (2, 2), (2, 2), (0, 0))
    assert y.dtype == np.float16
    assert np.array_equal(y.numpy(), want)

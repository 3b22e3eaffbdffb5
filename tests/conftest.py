"""Shared test fixtures: the device parameter, seeds, and the torch reference.

PyTorch is optional. Every op and autograd test checks minigan against central differences
and values worked out by hand or with NumPy; the tests that also cross-check against PyTorch
take the `torch` fixture, and only those skip, saying so, where PyTorch is not installed.
"""
import numpy as np
import pytest

import minigan as mg

DEVICES = ['cpu', pytest.param('cuda', marks=pytest.mark.gpu)]

# Test files whose result does not depend on which CPU kernel backend runs the ops (commands, run
# folders, data, imports, the GPU's own kernels, and the runs that set their backend themselves):
# they are marked `once`, and the README's test command runs them in its first pass only.
ONCE = ('test_train', 'test_train_safety', 'test_evaluate', 'test_visualize', 'test_determinism',
        'test_distributed', 'test_distributed_train', 'test_data_', 'test_cuda_', 'test_gpu_scripts',
        'test_imports', 'test_tour', 'test_readme', 'test_run_lock', 'test_atomic_writes',
        'test_checkpoint_safety', 'test_graph', 'test_backend')


def pytest_collection_modifyitems(config, items):
    for item in items:
        name = item.path.stem
        if any(name == f or (f.endswith('_') and name.startswith(f)) for f in ONCE):
            item.add_marker(pytest.mark.once)
    if mg.cuda_available():
        return
    skip = pytest.mark.skip(reason='needs a GPU with CuPy (none here)')
    for item in items:
        if 'gpu' in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _cuda_debug_for_gpu_tests(request, monkeypatch):
    """GPU tests run with MINIGAN_CUDA_DEBUG=1: every kernel output starts as NaN, so an element that a
    kernel never writes fails the test instead of passing on whatever the memory pool held."""
    if request.node.get_closest_marker('gpu') is not None:
        monkeypatch.setenv('MINIGAN_CUDA_DEBUG', '1')


@pytest.fixture(params=DEVICES)
def device(request):
    """Every op test runs on the CPU, and on the GPU whenever one is at hand."""
    return request.param


@pytest.fixture(scope='session')
def torch():
    """The torch module, for a PyTorch cross-check; the test is skipped when torch is missing."""
    return pytest.importorskip('torch', reason='PyTorch cross-check: torch is not installed')


def optional_torch():
    """The torch module, or None where PyTorch is not installed: for tables of PyTorch twins that
    only the cross-checks (which take the `torch` fixture, or `reference` below) ever call."""
    try:
        import torch
    except ImportError:
        return None
    return torch


@pytest.fixture(params=['central differences', 'torch'])
def reference(request):
    """What a test compares minigan with: None for minigan's own references (central differences,
    float32 against float64, NumPy formulas), or the torch module for PyTorch's results.
    check_op (test_math_ops) and the optimiser tests take it."""
    return request.getfixturevalue('torch') if request.param == 'torch' else None


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def to_numpy(t):
    """A host float64 copy of a minigan or torch tensor or a NumPy array (or None)."""
    if t is None:
        return None
    if isinstance(t, np.ndarray):
        return t.astype(np.float64)
    if hasattr(t, 'detach') and hasattr(t, 'cpu') and not isinstance(t, mg.Tensor):
        return t.detach().cpu().numpy().astype(np.float64)
    return np.asarray(t.numpy(), dtype=np.float64)

"""Shared test fixtures: the device parameter, seeds, and the torch reference."""
import numpy as np
import pytest

import minigan as mg

DEVICES = ['cpu', pytest.param('cuda', marks=pytest.mark.gpu)]


def pytest_collection_modifyitems(config, items):
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


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def to_numpy(t):
    """A host float64 copy of a minigan or torch tensor (or None)."""
    if t is None:
        return None
    if hasattr(t, 'detach') and hasattr(t, 'cpu') and not isinstance(t, mg.Tensor):
        return t.detach().cpu().numpy().astype(np.float64)
    return np.asarray(t.numpy(), dtype=np.float64)

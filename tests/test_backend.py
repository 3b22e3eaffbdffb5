"""The CPU/GPU switch: array modules, devices, and CuPy staying un-imported on the CPU."""
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

import minigan as mg
from minigan import backend

HAS_CUPY = mg.cuda_available()


def test_numpy_arrays_are_cpu():
    a = np.ones(3)
    assert backend.get_array_module(a) is np
    assert backend.device_of(a) == 'cpu' and not backend.is_cupy_array(a)
    assert backend.to_device(a, 'cpu') is a
    assert backend.array_module('cpu') is np


def test_get_array_module_finds_cupy_from_the_array_itself(monkeypatch):
    """A CuPy array gives cupy even when cupy_or_raise() never ran: a stand-in module 'cupy' and an
    array type of it (no GPU needed)."""
    fake = types.ModuleType('cupy')
    fake.ndarray = type('ndarray', (), {'__module__': 'cupy'})
    monkeypatch.setitem(sys.modules, 'cupy', fake)
    monkeypatch.setattr(backend, '_cupy', None)
    a = fake.ndarray()
    assert backend.get_array_module(a) is fake
    assert backend.is_cupy_array(a) and backend.device_of(a) == 'cuda'
    assert backend.get_array_module(np.ones(2)) is np


@pytest.mark.parametrize('name,want', [('cpu', 'cpu'), ('cuda', 'cuda'), ('cuda:0', 'cuda')])
def test_check_device(name, want):
    assert backend.check_device(name) == want


@pytest.mark.parametrize('bad', ['gpu', 'CPU', 'tpu', ''])
def test_unknown_device_is_refused(bad):
    with pytest.raises(ValueError, match='use "cpu" or "cuda"'):
        backend.check_device(bad)


def test_importing_minigan_never_imports_cupy():
    code = textwrap.dedent('''
        import sys
        import numpy as np
        import minigan as mg
        import minigan.functional
        x = mg.tensor(np.ones((2, 3)), requires_grad=True)
        (x.exp() @ x.T).sum().backward()
        x.to("cpu"); mg.randn(2, 2); mg.gradcheck(lambda a: a * a, [x])
        print("cupy" in sys.modules)
    ''')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120,
                         cwd=str(__import__('pathlib').Path(mg.__file__).parents[1]))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'False'


@pytest.mark.skipif(HAS_CUPY, reason='CuPy and a GPU are present')
def test_without_a_gpu():
    assert mg.cuda_available() is False
    with pytest.raises(RuntimeError, match='device "cuda"') as info:
        backend.to_device(np.ones(2), 'cuda')
    assert 'CuPy' in str(info.value)
    with pytest.raises(RuntimeError, match='CuPy'):
        backend.array_module('cuda')


@pytest.mark.gpu
def test_round_trip_to_the_gpu():
    a = np.random.default_rng(0).standard_normal((3, 4))
    g = backend.to_device(a, 'cuda')
    assert backend.is_cupy_array(g) and backend.device_of(g) == 'cuda'
    assert backend.get_array_module(g) is backend.array_module('cuda')
    assert backend.to_device(g, 'cuda') is g
    np.testing.assert_array_equal(backend.to_device(g, 'cpu'), a)

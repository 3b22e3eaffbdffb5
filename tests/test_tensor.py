"""Tensor creation and the Tensor's own surface, as api.md describes it."""
import numpy as np
import pytest

import minigan as mg
from conftest import to_numpy


# ---- mg.tensor dtype rules (PyTorch's) ------------------------------------------
@pytest.mark.parametrize('dtype', [np.float64, np.float32, np.float16, np.int64, np.int32, np.uint8, np.bool_])
def test_numpy_arrays_keep_their_dtype(dtype):
    a = (np.random.default_rng(0).standard_normal((2, 3)) * 3).astype(dtype)
    x = mg.tensor(a)
    assert x.dtype == dtype and x.shape == (2, 3)
    np.testing.assert_array_equal(x.numpy(), a)


PYTHON_VALUES = [   # (data, the dtype and shape torch.tensor gives it)
    (1.5, 'float32', ()), ([1.0, 2.5], 'float32', (2,)), ([[1, 2.0], [3, 4]], 'float32', (2, 2)),
    (2, 'int64', ()), ([1, 2, 3], 'int64', (3,)), ([[1], [2]], 'int64', (2, 1)), (True, 'bool', ()),
    ([True, False], 'bool', (2,)), ([], 'float32', (0,)), (np.float64(2.5), 'float64', ()),
    (np.int32(3), 'int32', ()), (np.float32(1.5), 'float32', ()),
]


@pytest.mark.parametrize('data, dtype, shape', PYTHON_VALUES, ids=[repr(v[0]) for v in PYTHON_VALUES])
def test_python_values_get_torchs_dtypes(data, dtype, shape):
    x = mg.tensor(data)
    assert str(x.dtype) == dtype and x.shape == shape
    assert isinstance(x.array, np.ndarray)         # always an array, never a NumPy scalar
    np.testing.assert_array_equal(x.numpy(), np.asarray(data))


@pytest.mark.parametrize('data', [v[0] for v in PYTHON_VALUES], ids=repr)
def test_python_values_follow_torch(data, torch):
    x, t = mg.tensor(data), torch.tensor(data)
    assert str(x.dtype) == str(t.dtype).replace('torch.', '')
    assert x.shape == tuple(t.shape)
    assert isinstance(x.array, np.ndarray)         # always an array, never a NumPy scalar
    np.testing.assert_array_equal(x.numpy(), t.numpy())


def test_dtype_and_device_arguments():
    x = mg.tensor([1, 2], dtype=np.float64, device='cpu')
    assert x.dtype == np.float64 and x.device == 'cpu'
    assert mg.tensor(np.ones(2), dtype='float32').dtype == np.float32


def test_tensor_copies_its_input():
    a = np.ones(3)
    x = mg.tensor(a)
    a[0] = 5
    assert x.numpy()[0] == 1
    y = mg.tensor(x)
    x.array[1] = 7
    assert y.numpy()[1] == 1


def test_unsupported_data_is_refused():
    with pytest.raises(TypeError, match='cannot make a tensor'):
        mg.tensor(['a', 'b'])
    with pytest.raises(TypeError, match='cannot make a tensor'):
        mg.tensor(np.array(['a']))


def test_requires_grad_only_on_floats():
    for data in ([1, 2], np.arange(3), [True]):
        with pytest.raises(TypeError, match='only floating-point tensors can require grad'):
            mg.tensor(data, requires_grad=True)
    x = mg.tensor([1, 2])
    with pytest.raises(RuntimeError, match='floating-point'):
        x.requires_grad_()
    for dtype in (np.float16, np.float32, np.float64):
        assert mg.tensor(np.ones(2, dtype), requires_grad=True).requires_grad


# ---- what it is ---------------------------------------------------------------
def test_shape_dtype_device_numpy():
    a = np.random.default_rng(1).standard_normal((2, 3, 4))
    x = mg.tensor(a, requires_grad=True)
    assert x.shape == (2, 3, 4) and isinstance(x.shape, tuple)
    assert x.dtype == np.float64 and x.device == 'cpu' and x.ndim == 3 and x.numel() == 24
    assert len(x) == 2 and x.size() == (2, 3, 4) and x.size(1) == 3
    n = x.numpy()
    assert isinstance(n, np.ndarray) and not np.shares_memory(n, x.array)   # a copy
    n[0] = 0
    np.testing.assert_array_equal(x.numpy(), a)
    assert x.grad is None and x.is_leaf and x.requires_grad
    assert 'requires_grad=True' in repr(x) and 'float64' in repr(x)


def test_numpy_copy_of_a_view_and_of_a_0d_tensor():
    x = mg.tensor(np.arange(6.0).reshape(2, 3))
    y = x.transpose(0, 1)
    np.testing.assert_array_equal(y.numpy(), np.arange(6.0).reshape(2, 3).T)
    s = x.sum()
    assert s.numpy().shape == () and s.item() == 15.0 and float(s) == 15.0 and int(s) == 15
    with pytest.raises(ValueError, match='single-element'):
        x.item()


def test_to_cpu_is_identity_and_dtype_casts():
    x = mg.tensor(np.ones((2, 2)), requires_grad=True)
    assert x.to('cpu') is x and x.cpu() is x
    y = x.to(dtype=np.float32)
    assert y.dtype == np.float32 and y.requires_grad
    y.sum().backward()
    assert x.grad.dtype == np.float64
    assert x.float().dtype == np.float32 and x.float().double().dtype == np.float64
    with pytest.raises(ValueError, match='unknown device'):
        x.to('tpu')


@pytest.mark.skipif(mg.cuda_available(), reason='a GPU is present')
def test_to_cuda_without_cupy_or_gpu_is_one_clear_error():
    x = mg.tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match='CuPy') as info:
        x.to('cuda')
    assert 'cuda' in str(info.value) and ('not installed' in str(info.value) or 'GPU' in str(info.value))
    with pytest.raises(RuntimeError, match='CuPy'):
        x.cuda()
    with pytest.raises(RuntimeError, match='CuPy'):
        mg.tensor([1.0], device='cuda')


@pytest.mark.gpu
def test_to_cuda_and_back_with_gradients():
    a = np.random.default_rng(2).standard_normal((3, 2))
    x = mg.tensor(a, requires_grad=True)
    y = x.to('cuda')
    assert y.device == 'cuda' and y.requires_grad and not y.is_leaf
    (y * y).sum().backward()
    assert x.grad.device == 'cpu'
    np.testing.assert_allclose(x.grad.numpy(), 2 * a)
    np.testing.assert_array_equal(y.numpy(), a)
    assert y.to('cuda') is y and y.to('cpu').device == 'cpu'


def test_detach_and_requires_grad_():
    x = mg.tensor(np.ones(3), requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.creator is None
    assert d.requires_grad_() is d and d.requires_grad


# ---- operators ----------------------------------------------------------------------
def test_comparisons_give_bool_tensors_without_grad():
    a = np.random.default_rng(3).standard_normal(6)
    x = mg.tensor(a, requires_grad=True)
    for op in ('__lt__', '__le__', '__gt__', '__ge__', '__eq__', '__ne__'):
        got = getattr(x, op)(0.1)
        assert got.dtype == np.bool_ and not got.requires_grad
        np.testing.assert_array_equal(got.numpy(), getattr(a, op)(0.1))
    np.testing.assert_array_equal((x > mg.tensor(a[::-1].copy())).numpy(), a > a[::-1])
    assert {x: 1}[x] == 1                        # hashable by identity despite elementwise ==


def test_operators_with_numpy_arrays_on_either_side():
    a, b = np.arange(1.0, 4.0), np.full(3, 2.0)
    x = mg.tensor(a)
    for got, want in [(x + b, a + b), (b + x, b + a), (b - x, b - a), (b * x, b * a), (b / x, b / a),
                      (b ** x, b ** a), (x ** b, a ** b), (-x, -a), (+x, a), (abs(-x), a)]:
        assert isinstance(got, mg.Tensor)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_setitem():
    x = mg.tensor(np.zeros((2, 3)))
    x[0, 1] = 5.0
    x[1] = mg.tensor(np.ones(3))
    x[mg.tensor(np.array([True, False]))] += 1
    np.testing.assert_array_equal(x.numpy(), [[1, 6, 1], [1, 1, 1]])
    w = mg.tensor(np.zeros(3), requires_grad=True)
    with pytest.raises(RuntimeError, match='no_grad'):
        w[0] = 1.0
    with mg.no_grad():
        w[0] = 1.0
    assert w.numpy()[0] == 1.0


def test_float32_stays_float32_with_python_scalars():
    x = mg.tensor(np.ones(3, np.float32), requires_grad=True)
    for y in (x * 2.5, 2.5 * x, x + 1, x / 3, 1 / x, x ** 2, 2 ** x, x - 0.1, x.clamp(0.1, 0.9), x.mean(),
              x.var(), x.exp().log().sqrt()):
        assert y.dtype == np.float32


def test_argmax_matches_numpy():
    a = np.random.default_rng(4).standard_normal((3, 5))
    x = mg.tensor(a)
    np.testing.assert_array_equal(x.argmax(1).numpy(), a.argmax(1))
    np.testing.assert_array_equal(x.argmax(dim=0, keepdim=True).numpy(), a.argmax(0)[None])
    assert int(x.argmax()) == a.argmax()


def test_random_factories(device):
    mg.manual_seed(0)
    a = mg.randn(4, 3, device=device)
    mg.manual_seed(0)
    b = mg.randn((4, 3), device=device)
    np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    assert a.dtype == np.float32 and a.device == device
    z = mg.zeros(2, 3, device=device)
    assert z.shape == (2, 3) and not to_numpy(z).any() and z.dtype == np.float32
    assert (to_numpy(mg.ones(2, device=device)) == 1).all()
    inf = mg.tensor(np.array([np.inf, np.nan, 1.0]), device=device)
    np.testing.assert_array_equal(to_numpy(mg.zeros_like(inf)), np.zeros(3))   # not inf * 0 = nan
    np.testing.assert_array_equal(to_numpy(mg.ones_like(inf)), np.ones(3))
    r = mg.rand(1000, device=device)
    assert 0 <= float(r.min()) and float(r.max()) < 1
    i = mg.randint(0, 5, (100,), device=device)
    assert i.dtype == np.int64 and 0 <= int(i.min()) and int(i.max()) < 5

"""Reductions (sum, mean, max, min, var) with axis None / int / negative / tuple,
keepdims, and PyTorch's dim/keepdim keywords, against NumPy, central differences
and PyTorch: forward, gradients, double backward, gradcheck and gradgradcheck
(test_math_ops.check_op).
max/min inputs are distinct values at least 0.3 apart, so no tie or near-tie
lies within gradcheck's step."""
import numpy as np
import pytest

import minigan as mg
import minigan.functional as MF
from conftest import optional_torch
from test_math_ops import check_op

torch = optional_torch()        # None without PyTorch: only the torch half of `reference` calls it

SHAPE = (3, 4, 5)
AXES = [None, 0, 1, -1, (0, 2), (-1, 0), (0, 1, 2)]


def normal(seed=0, shape=SHAPE):
    return np.random.default_rng(seed).standard_normal(shape)


def distinct(seed=0, shape=SHAPE):
    """Shuffled values 0.5 apart plus a little noise: every max/min is unique by a margin."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.5 + rng.uniform(-0.1, 0.1, n) - n / 4).reshape(shape)


def _tdim(axis):
    return tuple(range(len(SHAPE))) if axis is None else axis


NUMPY = {'sum': np.sum, 'mean': np.mean, 'max': np.max, 'min': np.min,
         'var': lambda a, axis, keepdims: np.var(a, axis=axis, keepdims=keepdims, ddof=1)}


@pytest.mark.parametrize('keepdims', [False, True])
@pytest.mark.parametrize('axis', AXES, ids=str)
@pytest.mark.parametrize('name', list(NUMPY))
def test_values_match_numpy(name, axis, keepdims, device):
    """Each reduction equals NumPy's (var is unbiased by default, as in PyTorch: ddof=1)."""
    x = distinct(8)
    got = getattr(mg.tensor(x, device=device), name)(axis, keepdims)
    want = NUMPY[name](x, axis=axis, keepdims=keepdims)
    assert got.shape == np.shape(want)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


@pytest.mark.parametrize('keepdims', [False, True])
@pytest.mark.parametrize('axis', AXES, ids=str)
def test_sum_mean(axis, keepdims, device, reference):
    x = normal(1)
    check_op(lambda t: t.sum(axis, keepdims), [x], device, reference,
             torch_fn=lambda t: t.sum(_tdim(axis), keepdims))
    check_op(lambda t: t.mean(axis=axis, keepdims=keepdims), [x], device, reference,
             torch_fn=lambda t: t.mean(_tdim(axis), keepdims))


@pytest.mark.parametrize('keepdims', [False, True])
@pytest.mark.parametrize('axis', AXES, ids=str)
def test_max_min(axis, keepdims, device, reference):
    x = distinct(2)
    check_op(lambda t: t.max(axis, keepdims), [x], device, reference,
             torch_fn=lambda t: torch.amax(t, _tdim(axis), keepdims))
    check_op(lambda t: t.min(axis=axis, keepdims=keepdims), [x], device, reference,
             torch_fn=lambda t: torch.amin(t, _tdim(axis), keepdims))


@pytest.mark.parametrize('keepdims', [False, True])
@pytest.mark.parametrize('axis', AXES, ids=str)
def test_var(axis, keepdims, device, reference):
    check_op(lambda t: t.var(axis, keepdims), [normal(3)], device, reference,
             torch_fn=lambda t: t.var(_tdim(axis), keepdim=keepdims))


@pytest.mark.parametrize('axis', [None, 1, (0, 2)], ids=str)
def test_var_biased(axis, device, reference):
    check_op(lambda t: t.var(axis, unbiased=False), [normal(4)], device, reference,
             torch_fn=lambda t: t.var(_tdim(axis), unbiased=False))


def test_torch_keywords_dim_keepdim(device, reference):
    """x.sum(dim=..., keepdim=...) etc. behave exactly as axis/keepdims."""
    x = distinct(5)
    for name in ('sum', 'mean', 'max', 'min', 'var'):
        for dim in (1, -1, (0, 2)):
            got = getattr(mg.tensor(x, device=device), name)(dim=dim, keepdim=True)
            ref = getattr(mg.tensor(x, device=device), name)(axis=dim, keepdims=True)
            np.testing.assert_array_equal(got.numpy(), ref.numpy())
    check_op(lambda t: t.sum(dim=1, keepdim=True), [x], device, reference,
             torch_fn=lambda t: t.sum(dim=1, keepdim=True))
    check_op(lambda t: t.mean(dim=(0, 2)), [x], device, reference, torch_fn=lambda t: t.mean(dim=(0, 2)))
    check_op(lambda t: t.max(dim=-1), [x], device, reference, torch_fn=lambda t: t.max(dim=-1).values)
    check_op(lambda t: t.min(dim=0, keepdim=True), [x], device, reference,
             torch_fn=lambda t: t.min(dim=0, keepdim=True).values)
    check_op(lambda t: t.var(dim=2, keepdim=True), [x], device, reference,
             torch_fn=lambda t: t.var(dim=2, keepdim=True))


FUNCTIONAL = [
    ('F.sum', lambda t: MF.sum(t, 1), lambda t: t.sum(1)),
    ('F.mean', lambda t: MF.mean(t, (0, 1), True), lambda t: t.mean((0, 1), True)),
    ('F.max', lambda t: MF.max(t, 2), lambda t: torch.amax(t, 2)),
    ('F.min', lambda t: MF.min(t), lambda t: t.min()),
    ('F.var', lambda t: MF.var(t, 0), lambda t: t.var(0)),
]


@pytest.mark.parametrize('name,fn,tfn', FUNCTIONAL, ids=[f[0] for f in FUNCTIONAL])
def test_functional_reductions(name, fn, tfn, device, reference):
    check_op(fn, [distinct(6)], device, reference, torch_fn=tfn)


@pytest.mark.parametrize('shape', [(7,), (1, 5), (2, 1, 3), (1,)], ids=str)
def test_other_shapes(shape, device, reference):
    x = distinct(7, shape)
    check_op(lambda t: t.sum(0), [x], device, reference, torch_fn=lambda t: t.sum(0))
    check_op(lambda t: t.max(-1), [x], device, reference, torch_fn=lambda t: torch.amax(t, -1))
    check_op(lambda t: t.mean(), [x], device, reference, torch_fn=lambda t: t.mean())


def test_max_gradient_ties_split_evenly():
    """Full-reduction max shares the gradient between tied maxima, as torch's max()/amax do."""
    x = mg.tensor(np.array([1.0, 3.0, 3.0, -2.0]), requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.5, 0.5, 0.0])


def test_numpy_integer_axis_and_0d():
    x = mg.tensor(normal(8))
    np.testing.assert_allclose(x.sum(axis=np.int64(1)).numpy(), normal(8).sum(1), rtol=1e-12)
    np.testing.assert_allclose(x.mean(axis=[np.int64(0), 2]).numpy(), normal(8).mean((0, 2)), rtol=1e-12)
    s = mg.tensor(2.5)
    assert s.sum().shape == () and float(s.sum()) == 2.5 and float(s.max(0)) == 2.5


def test_reduction_errors():
    x = mg.tensor(normal(9))
    with pytest.raises(ValueError, match='axis 3 is out of range'):
        x.sum(3)
    with pytest.raises(ValueError, match='out of range'):
        x.max(axis=(0, -4))
    with pytest.raises(ValueError, match='empty'):
        mg.tensor(np.zeros((0, 3))).max()

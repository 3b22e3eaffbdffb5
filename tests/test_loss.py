"""Losses against their NumPy formulas and PyTorch: values, gradients (central differences and PyTorch),
second derivatives, stability at extreme logits, errors."""
import numpy as np
import pytest

import minigan as mg
import minigan.functional as F
from conftest import to_numpy

from scipy import special

TOL = {np.float64: dict(rtol=1e-6, atol=1e-9), np.float32: dict(rtol=1e-4, atol=1e-5)}
REDUCTIONS = ['mean', 'sum', 'none']


def reduce(per_element, reduction):
    return {'mean': np.mean, 'sum': np.sum, 'none': lambda a: a}[reduction](per_element)


def picked(a, labels):
    return a[np.arange(len(labels)), labels]


# the losses element by element, in NumPy (BCE clamps each log at -100, as PyTorch does)
NUMPY = {
    'cross_entropy': lambda logits, labels: -picked(special.log_softmax(logits, axis=1), labels),
    'nll_loss': lambda log_probs, labels: -picked(log_probs, labels),
    'binary_cross_entropy_with_logits': lambda x, t: np.logaddexp(0, x) - x * t,
    'binary_cross_entropy': lambda p, t: -(t * np.maximum(np.log(p), -100)
                                           + (1 - t) * np.maximum(np.log1p(-p), -100)),
    'mse_loss': lambda a, b: (a - b) ** 2,
}


def inputs_of(name, rng):
    """Float inputs and integer extras for one loss."""
    if name in ('cross_entropy', 'nll_loss'):
        return [3 * rng.standard_normal((5, 4))], [rng.integers(0, 4, 5)]
    if name == 'binary_cross_entropy':
        return [rng.uniform(0.02, 0.98, (3, 5)), rng.uniform(0, 1, (3, 5))], []
    return [4 * rng.standard_normal((2, 1, 3)), rng.uniform(0, 1, (2, 1, 3))], []


@pytest.mark.parametrize('reduction', REDUCTIONS)
@pytest.mark.parametrize('dtype', [np.float64, np.float32])
@pytest.mark.parametrize('name', list(NUMPY))
def test_values_match_numpy_formulas(name, dtype, reduction, device):
    floats, extra = inputs_of(name, np.random.default_rng(0))
    y = getattr(F, name)(*[mg.tensor(a.astype(dtype), device=device) for a in floats], *extra, reduction=reduction)
    expected = reduce(NUMPY[name](*[a.astype(dtype).astype(np.float64) for a in floats], *extra), reduction)
    assert y.dtype == dtype and y.shape == np.shape(expected)
    np.testing.assert_allclose(to_numpy(y), expected, **TOL[dtype])


def compare(torch, mg_loss, torch_loss, float_inputs, extra, dtype, device, reduction, upstream_seed=0):
    """Loss value and gradients of every float input, minigan against torch."""
    xs = [mg.tensor(a.astype(dtype), requires_grad=True, device=device) for a in float_inputs]
    xs_t = [torch.tensor(a.astype(dtype), requires_grad=True) for a in float_inputs]
    y = mg_loss(*xs, *extra, reduction=reduction)
    y_t = torch_loss(*xs_t, *[torch.tensor(e) for e in extra], reduction=reduction)
    assert y.dtype == dtype and y.shape == tuple(y_t.shape)
    np.testing.assert_allclose(to_numpy(y), to_numpy(y_t), **TOL[dtype])
    g = np.random.default_rng(upstream_seed).standard_normal(y.shape).astype(dtype)
    grads = mg.grad([y], xs, [mg.tensor(g, device=device)])
    grads_t = torch.autograd.grad(y_t, xs_t, torch.tensor(g))
    for got, want in zip(grads, grads_t):
        np.testing.assert_allclose(to_numpy(got), to_numpy(want), **TOL[dtype])


# ---- cross_entropy / nll_loss ----------------------------------------------------------------

@pytest.mark.parametrize('reduction', REDUCTIONS)
@pytest.mark.parametrize('dtype', [np.float64, np.float32])
@pytest.mark.parametrize('n,c', [(1, 1), (1, 4), (5, 3), (7, 10)])
def test_cross_entropy_matches_torch(n, c, dtype, reduction, device, torch):
    TF = torch.nn.functional
    rng = np.random.default_rng(1)
    logits, labels = 3 * rng.standard_normal((n, c)), rng.integers(0, c, n)
    compare(torch, F.cross_entropy, TF.cross_entropy, [logits], [labels], dtype, device, reduction)


@pytest.mark.parametrize('reduction', REDUCTIONS)
def test_nll_loss_matches_torch(reduction, device, torch):
    TF = torch.nn.functional
    rng = np.random.default_rng(2)
    log_probs, labels = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    compare(torch, F.nll_loss, TF.nll_loss, [log_probs], [labels], np.float64, device, reduction)


def test_cross_entropy_labels_as_tensor_or_array():
    rng = np.random.default_rng(3)
    logits = mg.tensor(rng.standard_normal((4, 3)))
    labels = rng.integers(0, 3, 4)
    a = F.cross_entropy(logits, labels).item()
    b = F.cross_entropy(logits, mg.tensor(labels)).item()
    c = F.cross_entropy(logits, [int(k) for k in labels]).item()
    expected = NUMPY['cross_entropy'](logits.numpy(), labels).mean()
    assert a == b == c
    assert a == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize('dtype', [np.float64, np.float32])
def test_cross_entropy_extreme_logits(dtype, device):
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, 1000.0], [1000.0, 1000.0, -1000.0]])
    labels = np.array([1, 2, 0])                 # a hopeless, a perfect and a tied row
    x = mg.tensor(logits.astype(dtype), requires_grad=True, device=device)
    y = F.cross_entropy(x, labels, reduction='none')
    g = np.random.default_rng(0).standard_normal(3).astype(dtype)
    gx, = mg.grad([y], [x], [mg.tensor(g, device=device)])
    np.testing.assert_allclose(to_numpy(y), [2000.0, 0.0, np.log(2)], **TOL[dtype])
    onehot = np.eye(3)[labels]                   # d/dlogits = g (softmax - onehot)
    np.testing.assert_allclose(to_numpy(gx), g[:, None] * (special.softmax(logits, axis=1) - onehot), **TOL[dtype])
    assert np.isfinite(to_numpy(F.cross_entropy(x, labels))).all()


@pytest.mark.parametrize('shape', [(1, 1), (3, 4), (5, 2)])
def test_cross_entropy_gradcheck_and_gradgradcheck(shape, device):
    rng = np.random.default_rng(4)
    logits = mg.tensor(rng.standard_normal(shape), requires_grad=True, device=device)
    labels = rng.integers(0, shape[1], shape[0])
    for reduction in REDUCTIONS:
        assert mg.gradcheck(lambda x: F.cross_entropy(x, labels, reduction=reduction), [logits])
    assert mg.gradgradcheck(lambda x: F.cross_entropy(x, labels), [logits])


def test_cross_entropy_double_backward_matches_torch(torch):
    TF = torch.nn.functional
    rng = np.random.default_rng(5)
    logits, labels, v = rng.standard_normal((4, 5)), rng.integers(0, 5, 4), rng.standard_normal((4, 5))
    x = mg.tensor(logits, requires_grad=True)
    gx, = mg.grad([F.cross_entropy(x, labels)], [x], create_graph=True)
    ggx, = mg.grad([(gx * mg.tensor(v)).sum()], [x])
    xt = torch.tensor(logits, requires_grad=True)
    gx_t, = torch.autograd.grad(TF.cross_entropy(xt, torch.tensor(labels)), xt, create_graph=True)
    ggx_t, = torch.autograd.grad((gx_t * torch.tensor(v)).sum(), xt)
    np.testing.assert_allclose(ggx.numpy(), ggx_t.numpy(), **TOL[np.float64])


def test_cross_entropy_errors():
    logits = mg.randn(4, 3)
    with pytest.raises(IndexError, match='label 3 is out of range for 3 classes'):
        F.cross_entropy(logits, np.array([0, 1, 2, 3]))
    with pytest.raises(IndexError, match='label -1 is out of range'):
        F.cross_entropy(logits, np.array([0, -1, 2, 1]))
    with pytest.raises(ValueError, match=r'labels must have shape \(4,\)'):
        F.cross_entropy(logits, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r'labels must have shape \(4,\)'):
        F.cross_entropy(logits, np.zeros((4, 1), dtype=np.int64))
    with pytest.raises(TypeError, match='integer class indices'):
        F.cross_entropy(logits, np.array([0.0, 1.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match=r'\(N, C\) logits'):
        F.cross_entropy(mg.randn(3), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match='reduction'):
        F.cross_entropy(logits, np.array([0, 1, 2, 1]), reduction='avg')


# ---- binary cross-entropy ----------------------------------------------------------------------

@pytest.mark.parametrize('reduction', REDUCTIONS)
@pytest.mark.parametrize('dtype', [np.float64, np.float32])
@pytest.mark.parametrize('shape', [(1,), (5, 1), (3, 4), (2, 1, 3, 3)])
def test_bce_with_logits_matches_torch(shape, dtype, reduction, device, torch):
    TF = torch.nn.functional
    rng = np.random.default_rng(6)
    logits, targets = 4 * rng.standard_normal(shape), rng.uniform(0, 1, shape)
    compare(torch, F.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits,
            [logits, targets], [], dtype, device, reduction)   # gradients for targets too


@pytest.mark.parametrize('dtype', [np.float64, np.float32])
def test_bce_with_logits_extreme_logits(dtype, device):
    logits = np.array([-100.0, -100.0, 100.0, 100.0, -30.0, 30.0, 0.0])
    targets = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.5])
    x = mg.tensor(logits.astype(dtype), requires_grad=True, device=device)
    with np.errstate(over='raise', divide='raise', invalid='raise'):
        y = F.binary_cross_entropy_with_logits(x, mg.tensor(targets.astype(dtype), device=device), reduction='none')
        gx, = mg.grad([y.sum()], [x])
    np.testing.assert_allclose(to_numpy(y), np.logaddexp(0, logits) - logits * targets, **TOL[dtype])
    np.testing.assert_allclose(to_numpy(gx), special.expit(logits) - targets, **TOL[dtype])   # sigmoid(x) - t


def test_bce_with_logits_is_the_softplus_form():
    rng = np.random.default_rng(7)
    x, t = 5 * rng.standard_normal((4, 3)), rng.uniform(0, 1, (4, 3))
    y = F.binary_cross_entropy_with_logits(mg.tensor(x), mg.tensor(t), reduction='none').numpy()
    np.testing.assert_allclose(y, np.logaddexp(0, x) - x * t, rtol=1e-12)


def test_bce_with_logits_gradcheck_and_gradgradcheck(device):
    rng = np.random.default_rng(8)
    x = mg.tensor(3 * rng.standard_normal((3, 5)), requires_grad=True, device=device)
    t = mg.tensor(rng.uniform(0, 1, (3, 5)), requires_grad=True, device=device)
    for reduction in REDUCTIONS:
        assert mg.gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction=reduction), [x, t])
    assert mg.gradgradcheck(F.binary_cross_entropy_with_logits, [x, t])


def test_bce_with_logits_double_backward_matches_torch(torch):
    TF = torch.nn.functional
    rng = np.random.default_rng(9)
    logits, targets, v = 3 * rng.standard_normal(6), rng.uniform(0, 1, 6), rng.standard_normal(6)
    x = mg.tensor(logits, requires_grad=True)
    gx, = mg.grad([F.binary_cross_entropy_with_logits(x, mg.tensor(targets))], [x], create_graph=True)
    ggx, = mg.grad([(gx * mg.tensor(v)).sum()], [x])
    xt = torch.tensor(logits, requires_grad=True)
    gx_t, = torch.autograd.grad(TF.binary_cross_entropy_with_logits(xt, torch.tensor(targets)), xt,
                                create_graph=True)
    ggx_t, = torch.autograd.grad((gx_t * torch.tensor(v)).sum(), xt)
    np.testing.assert_allclose(ggx.numpy(), ggx_t.numpy(), **TOL[np.float64])


def test_bce_with_logits_takes_array_targets_and_checks_shape():
    x = mg.randn(4, dtype=np.float64)
    t = np.array([0.0, 1.0, 1.0, 0.0])
    assert F.binary_cross_entropy_with_logits(x, t).item() == \
        pytest.approx(NUMPY['binary_cross_entropy_with_logits'](x.numpy(), t).mean(), rel=1e-12)
    with pytest.raises(ValueError, match='must be the same as input size'):
        F.binary_cross_entropy_with_logits(mg.randn(4, 1), mg.ones(4))


@pytest.mark.parametrize('reduction', REDUCTIONS)
@pytest.mark.parametrize('dtype', [np.float64, np.float32])
def test_bce_matches_torch(dtype, reduction, device, torch):
    TF = torch.nn.functional
    rng = np.random.default_rng(10)
    probs, targets = rng.uniform(0.02, 0.98, (3, 5)), rng.uniform(0, 1, (3, 5))
    compare(torch, F.binary_cross_entropy, TF.binary_cross_entropy, [probs, targets], [], dtype, device, reduction)


def test_bce_at_zero_and_one_probabilities(device):
    """torch clamps each log at -100; the gradient stays finite."""
    probs, targets = np.array([0.0, 0.0, 1.0, 1.0, 0.5]), np.array([0.0, 1.0, 0.0, 1.0, 0.3])
    p = mg.tensor(probs, requires_grad=True, device=device)
    with np.errstate(over='raise', divide='raise', invalid='raise'):
        y = F.binary_cross_entropy(p, mg.tensor(targets, device=device), reduction='none')
        gp, = mg.grad([y.sum()], [p])
    with np.errstate(divide='ignore'):
        expected = NUMPY['binary_cross_entropy'](probs, targets)     # log(0) clamped to -100
    np.testing.assert_allclose(to_numpy(y), expected, rtol=1e-12)
    assert np.isfinite(to_numpy(gp)).all()


def test_bce_gradcheck_and_range_error():
    rng = np.random.default_rng(11)
    p = mg.tensor(rng.uniform(0.1, 0.9, (2, 3)), requires_grad=True)
    t = mg.tensor(rng.uniform(0, 1, (2, 3)))
    assert mg.gradcheck(lambda a: F.binary_cross_entropy(a, t), [p])
    assert mg.gradgradcheck(lambda a: F.binary_cross_entropy(a, t), [p])
    with pytest.raises(ValueError, match='between 0 and 1'):
        F.binary_cross_entropy(mg.tensor(np.array([0.5, 1.5])), mg.tensor(np.array([0.0, 1.0])))


# ---- mse_loss -----------------------------------------------------------------------------------

@pytest.mark.parametrize('reduction', REDUCTIONS)
@pytest.mark.parametrize('dtype', [np.float64, np.float32])
@pytest.mark.parametrize('shape', [(1,), (4, 1), (3, 5), (2, 3, 1, 3)])
def test_mse_loss_matches_torch(shape, dtype, reduction, device, torch):
    TF = torch.nn.functional
    rng = np.random.default_rng(12)
    compare(torch, F.mse_loss, TF.mse_loss, [rng.standard_normal(shape), rng.standard_normal(shape)], [],
            dtype, device, reduction)


def test_mse_loss_gradcheck_and_gradgradcheck(device):
    rng = np.random.default_rng(13)
    a = mg.tensor(rng.standard_normal((3, 4)), requires_grad=True, device=device)
    b = mg.tensor(rng.standard_normal((3, 4)), requires_grad=True, device=device)
    for reduction in REDUCTIONS:
        assert mg.gradcheck(lambda x, y: F.mse_loss(x, y, reduction=reduction), [a, b])
    assert mg.gradgradcheck(F.mse_loss, [a, b])


def test_mse_loss_warns_when_shapes_differ():
    with pytest.warns(UserWarning, match='differs from input size'):
        y = F.mse_loss(mg.randn(4, 1, dtype=np.float64), mg.randn(4, dtype=np.float64))
    assert y.shape == ()
    with pytest.raises(ValueError, match='reduction'):
        F.mse_loss(mg.randn(3), mg.randn(3), reduction='batchmean')

"""Activations: forward against NumPy formulas, gradients against central differences and PyTorch,
second derivatives, stability at extreme inputs, dropout statistics."""
import numpy as np
import pytest

from scipy import special

import minigan as mg
import minigan.functional as F
from conftest import to_numpy

TOL = {np.float64: dict(rtol=1e-6, atol=1e-9), np.float32: dict(rtol=1e-4, atol=1e-5)}
SHAPES = [(1,), (3, 5), (1, 1, 2, 3), (2, 3, 1, 4)]     # odd sizes, batch 1, one channel, non-square


def away_from_kink(rng, shape):
    """Random values with |x| in [0.1, 2]: relu-like kinks at 0 stay out of the finite differences."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.1, 2.0, size=shape)


def normal(scale):
    return lambda rng, s: scale * rng.standard_normal(s)


# name -> (minigan op, NumPy formula of its forward, input sampler)
OPS = {
    'relu': (F.relu, lambda x: np.maximum(x, 0), away_from_kink),
    'leaky_relu': (lambda x: F.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x), away_from_kink),
    'leaky_relu_default': (F.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x), away_from_kink),
    'tanh': (F.tanh, np.tanh, normal(2)),
    'sigmoid': (F.sigmoid, special.expit, normal(3)),
    'softplus': (F.softplus, lambda x: np.logaddexp(0, x), normal(3)),
    'softplus_beta': (lambda x: F.softplus(x, beta=2.0), lambda x: np.logaddexp(0, 2 * x) / 2, normal(3)),
    'logsigmoid': (F.logsigmoid, lambda x: -np.logaddexp(0, -x), normal(3)),
    'log1p': (F.log1p, np.log1p, lambda rng, s: rng.uniform(-0.9, 3.0, size=s)),
    'softmax_last': (lambda x: F.softmax(x, -1), lambda x: special.softmax(x, -1), normal(2)),
    'softmax_first': (lambda x: F.softmax(x, dim=0), lambda x: special.softmax(x, 0), normal(2)),
    'log_softmax_last': (lambda x: F.log_softmax(x, -1), lambda x: special.log_softmax(x, -1), normal(2)),
    'log_softmax_axis0': (lambda x: F.log_softmax(x, axis=0), lambda x: special.log_softmax(x, 0), normal(2)),
}


def torch_op(torch, name):
    """PyTorch's twin of OPS[name], for the cross-checks."""
    TF = torch.nn.functional
    return {
        'relu': TF.relu, 'leaky_relu': lambda x: TF.leaky_relu(x, 0.2), 'leaky_relu_default': TF.leaky_relu,
        'tanh': torch.tanh, 'sigmoid': torch.sigmoid, 'softplus': TF.softplus,
        'softplus_beta': lambda x: TF.softplus(x, beta=2.0), 'logsigmoid': TF.logsigmoid, 'log1p': torch.log1p,
        'softmax_last': lambda x: TF.softmax(x, -1), 'softmax_first': lambda x: TF.softmax(x, dim=0),
        'log_softmax_last': lambda x: TF.log_softmax(x, -1), 'log_softmax_axis0': lambda x: TF.log_softmax(x, 0),
    }[name]


# ops whose second derivative is not identically zero, compared with torch's double backward
SMOOTH = ['tanh', 'sigmoid', 'softplus', 'logsigmoid', 'log1p', 'softmax_last', 'softmax_first',
          'log_softmax_last', 'log_softmax_axis0']


def run_mg(op, x, g, device, create_graph=False):
    xt = mg.tensor(x, requires_grad=True, device=device)
    y = op(xt)
    gx, = mg.grad([y], [xt], [mg.tensor(g, device=device)], create_graph=create_graph)
    return xt, y, gx


def run_torch(torch, op, x, g):
    xt = torch.tensor(x, requires_grad=True)
    y = op(xt)
    gx, = torch.autograd.grad(y, xt, torch.tensor(g), create_graph=True)
    return xt, y, gx


@pytest.mark.parametrize('dtype', [np.float64, np.float32])
@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('name', list(OPS))
def test_forward_matches_numpy(name, shape, dtype, device):
    mg_op, numpy_op, sample = OPS[name]
    x = sample(np.random.default_rng(1), shape).astype(dtype)
    y = mg_op(mg.tensor(x, device=device))
    assert y.dtype == dtype and y.device == device
    np.testing.assert_allclose(to_numpy(y), numpy_op(x.astype(np.float64)), **TOL[dtype])


@pytest.mark.parametrize('dtype', [np.float64, np.float32])
@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('name', list(OPS))
def test_forward_and_gradient_match_torch(name, shape, dtype, device, torch):
    mg_op, _, sample = OPS[name]
    rng = np.random.default_rng(1)
    x, g = sample(rng, shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    _, y, gx = run_mg(mg_op, x, g, device)
    _, y_ref, gx_ref = run_torch(torch, torch_op(torch, name), x, g)
    assert y.dtype == dtype and gx.dtype == dtype and y.device == device
    np.testing.assert_allclose(to_numpy(y), to_numpy(y_ref), **TOL[dtype])
    np.testing.assert_allclose(to_numpy(gx), to_numpy(gx_ref), **TOL[dtype])


@pytest.mark.parametrize('shape', [(1,), (3, 5), (2, 1, 3)])
@pytest.mark.parametrize('name', list(OPS))
def test_gradcheck(name, shape, device):
    mg_op, _, sample = OPS[name]
    x = mg.tensor(sample(np.random.default_rng(2), shape), requires_grad=True, device=device)
    assert mg.gradcheck(mg_op, [x])


@pytest.mark.parametrize('name', list(OPS))
def test_gradgradcheck(name, device):
    mg_op, _, sample = OPS[name]
    x = mg.tensor(sample(np.random.default_rng(3), (2, 3, 3)), requires_grad=True, device=device)
    assert mg.gradgradcheck(mg_op, [x])


@pytest.mark.parametrize('shape', [(4, 3), (2, 1, 5)])
@pytest.mark.parametrize('name', SMOOTH + ['leaky_relu', 'relu'])
def test_double_backward_matches_torch(name, shape, device, torch):
    """d/dx and d/dg of <v, dL/dx> (L = <g, op(x)>), against torch's double backward."""
    (mg_op, _, sample), torch_fn = OPS[name], torch_op(torch, name)
    rng = np.random.default_rng(4)
    x, g, v = sample(rng, shape), rng.standard_normal(shape), rng.standard_normal(shape)
    xm = mg.tensor(x, requires_grad=True, device=device)
    gm = mg.tensor(g, requires_grad=True, device=device)
    gx, = mg.grad([mg_op(xm)], [xm], [gm], create_graph=True)
    ggx, ggg = mg.grad([(gx * mg.tensor(v, device=device)).sum()], [xm, gm], allow_unused=True)
    xt, gt = torch.tensor(x, requires_grad=True), torch.tensor(g, requires_grad=True)
    gx_t, = torch.autograd.grad(torch_fn(xt), xt, gt, create_graph=True)
    ggx_t, ggg_t = torch.autograd.grad((gx_t * torch.tensor(v)).sum(), [xt, gt], allow_unused=True)
    ggx_ref = np.zeros(shape) if ggx_t is None else to_numpy(ggx_t)
    ggx_got = np.zeros(shape) if ggx is None else to_numpy(ggx)
    np.testing.assert_allclose(ggx_got, ggx_ref, **TOL[np.float64])
    np.testing.assert_allclose(to_numpy(ggg), to_numpy(ggg_t), **TOL[np.float64])


@pytest.mark.parametrize('dtype', [np.float64, np.float32])
@pytest.mark.parametrize('op', ['softmax', 'log_softmax'])
def test_softmax_extreme_logits(op, dtype, device):
    """Logits of +-1000 give finite values and gradients equal to the closed forms:
    d<g, softmax>/dx = s (g - <g, s>),  d<g, log_softmax>/dx = g - s sum(g)."""
    x = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -999.0], [1000.0, 1000.0, 1000.0]], dtype=dtype)
    g = np.random.default_rng(5).standard_normal(x.shape).astype(dtype)
    _, y, gx = run_mg(lambda t: getattr(F, op)(t, dim=1), x, g, device)
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    s = special.softmax(x64, axis=1)
    if op == 'softmax':
        y_ref, gx_ref = s, s * (g64 - (g64 * s).sum(1, keepdims=True))
    else:
        y_ref, gx_ref = special.log_softmax(x64, axis=1), g64 - s * g64.sum(1, keepdims=True)
    assert np.isfinite(to_numpy(y)).all() and np.isfinite(to_numpy(gx)).all()
    np.testing.assert_allclose(to_numpy(y), y_ref, **TOL[dtype])
    np.testing.assert_allclose(to_numpy(gx), gx_ref, **TOL[dtype])


# op -> (value, derivative), in forms that stay finite for |x| = 1000
EXTREME = {
    'sigmoid': (special.expit, lambda x: special.expit(x) * special.expit(-x)),
    'softplus': (lambda x: np.logaddexp(0, x), special.expit),
    'logsigmoid': (lambda x: -np.logaddexp(0, -x), lambda x: special.expit(-x)),
    'tanh': (np.tanh, lambda x: 1 / np.cosh(np.minimum(np.abs(x), 300)) ** 2),
}


@pytest.mark.parametrize('op', list(EXTREME))
def test_elementwise_extreme_inputs(op, device):
    x = np.array([-1000.0, -100.0, -30.0, 0.0, 30.0, 100.0, 1000.0])
    g = np.ones_like(x)
    with np.errstate(over='raise', divide='raise', invalid='raise'):   # no overflow, no NaN
        _, y, gx = run_mg(getattr(F, op), x, g, device)
    value, derivative = EXTREME[op]
    assert np.isfinite(to_numpy(y)).all() and np.isfinite(to_numpy(gx)).all()
    np.testing.assert_allclose(to_numpy(y), value(x), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(to_numpy(gx), derivative(x), rtol=1e-6, atol=1e-12)


def test_softplus_is_stable_form():
    x = mg.tensor(np.array([-50.0, -1.0, 0.0, 2.0, 50.0]))
    expected = np.maximum(x.numpy(), 0) + np.log1p(np.exp(-np.abs(x.numpy())))
    np.testing.assert_allclose(F.softplus(x).numpy(), expected, rtol=1e-15)


def test_tensor_methods_use_the_activations():
    x = mg.tensor(np.array([-1.5, 0.5, 2.0]))
    np.testing.assert_allclose(x.relu().numpy(), [0.0, 0.5, 2.0])
    np.testing.assert_allclose(x.tanh().numpy(), np.tanh(x.numpy()))
    np.testing.assert_allclose(x.sigmoid().numpy(), 1 / (1 + np.exp(-x.numpy())))


# ---- dropout -----------------------------------------------------------------------------

@pytest.mark.parametrize('p', [0.2, 0.5, 0.9])
def test_dropout_statistics(p, device):
    mg.manual_seed(0)
    x = mg.ones(200, 500, device=device)
    y = to_numpy(F.dropout(x, p, training=True))
    kept = y != 0
    assert abs(kept.mean() - (1 - p)) < 0.01                 # 100k draws: std of the mean < 0.0016
    np.testing.assert_allclose(y[kept], 1 / (1 - p), rtol=1e-6)   # survivors are scaled by 1/(1-p)
    assert abs(y.mean() - 1) < 0.03                          # the expectation is preserved


def test_dropout_gradient_is_the_mask(device):
    mg.manual_seed(1)
    x = mg.tensor(np.random.default_rng(6).standard_normal((7, 9)), requires_grad=True, device=device)
    y = F.dropout(x, 0.3)
    g = np.random.default_rng(7).standard_normal((7, 9))
    gx, = mg.grad([y], [x], [mg.tensor(g, device=device)])
    mask = to_numpy(y) / to_numpy(x)
    assert set(np.round(np.unique(mask), 6)) <= {0.0, round(1 / 0.7, 6)}
    np.testing.assert_allclose(to_numpy(gx), g * mask, rtol=1e-12)


def test_dropout_seed_reproduces_the_mask():
    x = mg.randn(5, 6, dtype=np.float64)
    mg.manual_seed(3)
    a = F.dropout(x, 0.5).numpy()
    mg.manual_seed(3)
    b = F.dropout(x, 0.5).numpy()
    c = F.dropout(x, 0.5).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)


def test_dropout_identity_and_extremes(device):
    x = mg.tensor(np.random.default_rng(8).standard_normal((4, 5)).astype(np.float32), device=device)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0, training=True) is x
    zeros = F.dropout(x, 1.0, training=True)
    assert zeros.dtype == np.float32 and not to_numpy(zeros).any()
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match='between 0 and 1'):
            F.dropout(x, bad)


def test_dropout_gradcheck_and_gradgradcheck():
    x = mg.tensor(np.random.default_rng(9).standard_normal((3, 4)), requires_grad=True)

    def seeded(t):                               # the same mask on every evaluation
        mg.manual_seed(11)
        return F.dropout(t, 0.4)
    assert mg.gradcheck(seeded, [x])
    assert mg.gradgradcheck(seeded, [x])


def test_dropout_keeps_float32():
    y = F.dropout(mg.randn(3, 3), 0.5)
    assert y.dtype == np.float32


# ---- entrance checks ----------------------------------------------------------------------

def test_errors_name_the_problem():
    x = mg.randn(2, 3)
    with pytest.raises(TypeError, match='needs the dimension'):
        F.softmax(x)
    with pytest.raises(ValueError, match='out of range'):
        F.log_softmax(x, 2)
    with pytest.raises(TypeError, match='floating-point'):
        F.relu(mg.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match='Tensor'):
        F.sigmoid(np.zeros(3))
    with pytest.raises(TypeError, match='negative_slope'):
        F.leaky_relu(x, '0.2')

"""linear(x, w, b) = x @ w.T + b against its NumPy formulas and PyTorch for any number of leading axes
(forward, gradients, second derivatives), gradcheck and gradgradcheck, non-contiguous inputs, entrance checks."""
import numpy as np
import pytest

import minigan as mg
import minigan.functional as F
from conftest import to_numpy

TOL = {np.float64: dict(rtol=1e-6, atol=1e-9), np.float32: dict(rtol=1e-4, atol=1e-4)}
# (input shape, out_features): one sample without a batch axis, batch 1, a batch, extra leading axes
CASES = [((5,), 3), ((1, 7), 4), ((6, 9), 1), ((2, 3, 5), 4), ((2, 1, 3, 4), 2)]


def numpy_linear(gy, x, w, b=None):
    """y = x w^T + b, and for the cotangent gy: dx = gy w, dw = gy^T x, db = gy summed over leading axes."""
    x2, gy2 = x.reshape(-1, x.shape[-1]), gy.reshape(-1, w.shape[0])
    y = x @ w.T + (0 if b is None else b)
    grads = (gy @ w, gy2.T @ x2) + (() if b is None else (gy2.sum(0),))
    return (y,) + grads


@pytest.mark.parametrize('bias', [True, False])
@pytest.mark.parametrize('dtype', [np.float64, np.float32])
@pytest.mark.parametrize('shape, out', CASES)
def test_matches_numpy(shape, out, dtype, bias, device):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(shape), rng.standard_normal((out, shape[-1]))]
    arrays += [rng.standard_normal(out)] if bias else []
    arrays = [a.astype(dtype) for a in arrays]
    gy = rng.standard_normal(shape[:-1] + (out,)).astype(dtype)
    ours = [mg.tensor(a, requires_grad=True, device=device) for a in arrays]
    y = F.linear(*ours)
    grads = mg.grad([y], ours, [mg.tensor(gy, device=device)])
    for a, e in zip((y,) + grads, numpy_linear(*(a.astype(np.float64) for a in [gy] + arrays))):
        assert a.dtype == dtype and a.shape == e.shape
        np.testing.assert_allclose(to_numpy(a), e, **TOL[dtype])


@pytest.mark.parametrize('bias', [True, False])
@pytest.mark.parametrize('dtype', [np.float64, np.float32])
@pytest.mark.parametrize('shape, out', CASES)
def test_matches_torch(shape, out, dtype, bias, device, torch):
    TF = torch.nn.functional
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(shape), rng.standard_normal((out, shape[-1]))]
    arrays += [rng.standard_normal(out)] if bias else []
    arrays = [a.astype(dtype) for a in arrays]
    ours = [mg.tensor(a, requires_grad=True, device=device) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y, ty = F.linear(*ours), TF.linear(*theirs)
    gy = rng.standard_normal(ty.shape).astype(dtype)
    grads = mg.grad([y], ours, [mg.tensor(gy, device=device)])
    tgrads = torch.autograd.grad(ty, theirs, torch.tensor(gy))
    assert y.shape == tuple(ty.shape)
    for a, e in zip((y,) + grads, (ty,) + tgrads):
        assert a.dtype == dtype
        np.testing.assert_allclose(to_numpy(a), to_numpy(e), **TOL[dtype])


@pytest.mark.parametrize('shape, out', CASES[1:4])
def test_gradcheck_and_gradgradcheck(shape, out, device):
    rng = np.random.default_rng(1)
    x, w, b = (mg.tensor(rng.standard_normal(s), requires_grad=True, device=device)
               for s in (shape, (out, shape[-1]), (out,)))
    assert mg.gradcheck(F.linear, [x, w, b])
    assert mg.gradgradcheck(F.linear, [x, w, b])


def test_double_backward_matches_torch(device, torch):
    """A two-layer critic with a tanh-free nonlinearity (squares) and its gradient penalty w.r.t. the input."""
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal((4, 6)), 0.5 * rng.standard_normal((5, 6)), rng.standard_normal(5),
              0.5 * rng.standard_normal((1, 5))]

    def pen(lib, x, w1, b1, w2):
        lin = F.linear if lib is mg else torch.nn.functional.linear
        h = lin(x, w1, b1)
        out = lin(h * h, w2).sum()
        g = (mg.grad([out], [x], create_graph=True) if lib is mg else
             torch.autograd.grad(out, x, create_graph=True))[0]
        return (((g * g).sum(1) ** 0.5 - 1) ** 2).mean()

    ours = [mg.tensor(a, requires_grad=True, device=device) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    p, tp = pen(mg, *ours), pen(torch, *theirs)
    np.testing.assert_allclose(to_numpy(p), to_numpy(tp), **TOL[np.float64])
    for a, e in zip(mg.grad([p], ours), torch.autograd.grad(tp, theirs)):
        np.testing.assert_allclose(to_numpy(a), to_numpy(e), **TOL[np.float64])


def test_non_contiguous_inputs_and_keywords(device):
    rng = np.random.default_rng(3)
    xs, ws, bs = rng.standard_normal((7, 3)), rng.standard_normal((7, 4)), rng.standard_normal(4)
    xm, wm, bm = (mg.tensor(a, requires_grad=True, device=device) for a in (xs, ws, bs))
    y = F.linear(xm.T, weight=wm.T, bias=bm)                     # x (3, 7) and w (4, 7) are transposed views
    gy = rng.standard_normal((3, 4))
    y_ref, gx, gw, gb = numpy_linear(gy, xs.T, ws.T, bs)
    for a, e in zip((y,) + mg.grad([y], [xm, wm, bm], [mg.tensor(gy, device=device)]), (y_ref, gx.T, gw.T, gb)):
        np.testing.assert_allclose(to_numpy(a), e, **TOL[np.float64])


def test_bad_inputs_get_clear_errors():
    x, w = mg.randn(4, 6), mg.randn(3, 6)
    with pytest.raises(ValueError, match='input has 5 features'):
        F.linear(mg.randn(4, 5), w)
    with pytest.raises(ValueError, match='must be 2-D'):
        F.linear(x, mg.randn(6))
    with pytest.raises(ValueError, match=r'bias must have shape \(3,\)'):
        F.linear(x, w, mg.randn(6))
    with pytest.raises(TypeError, match='float32 but weight is float64'):
        F.linear(x, w.double())
    with pytest.raises(TypeError, match='minigan Tensor'):
        F.linear(x, np.zeros((3, 6), np.float32))

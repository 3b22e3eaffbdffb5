"""max_pool2d and avg_pool2d against direct loops and PyTorch (forward, gradient, second derivatives),
gradcheck and gradgradcheck, ties and NaN in max pooling, non-contiguous inputs, entrance checks."""
import numpy as np
import pytest

import minigan as mg
import minigan.functional as F
from conftest import to_numpy

TOL = {np.float64: dict(rtol=1e-6, atol=1e-9), np.float32: dict(rtol=1e-4, atol=1e-5)}
OPS = {'max': F.max_pool2d, 'avg': F.avg_pool2d}

# (shape, kernel_size, stride, padding): default stride, overlapping windows, non-square kernels and images,
# batch 1, one channel, and sizes the stride does not divide
CASES = [
    ((2, 3, 8, 8), 2, None, 0),
    ((1, 1, 7, 5), 3, 2, 1),
    ((2, 2, 9, 6), (3, 2), (2, 1), (1, 0)),
    ((1, 3, 5, 7), 2, 1, 1),
    ((3, 1, 11, 10), 5, 3, 2),
]
CASE_IDS = [f'{c[0][2]}x{c[0][3]}-k{c[1]}-s{c[2]}-p{c[3]}' for c in CASES]


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def loops(kind, x, gy, k, s, p):
    """Forward and gradient window by window. max: each output's gradient goes to the first maximum
    of its window (row-major order); avg: the sum over the window divided by its full size, padding
    included (PyTorch's default count_include_pad=True), and the gradient spread back the same way."""
    (kh, kw), (ph, pw) = pair(k), pair(p)
    sh, sw = pair(k if s is None else s)
    n, c, h, w = x.shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    y, gx = np.zeros((n, c, oh, ow)), np.zeros(x.shape)
    for i in range(oh):
        for j in range(ow):
            rows = slice(max(i * sh - ph, 0), min(i * sh - ph + kh, h))
            cols = slice(max(j * sw - pw, 0), min(j * sw - pw + kw, w))
            window = x[:, :, rows, cols].reshape(n, c, -1)
            if kind == 'avg':
                y[:, :, i, j] = window.sum(-1) / (kh * kw)
                gx[:, :, rows, cols] += gy[:, :, i, j][:, :, None, None] / (kh * kw)
            else:
                first = window.argmax(-1)
                y[:, :, i, j] = window.max(-1)
                r, q = np.divmod(first, cols.stop - cols.start)
                for b in range(n):
                    for ch in range(c):
                        gx[b, ch, rows.start + r[b, ch], cols.start + q[b, ch]] += gy[b, ch, i, j]
    return y, gx


@pytest.mark.parametrize('dtype', [np.float64, np.float32])
@pytest.mark.parametrize('case', CASES, ids=CASE_IDS)
@pytest.mark.parametrize('kind', ['max', 'avg'])
def test_matches_direct_loops(kind, case, dtype, device):
    shape, k, s, p = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    xm = mg.tensor(x, requires_grad=True, device=device)
    y = OPS[kind](xm, k, s, p)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx, = mg.grad([y], [xm], [mg.tensor(gy, device=device)])
    y_ref, gx_ref = loops(kind, x.astype(np.float64), gy.astype(np.float64), k, s, p)
    assert y.shape == y_ref.shape and y.dtype == dtype and gx.dtype == dtype
    np.testing.assert_allclose(to_numpy(y), y_ref, **TOL[dtype])
    np.testing.assert_allclose(to_numpy(gx), gx_ref, **TOL[dtype])


def spread(rng, shape):
    """Distinct values (a shuffled grid, spacing 0.05): no ties, and finite differences never swap a maximum."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.05 - n * 0.025).reshape(shape)


@pytest.mark.parametrize('dtype', [np.float64, np.float32])
@pytest.mark.parametrize('case', CASES, ids=CASE_IDS)
@pytest.mark.parametrize('kind', ['max', 'avg'])
def test_matches_torch(kind, case, dtype, device, torch):
    shape, k, s, p = case
    ours, theirs = OPS[kind], getattr(torch.nn.functional, f'{kind}_pool2d')
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    xm = mg.tensor(x, requires_grad=True, device=device)
    xt = torch.tensor(x, requires_grad=True)
    y, ty = ours(xm, k, s, p), theirs(xt, k, s, p)
    gy = rng.standard_normal(ty.shape).astype(dtype)
    gx, = mg.grad([y], [xm], [mg.tensor(gy, device=device)])
    tgx, = torch.autograd.grad(ty, xt, torch.tensor(gy))
    assert y.shape == tuple(ty.shape) and y.dtype == dtype and gx.dtype == dtype
    np.testing.assert_allclose(to_numpy(y), to_numpy(ty), **TOL[dtype])
    np.testing.assert_allclose(to_numpy(gx), to_numpy(tgx), **TOL[dtype])


@pytest.mark.parametrize('case', CASES[:4], ids=CASE_IDS[:4])
@pytest.mark.parametrize('kind', ['max', 'avg'])
def test_gradcheck_and_gradgradcheck(kind, case, device):
    shape, k, s, p = case
    x = mg.tensor(spread(np.random.default_rng(1), shape), requires_grad=True, device=device)
    fn = lambda x: OPS[kind](x, k, s, p)  # noqa: E731
    assert mg.gradcheck(fn, [x])
    assert mg.gradgradcheck(fn, [x])


def penalty(lib, x, w, kind, k, s, p):
    """|d<1, pool(x * w)>/dx|^2 summed, the gradient-penalty pattern; its gradient w.r.t. w goes through
    the pool's backward Function and that Function's own backward."""
    pool = getattr(F if lib is mg else lib.nn.functional, f'{kind}_pool2d')
    y = pool(x * w, k, s, p)
    out = (y * y).sum()
    g = (mg.grad([out], [x], create_graph=True) if lib is mg else lib.autograd.grad(out, x, create_graph=True))[0]
    return (g * g).sum()


@pytest.mark.parametrize('kind', ['max', 'avg'])
def test_double_backward_matches_torch(kind, device, torch):
    shape, k, s, p = CASES[2]
    rng = np.random.default_rng(2)
    x, w = spread(rng, shape), rng.uniform(0.5, 1.5, shape)
    ours = [mg.tensor(a, requires_grad=True, device=device) for a in (x, w)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w)]
    pen, tpen = penalty(mg, *ours, kind, k, s, p), penalty(torch, *theirs, kind, k, s, p)
    np.testing.assert_allclose(to_numpy(pen), to_numpy(tpen), **TOL[np.float64])
    for a, e in zip(mg.grad([pen], ours), torch.autograd.grad(tpen, theirs)):
        np.testing.assert_allclose(to_numpy(a), to_numpy(e), **TOL[np.float64])


def test_max_pool_ties_go_to_the_first_maximum_as_in_torch(device):
    """Integer-valued inputs tie often; the whole gradient goes to the first maximum of each window."""
    x = np.random.default_rng(3).integers(0, 3, size=(2, 2, 6, 7)).astype(np.float64)
    for k, s in ((2, 2), (3, 1)):
        xm = mg.tensor(x, requires_grad=True, device=device)
        y = F.max_pool2d(xm, k, s)
        gy = np.random.default_rng(4).standard_normal(y.shape)
        gx, = mg.grad([y], [xm], [mg.tensor(gy, device=device)])
        np.testing.assert_allclose(to_numpy(gx), loops('max', x, gy, k, s, 0)[1], rtol=1e-12, atol=1e-12)


def test_max_pool_propagates_nan(device):
    x = np.random.default_rng(5).standard_normal((1, 1, 4, 4))
    x[0, 0, 1, 1] = np.nan
    y = to_numpy(F.max_pool2d(mg.tensor(x, device=device), 2))
    assert np.isnan(y[0, 0, 0, 0]) and np.isfinite(y.reshape(-1)[1:]).all()


def test_non_contiguous_input(device):
    rng = np.random.default_rng(6)
    xs = rng.standard_normal((2, 3, 9, 8))
    view = xs.transpose(0, 1, 3, 2)[:, ::2]                         # (2, 2, 8, 9), strided
    for kind in ('max', 'avg'):
        xm = mg.tensor(xs, requires_grad=True, device=device)
        y = OPS[kind](xm.transpose(2, 3)[:, ::2], 3, 2, 1)
        gy = rng.standard_normal(y.shape)
        gx, = mg.grad([y], [xm], [mg.tensor(gy, device=device)])
        y_ref, gview = loops(kind, np.ascontiguousarray(view), gy, 3, 2, 1)
        gx_ref = np.zeros(xs.shape)
        gx_ref.transpose(0, 1, 3, 2)[:, ::2] = gview
        np.testing.assert_allclose(to_numpy(y), y_ref, **TOL[np.float64])
        np.testing.assert_allclose(to_numpy(gx), gx_ref, **TOL[np.float64])


def test_bad_inputs_get_clear_errors():
    x = mg.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match='4-D input'):
        F.max_pool2d(mg.randn(8, 8), 2)
    with pytest.raises(ValueError, match='at most half the kernel size'):
        F.avg_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match='smaller than the'):
        F.max_pool2d(mg.randn(1, 1, 3, 3), 4)
    with pytest.raises(ValueError, match='kernel_size and stride must be >= 1'):
        F.max_pool2d(x, 2, stride=0)
    with pytest.raises(TypeError, match='floating point'):
        F.max_pool2d(mg.tensor(np.zeros((1, 1, 4, 4), np.int64)), 2)

"""Elementwise arithmetic, unary math and matmul against central differences and PyTorch autograd.

Every op, checked twice (the `reference` fixture): mg.gradcheck and mg.gradgradcheck pass in
float64, and float32 gives float64's values and gradients at rtol 1e-4; then, where PyTorch is
installed, forward and gradients (random cotangent) equal torch's at rtol 1e-6 in float64 and 1e-4
in float32, and second derivatives (w.r.t. the inputs and the cotangent) equal torch's double
backward in float64. Inputs are seeded random values; log/sqrt get positive inputs, abs/clamp stay
at least 0.1 from their kinks.

`check_op` is the shared harness (test_shape_ops and test_reduce_ops import it).
"""
import numpy as np
import pytest

import minigan as mg
import minigan.functional as MF
from conftest import optional_torch, to_numpy

torch = optional_torch()        # None without PyTorch: only the torch half of `reference` calls it

TOL = {np.float64: dict(rtol=1e-6, atol=1e-9), np.float32: dict(rtol=1e-4, atol=1e-5)}


def _host(t):
    if torch is not None and isinstance(t, torch.Tensor):    # torch may answer a lazily-zero tensor
        return t.detach().cpu().numpy(force=True).astype(np.float64)
    return np.asarray(t, dtype=np.float64) if isinstance(t, np.ndarray) else to_numpy(t)


def assert_close(got, want, dtype, what=''):
    got, want = _host(got), _host(want)
    assert got.shape == want.shape, f'{what}: shape {got.shape} != torch {want.shape}'
    np.testing.assert_allclose(got, want, err_msg=what, **TOL[dtype])


def normal(rng, shape):
    return rng.standard_normal(shape)


def positive(rng, shape):
    return rng.uniform(0.5, 2.0, shape)


def away_from(rng, shape, points=(0.0,), gap=0.1, scale=1.5):
    """Uniform values in [-scale, scale] that stay at least `gap` from each kink in `points`."""
    x = rng.uniform(-scale, scale, shape)
    for p in points:
        x = np.where(np.abs(x - p) < gap, x + np.where(x >= p, 2 * gap, -2 * gap), x)
    return x


def check_op(fn, arrays, device, reference, torch_fn=None, seed=0, double=True, gradcheck=True):
    """Without a reference (None): gradcheck/gradgradcheck in float64, and float32 against float64.
    With reference=torch: fn(*mg tensors) vs torch_fn(*torch tensors) (torch_fn defaults to fn), for
    float64 and float32: forward, dtype, gradients, and in float64 the double backward."""
    if reference is None:
        check_without_torch(fn, arrays, device, seed, double, gradcheck)
        return
    torch_fn = torch_fn or fn
    rng = np.random.default_rng(seed)
    for dtype in (np.float64, np.float32):
        xs = [mg.tensor(a.astype(dtype), requires_grad=True, device=device) for a in arrays]
        ts = [torch.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
        y, yt = fn(*xs), torch_fn(*ts)
        assert y.device == device
        assert str(y.dtype) == str(yt.dtype).replace('torch.', ''), (y.dtype, yt.dtype)
        assert_close(y, yt, dtype, 'forward')
        second = double and dtype == np.float64
        u = rng.standard_normal(y.shape).astype(dtype)
        ug = mg.tensor(u, requires_grad=second, device=device)
        ugt = torch.tensor(u, requires_grad=second)
        gs = mg.grad([y], xs, [ug], create_graph=second)
        gts = torch.autograd.grad([yt], ts, [ugt], create_graph=second)
        for k, (g, gt, x) in enumerate(zip(gs, gts, xs)):
            assert g.shape == x.shape and g.dtype == x.dtype
            assert_close(g, gt, dtype, f'gradient of input {k}')
        if second:                   # d/d(x, u) of <v, dL/dx>, v random: torch's double backward
            vs = [rng.standard_normal(x.shape) for x in xs]
            s = mg.tensor(0.0, dtype=np.float64, device=device)
            st = torch.tensor(0.0, dtype=torch.float64)
            for g, gt, v in zip(gs, gts, vs):
                s = s + (g * mg.tensor(v, device=device)).sum()
                st = st + (gt * torch.tensor(v)).sum()
            hs = mg.grad([s], xs + [ug], allow_unused=True)
            hts = torch.autograd.grad([st], ts + [ugt], allow_unused=True)
            for k, (h, ht, x) in enumerate(zip(hs, hts, xs + [ug])):
                h = np.zeros(x.shape) if h is None else _host(h)
                ht = np.zeros(x.shape) if ht is None else _host(ht)
                assert_close(h, ht, dtype, f'second derivative, input {k}')


def check_without_torch(fn, arrays, device, seed, double, gradcheck):
    """The same op in float32 gives float64's forward and gradients; float64 passes gradcheck."""
    u = np.random.default_rng(seed).standard_normal(fn(*[mg.tensor(a) for a in arrays]).shape)
    results = {}
    for dtype in (np.float64, np.float32):
        xs = [mg.tensor(a.astype(dtype), requires_grad=True, device=device) for a in arrays]
        y = fn(*xs)
        assert y.device == device and y.dtype == dtype
        gs = mg.grad([y], xs, [mg.tensor(u.astype(dtype), device=device)])
        assert all(g.shape == x.shape and g.dtype == x.dtype for g, x in zip(gs, xs))
        results[dtype] = [y] + list(gs)
    for k, (a, b) in enumerate(zip(results[np.float32], results[np.float64])):
        assert_close(a, b, np.float32, 'forward' if k == 0 else f'gradient of input {k - 1}')
    if gradcheck:
        xs = [mg.tensor(a, requires_grad=True, device=device) for a in arrays]
        assert mg.gradcheck(fn, xs)
        if double:
            assert mg.gradgradcheck(fn, xs)


# ---- binary arithmetic with broadcasting ----------------------------------
BINARY = {
    'add': (lambda a, b: a + b, normal),
    'sub': (lambda a, b: a - b, normal),
    'mul': (lambda a, b: a * b, normal),
    'div': (lambda a, b: a / b, lambda rng, s: away_from(rng, s, gap=0.4, scale=2.0)),
}
SHAPES = [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 5)), ((1,), (2, 3)),
          ((), (3, 2)), ((2, 1, 3), (4, 1)), ((1, 1), (1, 1))]


@pytest.mark.parametrize('op', list(BINARY))
@pytest.mark.parametrize('shapes', SHAPES, ids=str)
def test_binary_broadcast(op, shapes, device, reference):
    fn, make_b = BINARY[op]
    rng = np.random.default_rng(1)
    check_op(fn, [normal(rng, shapes[0]), make_b(rng, shapes[1])], device, reference)


def test_functional_names_match_operators(device):
    rng = np.random.default_rng(2)
    a = mg.tensor(rng.standard_normal((2, 3)), device=device)
    b = mg.tensor(rng.uniform(1, 2, (3,)), device=device)
    for f, op in [(MF.add, a + b), (MF.sub, a - b), (MF.mul, a * b), (MF.div, a / b), (MF.pow, abs(a) ** b)]:
        got = f(abs(a), b) if f is MF.pow else f(a, b)
        np.testing.assert_array_equal(to_numpy(got), to_numpy(op))


SCALAR = [
    ('x + 2.5', lambda x: x + 2.5), ('2.5 + x', lambda x: 2.5 + x),
    ('x - 1.5', lambda x: x - 1.5), ('1.5 - x', lambda x: 1.5 - x),
    ('x * -0.7', lambda x: x * -0.7), ('3 * x', lambda x: 3 * x),
    ('x / 1.7', lambda x: x / 1.7), ('2.0 / x', lambda x: 2.0 / x), ('-x', lambda x: -x),
]


@pytest.mark.parametrize('name,fn', SCALAR, ids=[s[0] for s in SCALAR])
def test_scalar_operands(name, fn, device, reference):
    rng = np.random.default_rng(3)
    check_op(fn, [away_from(rng, (3, 5), gap=0.3)], device, reference)


def test_neg_functional(device, reference):
    check_op(MF.neg, [normal(np.random.default_rng(4), (2, 3, 1))], device, reference, torch_fn=lambda t: -t)


# ---- pow ------------------------------------------------------------------
POW = [
    ('x**3', lambda x: x ** 3, normal), ('x**2', lambda x: x ** 2, normal),
    ('x**2.5', lambda x: x ** 2.5, positive), ('x**-1.5', lambda x: x ** -1.5, positive),
    ('x**0.5', lambda x: x ** 0.5, positive),
    ('rpow 2**x', lambda x: 2.0 ** x, normal), ('rpow 1.7**x', lambda x: 1.7 ** x, normal),
]


@pytest.mark.parametrize('name,fn,make', POW, ids=[p[0] for p in POW])
def test_pow_scalar(name, fn, make, device, reference):
    check_op(fn, [make(np.random.default_rng(5), (4, 3))], device, reference)


@pytest.mark.parametrize('shapes', [((3, 4), (3, 4)), ((2, 3), (3,)), ((4, 1), (1, 2))], ids=str)
def test_pow_tensor_exponent(shapes, device, reference):
    rng = np.random.default_rng(6)
    check_op(lambda a, b: a ** b, [positive(rng, shapes[0]), normal(rng, shapes[1])], device, reference)


# ---- unary math -----------------------------------------------------------
UNARY = [   # (name, minigan op, its torch twin, input sampler)
    ('exp', lambda x: x.exp(), lambda t: t.exp(), normal),
    ('log', lambda x: x.log(), lambda t: t.log(), positive),
    ('sqrt', lambda x: x.sqrt(), lambda t: t.sqrt(), positive),
    ('abs', lambda x: x.abs(), lambda t: t.abs(), away_from),
    ('abs builtin', lambda x: abs(x), lambda t: t.abs(), away_from),
    ('exp functional', MF.exp, lambda t: t.exp(), normal),
    ('log functional', MF.log, lambda t: t.log(), positive),
    ('sqrt functional', MF.sqrt, lambda t: t.sqrt(), positive),
    ('abs functional', MF.abs, lambda t: t.abs(), away_from),
]


@pytest.mark.parametrize('name,fn,tfn,make', UNARY, ids=[u[0] for u in UNARY])
@pytest.mark.parametrize('shape', [(5,), (2, 3, 4), (1, 1)], ids=str)
def test_unary(name, fn, tfn, make, shape, device, reference):
    check_op(fn, [make(np.random.default_rng(7), shape)], device, reference, torch_fn=tfn)


CLAMP = [('min', dict(min=-0.5)), ('max', dict(max=0.5)), ('both', dict(min=-0.5, max=0.5))]


@pytest.mark.parametrize('name,kw', CLAMP, ids=[c[0] for c in CLAMP])
def test_clamp(name, kw, device, reference):
    x = away_from(np.random.default_rng(8), (4, 6), points=(-0.5, 0.5), gap=0.1)
    assert ((x < -0.5).any() and (x > 0.5).any() and (np.abs(x) < 0.5).any())   # all regions present
    check_op(lambda t: t.clamp(**kw), [x], device, reference)
    check_op(lambda t: MF.clamp(t, kw.get('min'), kw.get('max')), [x], device, reference,
             torch_fn=lambda t: torch.clamp(t, kw.get('min'), kw.get('max')), gradcheck=False)


def test_clamp_positional_and_errors():
    x = mg.tensor(np.array([-2.0, 0.0, 2.0]))
    np.testing.assert_array_equal(x.clamp(-1, 1).numpy(), [-1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match='min'):
        x.clamp()


# ---- matmul ---------------------------------------------------------------
MATMUL = [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((1, 1), (1, 1)),
          ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)), ((2, 1, 3, 4), (3, 4, 2)), ((1, 3, 4), (2, 4, 5)),
          ((2, 3, 4), (4,)), ((4,), (2, 4, 3))]


@pytest.mark.parametrize('shapes', MATMUL, ids=str)
def test_matmul(shapes, device, reference):
    rng = np.random.default_rng(9)
    check_op(lambda a, b: a @ b, [normal(rng, shapes[0]), normal(rng, shapes[1])], device, reference)


def test_matmul_functional_and_errors():
    rng = np.random.default_rng(10)
    a, b = mg.tensor(rng.standard_normal((2, 3))), mg.tensor(rng.standard_normal((3, 4)))
    np.testing.assert_allclose(MF.matmul(a, b).numpy(), a.numpy() @ b.numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match='inner sizes 3 and 4'):
        a @ mg.tensor(rng.standard_normal((4, 2)))
    with pytest.raises(ValueError, match='batch dims'):
        mg.tensor(rng.standard_normal((2, 3, 4))) @ mg.tensor(rng.standard_normal((3, 4, 5)))
    with pytest.raises(ValueError, match='1-D'):
        a @ mg.tensor(2.0)


# ---- dtypes, devices, errors -----------------------------------------------
def test_dtype_promotion_matches_torch(torch):
    """A float tensor keeps its dtype against int/bool tensors and Python numbers, as in torch."""
    f32 = np.array([1.5, -2.0, 3.0], np.float32)
    i64 = np.array([1, 2, 3])
    cases = [lambda a, b: a * b, lambda a, b: a + b, lambda a, b: b - a, lambda a, b: a / b,
             lambda a, b: a * 2.5, lambda a, b: b * 2.5, lambda a, b: b / b, lambda a, b: a * (b > 1)]
    for fn in cases:
        got = fn(mg.tensor(f32), mg.tensor(i64))
        want = fn(torch.tensor(f32), torch.tensor(i64))
        assert str(got.dtype) == str(want.dtype).replace('torch.', '')
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)


def test_mixed_float_dtypes_give_each_input_its_own_gradient_dtype():
    rng = np.random.default_rng(11)
    a32, b64 = rng.standard_normal(3).astype(np.float32), rng.standard_normal(3)
    a, b = mg.tensor(a32, requires_grad=True), mg.tensor(b64, requires_grad=True)
    (a * b).exp().sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    e = np.exp(a32.astype(np.float64) * b64)          # d e^(ab)/da = b e^(ab), d/db = a e^(ab)
    np.testing.assert_allclose(a.grad.numpy(), b64 * e, rtol=1e-5)
    np.testing.assert_allclose(b.grad.numpy(), a32 * e, rtol=1e-5)


def test_shape_mismatch_error_names_both_shapes():
    with pytest.raises(ValueError, match=r'\(2, 3\).*\(4,\)'):
        mg.tensor(np.ones((2, 3))) + mg.tensor(np.ones(4))

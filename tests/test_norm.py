"""batch_norm against its formulas in NumPy and torch.nn.functional.batch_norm: forward, gradients
through the batch statistics, second (and third) derivatives, running statistics, eval mode,
entrance checks."""
import numpy as np
import pytest

import minigan as mg
import minigan.functional as F
from conftest import to_numpy

TOL = {np.float64: dict(rtol=1e-6, atol=1e-9), np.float32: dict(rtol=1e-4, atol=1e-5)}
# odd sizes, one channel, non-square, batch 1 where training allows it (4-D with H*W > 1)
SHAPES = [(5, 3), (2, 1), (7, 4), (3, 2, 5, 3), (1, 3, 2, 5), (2, 1, 3, 3), (4, 5, 1, 2)]


def make_case(shape, dtype, seed=0):
    """Input (not centred, not unit scale), weight, bias, running stats and an upstream gradient."""
    rng = np.random.default_rng(seed)
    c = shape[1]
    return dict(x=(3 * rng.standard_normal(shape) + 1.5).astype(dtype),
                w=rng.uniform(0.5, 2.0, c).astype(dtype), b=rng.standard_normal(c).astype(dtype),
                rm=rng.standard_normal(c).astype(dtype), rv=rng.uniform(0.5, 2.0, c).astype(dtype),
                g=rng.standard_normal(shape).astype(dtype))


def mg_side(case, device, training, affine=True, momentum=0.1):
    x = mg.tensor(case['x'], requires_grad=True, device=device)
    w = mg.tensor(case['w'], requires_grad=True, device=device) if affine else None
    b = mg.tensor(case['b'], requires_grad=True, device=device) if affine else None
    rm, rv = mg.tensor(case['rm'], device=device), mg.tensor(case['rv'], device=device)
    y = F.batch_norm(x, rm, rv, w, b, training, momentum)
    return x, w, b, rm, rv, y


def numpy_side(case, training, affine=True, momentum=0.1, eps=1e-5):
    """y, the new running stats and the gradients of x (w, b) for the cotangent g, in float64:
    x^ = (x - mean) / sqrt(var + eps), y = w x^ + b, with the batch's mean and biased variance in
    training (the running variance gets the unbiased one), the running stats in eval;
    dx = w / sqrt(var + eps) (g - mean(g) - x^ mean(g x^)) in training, w g / sqrt(var + eps) in eval."""
    x, g, rm, rv = (case[k].astype(np.float64) for k in ('x', 'g', 'rm', 'rv'))
    w = case['w'].astype(np.float64) if affine else np.ones(x.shape[1])
    b = case['b'].astype(np.float64) if affine else np.zeros(x.shape[1])
    axes = (0,) + tuple(range(2, x.ndim))
    per_channel = (1, -1) + (1,) * (x.ndim - 2)

    def c(a):
        return a.reshape(per_channel)
    if training:
        mean, var = x.mean(axes), x.var(axes)
        n = x.size // x.shape[1]
        rm, rv = (1 - momentum) * rm + momentum * mean, (1 - momentum) * rv + momentum * var * n / (n - 1)
    else:
        mean, var = rm, rv
    xhat = (x - c(mean)) / np.sqrt(c(var) + eps)
    y = c(w) * xhat + c(b)
    if training:
        gx = c(w) / np.sqrt(c(var) + eps) * (g - g.mean(axes, keepdims=True)
                                              - xhat * (g * xhat).mean(axes, keepdims=True))
    else:
        gx = c(w) * g / np.sqrt(c(var) + eps)
    grads = [gx, (g * xhat).sum(axes), g.sum(axes)] if affine else [gx]
    return y, rm, rv, grads


@pytest.mark.parametrize('affine', [True, False])
@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('dtype', [np.float64, np.float32])
@pytest.mark.parametrize('shape', SHAPES + [(4, 3, 5)])
def test_forward_gradients_and_running_stats_match_numpy(shape, dtype, training, affine, device):
    case = make_case(shape, dtype)
    x, w, b, rm, rv, y = mg_side(case, device, training, affine)
    y_ref, rm_ref, rv_ref, grads_ref = numpy_side(case, training, affine)
    assert y.dtype == dtype and y.shape == shape and y.device == device
    for got, want in [(y, y_ref), (rm, rm_ref), (rv, rv_ref)]:
        assert_close(got, want, dtype)
    grads = mg.grad([y], [x, w, b] if affine else [x], [mg.tensor(case['g'], device=device)])
    for got, want in zip(grads, grads_ref):
        assert got.dtype == dtype
        assert_close(got, want, dtype)


def torch_side(torch, case, training, affine=True, momentum=0.1):
    x = torch.tensor(case['x'], requires_grad=True)
    w = torch.tensor(case['w'], requires_grad=True) if affine else None
    b = torch.tensor(case['b'], requires_grad=True) if affine else None
    rm, rv = torch.tensor(case['rm']), torch.tensor(case['rv'])
    y = torch.nn.functional.batch_norm(x, rm, rv, w, b, training, momentum)
    return x, w, b, rm, rv, y


def assert_close(got, want, dtype):
    np.testing.assert_allclose(to_numpy(got), to_numpy(want), **TOL[dtype])


@pytest.mark.parametrize('affine', [True, False])
@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('dtype', [np.float64, np.float32])
@pytest.mark.parametrize('shape', SHAPES)
def test_forward_gradients_and_running_stats_match_torch(shape, dtype, training, affine, device, torch):
    case = make_case(shape, dtype)
    x, w, b, rm, rv, y = mg_side(case, device, training, affine)
    xt, wt, bt, rmt, rvt, yt = torch_side(torch, case, training, affine)
    assert y.dtype == dtype and y.shape == shape and y.device == device
    assert_close(y, yt, dtype)
    assert_close(rm, rmt, dtype)
    assert_close(rv, rvt, dtype)
    inputs, inputs_t = ([x, w, b], [xt, wt, bt]) if affine else ([x], [xt])
    grads = mg.grad([y], inputs, [mg.tensor(case['g'], device=device)])
    grads_t = torch.autograd.grad(yt, inputs_t, torch.tensor(case['g']))
    for got, want in zip(grads, grads_t):
        assert got.dtype == dtype
        assert_close(got, want, dtype)


@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('shape', [(5, 3), (2, 1), (1, 2, 3, 2), (3, 1, 2, 3)])
def test_gradcheck(shape, training, device):
    case = make_case(shape, np.float64, seed=1)
    x, w, b = (mg.tensor(case[k], requires_grad=True, device=device) for k in 'xwb')
    rm, rv = mg.tensor(case['rm'], device=device), mg.tensor(case['rv'], device=device)
    assert mg.gradcheck(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training), [x, w, b])
    assert mg.gradcheck(lambda x: F.batch_norm(x, None, None, None, None, True) if training
                        else F.batch_norm(x, rm, rv, training=False), [x])


@pytest.mark.parametrize('affine', [True, False])
@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('shape', [(4, 3), (2, 2, 3, 2), (1, 1, 3, 3)])
def test_gradgradcheck(shape, training, affine, device):
    """Second derivatives; in training mode they go through the batch mean and variance."""
    case = make_case(shape, np.float64, seed=2)
    x = mg.tensor(case['x'], requires_grad=True, device=device)
    w = mg.tensor(case['w'], requires_grad=True, device=device) if affine else None
    b = mg.tensor(case['b'], requires_grad=True, device=device) if affine else None
    rm, rv = mg.tensor(case['rm'], device=device), mg.tensor(case['rv'], device=device)
    inputs = [x, w, b] if affine else [x]
    assert mg.gradgradcheck(lambda *xs: F.batch_norm(xs[0], rm, rv, *xs[1:], training=training), inputs)


def double_backward(lib, case, v, device=None, torch=None):
    """Gradients of <v, (dL/dx, dL/dw, dL/db)> with L = <g, bn(x)>, with respect to x, w and g."""
    if lib == 'torch':
        x, w, b = (torch.tensor(case[k], requires_grad=True) for k in 'xwb')
        g = torch.tensor(case['g'], requires_grad=True)
        grads = torch.autograd.grad(torch.nn.functional.batch_norm(x, None, None, w, b, True),
                                    [x, w, b], g, create_graph=True)
        total = sum((gi * torch.tensor(vi)).sum() for gi, vi in zip(grads, v))
        return torch.autograd.grad(total, [x, w, g])
    x, w, b = (mg.tensor(case[k], requires_grad=True, device=device) for k in 'xwb')
    g = mg.tensor(case['g'], requires_grad=True, device=device)
    grads = mg.grad([F.batch_norm(x, None, None, w, b, True)], [x, w, b], [g], create_graph=True)
    total = sum((gi * mg.tensor(vi, device=device)).sum() for gi, vi in zip(grads, v))
    return mg.grad([total], [x, w, g])


@pytest.mark.parametrize('shape', [(6, 3), (2, 1), (3, 4, 2, 3), (1, 2, 3, 3)])
def test_double_backward_matches_torch(shape, device, torch):
    """Training mode: the second-order terms through mean and invstd (DeZero drops d invstd/dx)."""
    case = make_case(shape, np.float64, seed=3)
    rng = np.random.default_rng(4)
    v = [rng.standard_normal(shape), rng.standard_normal(shape[1]), rng.standard_normal(shape[1])]
    for got, want in zip(double_backward('mg', case, v, device), double_backward('torch', case, v, torch=torch)):
        assert_close(got, want, np.float64)


def test_double_backward_through_gradient_penalty_matches_torch(device, torch):
    """A WGAN-GP-style penalty (||d out/d x|| - 1)², with bn in training mode, differentiated into x, w, b."""
    case = make_case((4, 3, 2, 2), np.float64, seed=5)
    k = np.random.default_rng(6).standard_normal((4, 3, 2, 2))
    x, w, b = (mg.tensor(case[key], requires_grad=True, device=device) for key in 'xwb')
    out = (F.batch_norm(x, None, None, w, b, True) ** 2 * mg.tensor(k, device=device)).sum()
    gx, = mg.grad([out], [x], create_graph=True)
    penalty = ((gx * gx).sum().sqrt() - 1) ** 2
    got = mg.grad([penalty], [x, w, b])
    xt, wt, bt = (torch.tensor(case[key], requires_grad=True) for key in 'xwb')
    out_t = (torch.nn.functional.batch_norm(xt, None, None, wt, bt, True) ** 2 * torch.tensor(k)).sum()
    gx_t, = torch.autograd.grad(out_t, xt, create_graph=True)
    want = torch.autograd.grad(((gx_t * gx_t).sum().sqrt() - 1) ** 2, [xt, wt, bt])
    for a, b_ in zip(got, want):
        assert np.abs(to_numpy(b_)).max() > 0.1                 # no gradient vanishes by symmetry here
        assert_close(a, b_, np.float64)


def test_third_derivative_gradcheck(device):
    """The double-backward formula is built from minigan ops, so the third order is exact too: the
    second derivative passes gradcheck. (torch 2.x gets this one wrong: its double backward treats
    the saved batch statistics as constants, off by ~0.2 here against central differences.)"""
    case = make_case((5, 2), np.float64, seed=6)
    rng = np.random.default_rng(7)
    g, v = (mg.tensor(rng.standard_normal((5, 2)), device=device) for _ in range(2))

    def second_derivative(x, w):
        with mg.enable_grad():                   # gradcheck evaluates under no_grad
            out = F.batch_norm(x, None, None, w, None, True)
            gx, = mg.grad([(out * g).sum()], [x], create_graph=True)
            return mg.grad([(gx * v).sum()], [x, w], create_graph=True)

    x, w = (mg.tensor(case[k], requires_grad=True, device=device) for k in 'xw')
    assert mg.gradcheck(second_derivative, [x, w])


@pytest.mark.parametrize('dtype', [np.float64, np.float32])
@pytest.mark.parametrize('shape', [(8, 3), (4, 3, 5, 3)])
def test_running_stats_after_several_calls(shape, dtype, device):
    """r <- (1 - m) r + m stat, unbiased variance, in place on the buffers' arrays; eval then uses them."""
    rm, rv = mg.zeros(shape[1], dtype=dtype, device=device), mg.ones(shape[1], dtype=dtype, device=device)
    rm_ref, rv_ref = np.zeros(shape[1]), np.ones(shape[1])
    arrays = rm.array, rv.array
    axes = (0,) + tuple(range(2, len(shape)))
    rng = np.random.default_rng(8)
    for step in range(5):
        x = (rng.uniform(0.5, 3) * rng.standard_normal(shape) + rng.uniform(-2, 2)).astype(dtype)
        F.batch_norm(mg.tensor(x, device=device), rm, rv, None, None, True, momentum=0.3)
        rm_ref = 0.7 * rm_ref + 0.3 * x.mean(axes, dtype=np.float64)
        rv_ref = 0.7 * rv_ref + 0.3 * x.var(axes, dtype=np.float64, ddof=1)
    assert rm.array is arrays[0] and rv.array is arrays[1]           # updated in place
    assert_close(rm, rm_ref, dtype)
    assert_close(rv, rv_ref, dtype)
    x = (2 * rng.standard_normal(shape)).astype(dtype)
    before = to_numpy(rm), to_numpy(rv)
    y = F.batch_norm(mg.tensor(x, device=device), rm, rv, None, None, False)
    per_channel = (1, -1) + (1,) * (len(shape) - 2)
    assert_close(y, (x - before[0].reshape(per_channel)) / np.sqrt(before[1].reshape(per_channel) + 1e-5), dtype)
    np.testing.assert_array_equal(to_numpy(rm), before[0])         # eval leaves the buffers alone
    np.testing.assert_array_equal(to_numpy(rv), before[1])


def test_eval_mode_uses_running_stats_formula():
    case = make_case((4, 3, 2, 2), np.float64, seed=9)
    x, w, b, rm, rv, y = mg_side(case, 'cpu', training=False)
    expected = (case['x'] - case['rm'][:, None, None]) / np.sqrt(case['rv'][:, None, None] + 1e-5) \
        * case['w'][:, None, None] + case['b'][:, None, None]
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12)


def test_training_output_is_normalised():
    """Per channel, the output has mean bias and (biased) standard deviation |weight| (up to eps)."""
    case = make_case((6, 3, 4, 5), np.float64, seed=10)
    y = mg_side(case, 'cpu', training=True)[-1].numpy()
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), case['b'], atol=1e-12)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), case['w'], rtol=1e-5)


def test_running_stats_may_be_absent_in_training():
    x = mg.randn(4, 3, dtype=np.float64, requires_grad=True)
    y = F.batch_norm(x, None, None, training=True)
    a = x.numpy()
    np.testing.assert_allclose(y.numpy(), (a - a.mean(0)) / np.sqrt(a.var(0) + 1e-5), rtol=1e-6, atol=1e-9)


def test_entrance_checks():
    x = mg.randn(4, 3, 2, 2)
    ok = mg.zeros(3), mg.ones(3)
    with pytest.raises(ValueError, match=r'3 channels.*\(3,\)'):
        F.batch_norm(x, mg.zeros(4), ok[1], training=True)
    with pytest.raises(ValueError, match='weight'):
        F.batch_norm(x, *ok, weight=mg.ones(2), training=True)
    with pytest.raises(ValueError, match='bias'):
        F.batch_norm(x, *ok, bias=mg.ones(5), training=False)
    with pytest.raises(ValueError, match=r'\(N, C\)'):
        F.batch_norm(mg.randn(3), *ok, training=True)
    with pytest.raises(ValueError, match='Expected more than 1 value per channel when training'):
        F.batch_norm(mg.randn(1, 3), *ok, training=True)
    with pytest.raises(ValueError, match='Expected more than 1 value per channel when training'):
        F.batch_norm(mg.randn(1, 3, 1, 1), *ok, training=True)
    F.batch_norm(mg.randn(1, 3), *ok, training=False)               # batch 1 is fine in eval mode
    with pytest.raises(ValueError, match='needs running_mean and running_var'):
        F.batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match='buffers'):
        F.batch_norm(x, mg.zeros(3, requires_grad=True), ok[1], training=True)
    with pytest.raises(TypeError, match='float64 but the input is float32'):
        F.batch_norm(x, mg.zeros(3, dtype=np.float64), ok[1], training=True)
    with pytest.raises(TypeError, match='floating-point'):
        F.batch_norm(mg.tensor(np.ones((2, 3), dtype=np.int64)), None, None, training=True)


def test_batch_norm_3d_input_matches_torch(torch):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 3, 5))
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    xm = mg.tensor(x, requires_grad=True)
    ym = F.batch_norm(xm, None, None, mg.tensor(w), mg.tensor(b), training=True)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.batch_norm(xt, None, None, torch.tensor(w), torch.tensor(b), training=True)
    u = rng.standard_normal(x.shape)
    (ym * mg.tensor(u)).sum().backward()
    (yt * torch.tensor(u)).sum().backward()
    np.testing.assert_allclose(ym.numpy(), yt.detach().numpy(), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-12)

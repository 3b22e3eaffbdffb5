"""conv2d and conv_transpose2d: the three im2col primitives and the public ops (forward, every gradient)
against direct loops, gradcheck/gradgradcheck, the same against PyTorch (second derivatives included),
and the entrance checks."""
import numpy as np
import pytest

import minigan as mg
import minigan.functional as F
from minigan.backend import to_device
from minigan.functional.im2col import (conv2d_forward, conv2d_backward_data, conv2d_backward_weight,
                                       im2col, col2im)
from conftest import to_numpy

TOL = {np.float64: dict(rtol=1e-6), np.float32: dict(rtol=1e-4)}

# (N, C_in, H, W, C_out, kernel (kh, kw), stride, padding): odd and non-square sizes, batch 1, one channel,
# kernels 1-5, strides 1-3, paddings 0-2, and sizes where H + 2p - k is not divisible by the stride
CASES = [
    (2, 3, 7, 6, 4, (3, 3), 1, 1),
    (1, 1, 5, 8, 2, (2, 3), 2, 0),
    (2, 2, 9, 7, 3, (4, 4), 2, 1),      # DCGAN's layer shape, odd sizes
    (1, 3, 8, 5, 1, (5, 5), 3, 2),      # 8 + 4 - 5 = 7 not divisible by 3
    (3, 2, 6, 6, 2, (1, 1), 2, 0),      # 1x1 kernel, strided
    (2, 1, 4, 9, 3, (3, 2), (1, 3), (2, 1)),
    (1, 2, 4, 4, 5, (4, 4), 1, 0),      # the critic's last layer: one output pixel
]
CASE_IDS = [f'{c[1]}x{c[2]}x{c[3]}-k{c[5][0]}{c[5][1]}-s{c[6]}-p{c[7]}' for c in CASES]


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def close(actual, expected, dtype):
    """rtol from TOL, with an absolute floor at rtol * the largest |expected| (sums of signed terms)."""
    actual, expected = to_numpy(actual), to_numpy(expected)
    rtol = TOL[dtype]['rtol']
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * max(1.0, np.abs(expected).max()))


# ---- direct loops: the definition of a strided, padded cross-correlation -----------------------------

def windows(x_shape, w_shape, stride, padding):
    """(oh, ow, i, j, h, w) for every output pixel and kernel tap that reads a real input pixel."""
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    _, _, H, W = x_shape
    _, _, kh, kw = w_shape
    oh_n, ow_n = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    for oh in range(oh_n):
        for ow in range(ow_n):
            for i in range(kh):
                for j in range(kw):
                    h, w = oh * sh + i - ph, ow * sw + j - pw
                    if 0 <= h < H and 0 <= w < W:
                        yield oh, ow, i, j, h, w


def out_size(x_shape, w_shape, stride, padding):
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    return (x_shape[2] + 2 * ph - w_shape[2]) // sh + 1, (x_shape[3] + 2 * pw - w_shape[3]) // sw + 1


def naive_forward(x, w, stride, padding):
    y = np.zeros((x.shape[0], w.shape[0]) + out_size(x.shape, w.shape, stride, padding))
    for oh, ow, i, j, h, v in windows(x.shape, w.shape, stride, padding):
        y[:, :, oh, ow] += x[:, :, h, v] @ w[:, :, i, j].T          # (N, C) @ (C, O)
    return y


def naive_backward_data(gy, w, x_shape, stride, padding):
    gx = np.zeros(x_shape)
    for oh, ow, i, j, h, v in windows(x_shape, w.shape, stride, padding):
        gx[:, :, h, v] += gy[:, :, oh, ow] @ w[:, :, i, j]          # (N, O) @ (O, C)
    return gx


def naive_backward_weight(x, gy, w_shape, stride, padding):
    gw = np.zeros(w_shape)
    for oh, ow, i, j, h, v in windows(x.shape, w_shape, stride, padding):
        gw[:, :, i, j] += gy[:, :, oh, ow].T @ x[:, :, h, v]        # (O, N) @ (N, C)
    return gw


def make_case(case, seed):
    n, c, h, w, o, (kh, kw), s, p = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    wt = rng.standard_normal((o, c, kh, kw))
    gy = rng.standard_normal((n, o) + out_size(x.shape, wt.shape, s, p))
    return x, wt, gy, s, p


@pytest.mark.parametrize('case', CASES, ids=CASE_IDS)
def test_primitives_match_direct_loops(case, device):
    x, w, gy, s, p = make_case(case, seed=1)
    xd, wd, gyd = (to_device(a, device) for a in (x, w, gy))
    tol = dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_device(conv2d_forward(xd, wd, s, p), 'cpu'), naive_forward(x, w, s, p), **tol)
    np.testing.assert_allclose(to_device(conv2d_backward_data(gyd, wd, x.shape, s, p), 'cpu'),
                               naive_backward_data(gy, w, x.shape, s, p), **tol)
    np.testing.assert_allclose(to_device(conv2d_backward_weight(xd, gyd, w.shape, s, p), 'cpu'),
                               naive_backward_weight(x, gy, w.shape, s, p), **tol)


@pytest.mark.parametrize('case', CASES[:4], ids=CASE_IDS[:4])
def test_col2im_is_the_adjoint_of_im2col(case):
    """<im2col(x), c> = <x, col2im(c)> for random x and c: the scatter-add undoes exactly what the slices read."""
    x, w, _, s, p = make_case(case, seed=2)
    col = im2col(x, w.shape[2], w.shape[3], s, p)
    c = np.random.default_rng(3).standard_normal(col.shape)
    np.testing.assert_allclose((col * c).sum(), (x * col2im(c, x.shape, s, p)).sum(), rtol=1e-12)


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_primitives_keep_float32(dtype):
    x, w, gy, s, p = (a.astype(dtype) if isinstance(a, np.ndarray) else a for a in make_case(CASES[2], seed=4))
    assert conv2d_forward(x, w, s, p).dtype == dtype
    assert conv2d_backward_data(gy, w, x.shape, s, p).dtype == dtype
    assert conv2d_backward_weight(x, gy, w.shape, s, p).dtype == dtype


# ---- the public ops against direct loops and PyTorch ---------------------------------------------------

def run_minigan(op, x, w, b, gy, device, **kw):
    """Forward and the gradients for x, w and b, for the cotangent gy."""
    ts = [mg.tensor(a, requires_grad=True, device=device) for a in (x, w, b)]
    y = getattr(F, op)(*ts, **kw)
    return (y,) + tuple(mg.grad([y], ts, [mg.tensor(gy, device=device)]))


def direct_loops(op, x, w, b, gy, stride, padding):
    """The same from the loops above: conv_transpose2d is the adjoint of conv2d, so they swap roles."""
    x, w, b, gy = (a.astype(np.float64) for a in (x, w, b, gy))
    if op == 'conv2d':
        y = naive_forward(x, w, stride, padding)
        gx, gw = naive_backward_data(gy, w, x.shape, stride, padding), naive_backward_weight(x, gy, w.shape,
                                                                                           stride, padding)
    else:
        y = naive_backward_data(x, w, gy.shape, stride, padding)
        gx, gw = naive_forward(gy, w, stride, padding), naive_backward_weight(gy, x, w.shape, stride, padding)
    return y + b[:, None, None], gx, gw, gy.sum((0, 2, 3))


def run_both(torch, op, x, w, b, gy, device, **kw):
    """Forward and every gradient in minigan and in torch, for the same inputs and cotangent."""
    tt = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    ty = getattr(torch.nn.functional, op)(*tt, **kw)
    gt = torch.autograd.grad(ty, tt, torch.tensor(gy))
    return run_minigan(op, x, w, b, gy, device, **kw), (ty,) + tuple(gt)


@pytest.mark.parametrize('dtype', [np.float64, np.float32])
@pytest.mark.parametrize('case', CASES, ids=CASE_IDS)
def test_conv2d_matches_direct_loops(case, dtype, device):
    x, w, gy, s, p = (a.astype(dtype) if isinstance(a, np.ndarray) else a for a in make_case(case, seed=5))
    b = np.random.default_rng(6).standard_normal(w.shape[0]).astype(dtype)
    ours = run_minigan('conv2d', x, w, b, gy, device, stride=s, padding=p)
    for a, e in zip(ours, direct_loops('conv2d', x, w, b, gy, s, p)):
        assert a.dtype == dtype
        close(a, e, dtype)


@pytest.mark.parametrize('dtype', [np.float64, np.float32])
@pytest.mark.parametrize('case', CASES, ids=CASE_IDS)
def test_conv2d_matches_torch(case, dtype, device, torch):
    x, w, gy, s, p = (a.astype(dtype) if isinstance(a, np.ndarray) else a for a in make_case(case, seed=5))
    b = np.random.default_rng(6).standard_normal(w.shape[0]).astype(dtype)
    ours, theirs = run_both(torch, 'conv2d', x, w, b, gy, device, stride=s, padding=p)
    for a, e in zip(ours, theirs):
        assert a.dtype == dtype
        close(a, e, dtype)


def transpose_case(case, seed, output_padding=0):
    """A conv_transpose2d problem with the same geometry: input has conv2d's output size."""
    n, c, h, w, o, (kh, kw), s, p = case
    rng = np.random.default_rng(seed)
    oh, ow = out_size((n, c, h, w), (o, c, kh, kw), s, p)
    x = rng.standard_normal((n, o, oh, ow))
    wt = rng.standard_normal((o, c, kh, kw))                      # (C_in, C_out, kh, kw)
    b = rng.standard_normal(c)
    (sh, sw), (ph, pw), (qh, qw) = pair(s), pair(p), pair(output_padding)
    out = ((oh - 1) * sh - 2 * ph + kh + qh, (ow - 1) * sw - 2 * pw + kw + qw)
    gy = rng.standard_normal((n, c) + out)
    return x, wt, b, gy, s, p


@pytest.mark.parametrize('dtype', [np.float64, np.float32])
@pytest.mark.parametrize('case', CASES, ids=CASE_IDS)
def test_conv_transpose2d_matches_direct_loops(case, dtype, device):
    x, w, b, gy, s, p = (a.astype(dtype) if isinstance(a, np.ndarray) else a for a in transpose_case(case, 7))
    ours = run_minigan('conv_transpose2d', x, w, b, gy, device, stride=s, padding=p)
    for a, e in zip(ours, direct_loops('conv_transpose2d', x, w, b, gy, s, p)):
        assert a.dtype == dtype
        close(a, e, dtype)


@pytest.mark.parametrize('dtype', [np.float64, np.float32])
@pytest.mark.parametrize('case', CASES, ids=CASE_IDS)
def test_conv_transpose2d_matches_torch(case, dtype, device, torch):
    x, w, b, gy, s, p = (a.astype(dtype) if isinstance(a, np.ndarray) else a for a in transpose_case(case, 7))
    ours, theirs = run_both(torch, 'conv_transpose2d', x, w, b, gy, device, stride=s, padding=p)
    for a, e in zip(ours, theirs):
        assert a.dtype == dtype
        close(a, e, dtype)


@pytest.mark.parametrize('stride, padding, output_padding', [(2, 1, 1), (3, 0, 2), ((2, 3), (1, 0), (1, 2))])
def test_conv_transpose2d_output_padding(stride, padding, output_padding, device):
    case = (2, 2, 7, 8, 3, (3, 3), stride, padding)
    x, w, b, gy, s, p = transpose_case(case, 8, output_padding)
    ours = run_minigan('conv_transpose2d', x, w, b, gy, device, stride=s, padding=p, output_padding=output_padding)
    assert ours[0].shape == gy.shape            # (H_in - 1) s - 2 p + k + output_padding
    for a, e in zip(ours, direct_loops('conv_transpose2d', x, w, b, gy, s, p)):
        close(a, e, np.float64)


def test_dcgan_layer_shapes_float32(device, torch):
    """The DCGAN-32 discriminator's second layer and generator's second layer at batch 4, in float32."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((4, 64, 16, 16), dtype=np.float32)
    w = (0.02 * rng.standard_normal((128, 64, 4, 4))).astype(np.float32)
    gy = rng.standard_normal((4, 128, 8, 8), dtype=np.float32)
    b = np.zeros(128, np.float32) + 0.1
    for a, e in zip(*run_both(torch, 'conv2d', x, w, b, gy, device, stride=2, padding=1)):
        close(a, e, np.float32)
    z = rng.standard_normal((4, 100, 1, 1), dtype=np.float32)
    wt = (0.02 * rng.standard_normal((100, 256, 4, 4))).astype(np.float32)
    gz = rng.standard_normal((4, 256, 4, 4), dtype=np.float32)
    for a, e in zip(*run_both(torch, 'conv_transpose2d', z, wt, np.ones(256, np.float32), gz, device)):
        close(a, e, np.float32)


def test_non_contiguous_inputs(device):
    """A transposed view of x and a permuted weight give the same results as contiguous copies."""
    rng = np.random.default_rng(10)
    xs = rng.standard_normal((2, 3, 6, 7))                        # (N, C, W, H) storage, viewed as (N, C, H, W)
    ws = rng.standard_normal((3, 4, 3, 3))                        # (C_in, C_out, ...) storage of a conv weight
    gy = rng.standard_normal((2, 4, 4, 3))
    xm = mg.tensor(xs, requires_grad=True, device=device)
    wm = mg.tensor(ws, requires_grad=True, device=device)
    y = F.conv2d(xm.transpose(2, 3), wm.permute(1, 0, 2, 3), stride=2, padding=1)
    gx, gw = mg.grad([y], [xm, wm], [mg.tensor(gy, device=device)])
    xc = mg.tensor(np.ascontiguousarray(xs.transpose(0, 1, 3, 2)), requires_grad=True, device=device)
    wc = mg.tensor(np.ascontiguousarray(ws.transpose(1, 0, 2, 3)), requires_grad=True, device=device)
    yc = F.conv2d(xc, wc, stride=2, padding=1)
    gxc, gwc = mg.grad([yc], [xc, wc], [mg.tensor(gy, device=device)])
    for a, e in ((y, yc), (gx, gxc.transpose(2, 3)), (gw, gwc.permute(1, 0, 2, 3))):
        close(a, e, np.float64)
    yt = F.conv_transpose2d(xm.transpose(2, 3)[:, :, ::2], wm, stride=2, padding=1)
    ytc = F.conv_transpose2d(mg.tensor(np.ascontiguousarray(xs.transpose(0, 1, 3, 2)[:, :, ::2]), device=device),
                             mg.tensor(ws, device=device), stride=2, padding=1)
    close(yt, ytc, np.float64)


def test_bias_keyword_and_tuple_arguments(device):
    rng = np.random.default_rng(11)
    x, w, b = rng.standard_normal((1, 2, 5, 6)), rng.standard_normal((3, 2, 3, 2)), rng.standard_normal(3)
    X, W, B = (mg.tensor(a, device=device) for a in (x, w, b))
    expected = naive_forward(x, w, (2, 1), (1, 0)) + b[:, None, None]
    close(F.conv2d(X, W, bias=B, stride=(2, 1), padding=(1, 0)), expected, np.float64)
    close(F.conv2d(X, W, B, (2, 1), (1, 0)), expected, np.float64)
    wt = rng.standard_normal((2, 3, 3, 3))
    expected = naive_backward_data(x, wt, (1, 3, 10, 12), 2, 1) + b[:, None, None]   # 2 (5 - 1) - 2 + 3 + 1
    close(F.conv_transpose2d(X, mg.tensor(wt, device=device), bias=B, stride=2, padding=1, output_padding=1),
          expected, np.float64)


# ---- numerical gradients and second derivatives --------------------------------------------------------

GRADCHECK_CASES = [  # small: a few hundred elements at most
    ((1, 2, 5, 4), (3, 2, 3, 3), 1, 1),
    ((2, 1, 6, 5), (2, 1, 4, 4), 2, 1),
    ((1, 2, 7, 5), (2, 2, 5, 2), 3, 2),
]


@pytest.mark.parametrize('xs, ws, s, p', GRADCHECK_CASES)
def test_conv2d_gradcheck_and_gradgradcheck(xs, ws, s, p, device):
    rng = np.random.default_rng(12)
    x, w, b = (mg.tensor(rng.standard_normal(sh), requires_grad=True, device=device)
               for sh in (xs, ws, ws[:1]))
    fn = lambda x, w, b: F.conv2d(x, w, b, stride=s, padding=p)  # noqa: E731
    assert mg.gradcheck(fn, [x, w, b])
    assert mg.gradgradcheck(fn, [x, w, b])


@pytest.mark.parametrize('xs, ws, s, p', GRADCHECK_CASES)
def test_conv_transpose2d_gradcheck_and_gradgradcheck(xs, ws, s, p, device):
    rng = np.random.default_rng(13)
    n, c, h, wd = xs
    oh, ow = out_size(xs, ws, s, p)
    x = mg.tensor(rng.standard_normal((n, ws[0], oh, ow)), requires_grad=True, device=device)
    w = mg.tensor(rng.standard_normal(ws), requires_grad=True, device=device)
    b = mg.tensor(rng.standard_normal(ws[1]), requires_grad=True, device=device)
    op = 1 if s > 1 else 0
    fn = lambda x, w, b: F.conv_transpose2d(x, w, b, stride=s, padding=p, output_padding=op)  # noqa: E731
    assert mg.gradcheck(fn, [x, w, b])
    assert mg.gradgradcheck(fn, [x, w, b])


def gradient_penalty(lib, x, w1, w2, wt):
    """A small critic c(x) = conv(conv_t(x)^2, w1)^2 conv w2 and its WGAN-GP penalty mean((|dc/dx| - 1)^2)."""
    mod = F if lib is mg else lib.nn.functional
    h = mod.conv_transpose2d(x, wt, stride=2, padding=1)
    h = mod.conv2d(h * h, w1, stride=2, padding=1)
    out = mod.conv2d(h * h, w2).sum()
    if lib is mg:
        g, = mg.grad([out], [x], create_graph=True)
    else:
        g, = lib.autograd.grad(out, x, create_graph=True)
    norm = ((g * g).reshape(x.shape[0], -1).sum(1) + 1e-12) ** 0.5
    return ((norm - 1) ** 2).mean()


def test_double_backward_matches_torch(device, torch):
    """Second derivatives as WGAN-GP takes them: the gradient of a gradient-norm penalty w.r.t. every input."""
    rng = np.random.default_rng(14)
    arrays = [rng.standard_normal((2, 3, 4, 5)), 0.3 * rng.standard_normal((4, 2, 3, 3)),
              0.3 * rng.standard_normal((1, 4, 2, 3)), 0.3 * rng.standard_normal((3, 2, 4, 4))]
    ours = [mg.tensor(a, requires_grad=True, device=device) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    pen = gradient_penalty(mg, *ours)
    tpen = gradient_penalty(torch, *theirs)
    close(pen, tpen, np.float64)
    for a, e in zip(mg.grad([pen], ours), torch.autograd.grad(tpen, theirs)):
        close(a, e, np.float64)


def test_mixed_second_derivative_matches_torch(device, torch):
    """d/dw |d<u, conv(x, w)>/dx|^2: the weight cotangent flows through conv_transpose and Conv2dGradWeight."""
    rng = np.random.default_rng(15)
    x, w, u = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal((2, 4, 3, 2))
    xm, wm = (mg.tensor(a, requires_grad=True, device=device) for a in (x, w))
    gx, gw = mg.grad([F.conv2d(xm, wm, stride=2, padding=0)], [xm, wm], [mg.tensor(u, device=device)],
                     create_graph=True)
    d = mg.grad([(gx * gx).sum() + (gw * gw * gw).sum()], [xm, wm])
    xt, wt = (torch.tensor(a, requires_grad=True) for a in (x, w))
    tgx, tgw = torch.autograd.grad(torch.nn.functional.conv2d(xt, wt, stride=2), (xt, wt), torch.tensor(u),
                                   create_graph=True)
    td = torch.autograd.grad((tgx * tgx).sum() + (tgw ** 3).sum(), (xt, wt))
    for a, e in zip(d, td):
        close(a, e, np.float64)


# ---- entrance checks ----------------------------------------------------------------------------------

def test_bad_inputs_get_clear_errors():
    x = mg.randn(2, 3, 8, 8)
    w = mg.randn(4, 3, 3, 3)
    with pytest.raises(ValueError, match='4-D input'):
        F.conv2d(mg.randn(3, 8), w)
    with pytest.raises(ValueError, match='unsqueeze'):
        F.conv2d(mg.randn(3, 8, 8), w)
    with pytest.raises(ValueError, match='4-D weight'):
        F.conv2d(x, mg.randn(4, 3, 3))
    with pytest.raises(ValueError, match='3 channels but the weight'):
        F.conv2d(x, mg.randn(4, 5, 3, 3))
    with pytest.raises(ValueError, match='expects 2'):
        F.conv_transpose2d(x, mg.randn(2, 3, 3, 3))
    with pytest.raises(TypeError, match='float32 but weight is float64'):
        F.conv2d(x, w.double())
    with pytest.raises(ValueError, match='smaller than the 5x5 kernel'):
        F.conv2d(mg.randn(1, 3, 4, 4), mg.randn(2, 3, 5, 5))
    with pytest.raises(ValueError, match='bias must have shape'):
        F.conv2d(x, w, mg.randn(3))
    with pytest.raises(ValueError, match='stride must be >= 1'):
        F.conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match='padding must be >= 0'):
        F.conv2d(x, w, padding=-1)
    with pytest.raises(ValueError, match='output_padding'):
        F.conv_transpose2d(x, mg.randn(3, 2, 3, 3), stride=2, output_padding=2)
    with pytest.raises(TypeError, match='minigan Tensor'):
        F.conv2d(np.zeros((2, 3, 8, 8), np.float32), w)
    with pytest.raises(NotImplementedError, match='dilation'):
        F.conv2d(x, w, dilation=2)

"""The super-resolution and conditioning ops: pixel_shuffle, interpolate (nearest, bilinear),
prelu and embedding. Each is checked against central differences in float64 with random
cotangents (gradcheck, gradgradcheck) and, where PyTorch is installed, against torch: values,
gradients and, for pixel_shuffle, interpolate and prelu, double backward."""
import numpy as np
import pytest

import minigan as mg
import minigan.nn as nn
import minigan.nn.functional as F
from conftest import to_numpy


@pytest.fixture
def torch():
    return pytest.importorskip('torch', reason='PyTorch cross-checks need torch (pip install ".[test]")')


TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-6)}

# (input shape, interpolate keyword arguments): up, down, odd factors, one pixel, non-square
RESIZES = [
    ((2, 3, 4, 5), dict(scale_factor=2, mode='nearest')),
    ((1, 2, 5, 3), dict(size=(7, 11), mode='nearest')),
    ((2, 1, 6, 6), dict(scale_factor=0.5, mode='nearest')),
    ((1, 2, 3, 5), dict(scale_factor=1.7, mode='nearest')),
    ((2, 3, 4, 5), dict(scale_factor=2, mode='bilinear', align_corners=False)),
    ((1, 2, 5, 3), dict(size=(7, 11), mode='bilinear', align_corners=False)),
    ((1, 2, 5, 3), dict(size=(7, 11), mode='bilinear', align_corners=True)),
    ((2, 1, 7, 6), dict(scale_factor=0.5, mode='bilinear')),
    ((1, 1, 1, 1), dict(size=3, mode='bilinear', align_corners=True)),
    ((1, 2, 4, 4), dict(size=(1, 1), mode='bilinear', align_corners=True)),
    ((1, 2, 3, 4), dict(scale_factor=(3, 1.5), mode='bilinear', align_corners=False)),
]
SHUFFLES = [((2, 8, 3, 5), 2), ((1, 9, 2, 2), 3), ((1, 4, 1, 1), 2), ((3, 5, 4, 2), 1)]
PRELUS = [((2, 3, 4, 5), 1), ((2, 3, 4, 5), 3), ((5, 4), 4), ((3, 2, 7), 1)]


def away_from_zero(rng, shape):
    """prelu has a kink at 0: keep |x| in [0.1, 2] so finite differences never cross it."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.1, 2.0, size=shape)


# ---- central differences in float64 (no PyTorch needed) -------------------------------------

@pytest.mark.parametrize('shape,kw', RESIZES)
def test_interpolate_gradients_match_central_differences(shape, kw):
    x = mg.tensor(np.random.default_rng(1).standard_normal(shape), requires_grad=True)
    mg.gradcheck(lambda t: F.interpolate(t, **kw), [x])
    mg.gradgradcheck(lambda t: F.interpolate(t, **kw) ** 2, [x])


@pytest.mark.parametrize('shape,r', SHUFFLES)
def test_pixel_shuffle_gradients_match_central_differences(shape, r):
    x = mg.tensor(np.random.default_rng(2).standard_normal(shape), requires_grad=True)
    mg.gradcheck(lambda t: F.pixel_shuffle(t, r), [x])
    mg.gradgradcheck(lambda t: F.pixel_shuffle(t, r) ** 2, [x])
    y = F.pixel_unshuffle(F.pixel_shuffle(x, r), r)
    np.testing.assert_array_equal(y.numpy(), x.numpy())            # unshuffle undoes shuffle exactly


@pytest.mark.parametrize('shape,c', PRELUS)
def test_prelu_gradients_match_central_differences(shape, c):
    rng = np.random.default_rng(3)
    x = mg.tensor(away_from_zero(rng, shape), requires_grad=True)
    w = mg.tensor(rng.uniform(0.05, 0.5, c), requires_grad=True)
    mg.gradcheck(F.prelu, [x, w])
    mg.gradgradcheck(lambda a, b: F.prelu(a, b) * a, [x, w])        # mixed second derivatives


def test_embedding_gradient_sums_repeated_indices():
    rng = np.random.default_rng(4)
    w = mg.tensor(rng.standard_normal((6, 3)), requires_grad=True)
    idx = mg.tensor(np.array([[1, 4, 1], [0, 1, 5]]))
    mg.gradcheck(lambda t: F.embedding(idx, t), [w])
    mg.gradgradcheck(lambda t: F.embedding(idx, t) ** 2, [w])
    g = rng.standard_normal((2, 3, 3))
    gw, = mg.grad([F.embedding(idx, w)], [w], [mg.tensor(g)])
    expected = np.zeros((6, 3))
    np.add.at(expected, idx.numpy().ravel(), g.reshape(-1, 3))     # row 1 is used three times
    np.testing.assert_allclose(gw.numpy(), expected, rtol=1e-12)


def test_embedding_padding_row_gets_no_gradient_and_starts_at_zero():
    mg.manual_seed(0)
    emb = nn.Embedding(5, 4, padding_idx=2).double()
    assert np.all(emb.weight.numpy()[2] == 0)
    y = emb(mg.tensor(np.array([2, 3, 2])))
    (y * y).sum().backward()
    assert np.all(emb.weight.grad.numpy()[2] == 0) and np.any(emb.weight.grad.numpy()[3] != 0)


def test_interpolate_nearest_matches_hand_worked_example():
    x = mg.tensor(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    np.testing.assert_array_equal(F.interpolate(x, scale_factor=2).numpy()[0, 0],
                                  [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])
    # align_corners=True keeps the corners and puts the midpoints halfway
    y = F.interpolate(x, size=3, mode='bilinear', align_corners=True).numpy()[0, 0]
    np.testing.assert_allclose(y, [[1, 1.5, 2], [2, 2.5, 3], [3, 3.5, 4]])


# ---- against PyTorch ------------------------------------------------------------------------

def _compare_with_torch(torch, mg_fn, torch_fn, arrays, dtype, second_order=True, seed=5):
    """Values, gradients (random cotangent) and the double backward of <grad, v> against torch."""
    rng = np.random.default_rng(seed)
    tol = TOL[dtype]
    xs = [mg.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    ts = [torch.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    y, yt = mg_fn(*xs), torch_fn(*ts)
    np.testing.assert_allclose(y.numpy(), to_numpy(yt), **tol)
    g = rng.standard_normal(y.shape).astype(dtype)
    gs = mg.grad([y], xs, [mg.tensor(g)], create_graph=True)
    gts = torch.autograd.grad(yt, ts, torch.tensor(g), create_graph=True)
    for a, b in zip(gs, gts):
        np.testing.assert_allclose(a.numpy(), to_numpy(b), **tol)
    if second_order:
        vs = [rng.standard_normal(a.shape).astype(dtype) for a in arrays]
        s = sum((gi * mg.tensor(v)).sum() for gi, v in zip(gs, vs))
        st = sum((gi * torch.tensor(v)).sum() for gi, v in zip(gts, vs))
        ggs = mg.grad([s], xs, allow_unused=True)
        ggts = torch.autograd.grad(st, ts, allow_unused=True)
        for a, b in zip(ggs, ggts):
            if b is None:
                assert a is None or not np.any(a.numpy())
            else:
                np.testing.assert_allclose(to_numpy(a) if a is not None else 0 * to_numpy(b), to_numpy(b), **tol)


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('shape,kw', RESIZES)
def test_interpolate_matches_torch(torch, shape, kw, dtype):
    x = np.random.default_rng(6).standard_normal(shape)
    _compare_with_torch(torch, lambda t: F.interpolate(t, **kw) ** 2,
                        lambda t: torch.nn.functional.interpolate(t, **kw) ** 2, [x], dtype)


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('shape,r', SHUFFLES)
def test_pixel_shuffle_matches_torch(torch, shape, r, dtype):
    x = np.random.default_rng(7).standard_normal(shape)
    _compare_with_torch(torch, lambda t: F.pixel_shuffle(t, r) ** 2,
                        lambda t: torch.nn.functional.pixel_shuffle(t, r) ** 2, [x], dtype)
    y = np.random.default_rng(8).standard_normal(F.pixel_shuffle(mg.tensor(x), r).shape)
    _compare_with_torch(torch, lambda t: F.pixel_unshuffle(t, r),
                        lambda t: torch.nn.functional.pixel_unshuffle(t, r), [y], dtype, second_order=False)


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('shape,c', PRELUS)
def test_prelu_matches_torch(torch, shape, c, dtype):
    rng = np.random.default_rng(9)
    x, w = away_from_zero(rng, shape), rng.uniform(0.05, 0.5, c)
    _compare_with_torch(torch, lambda a, b: F.prelu(a, b) * a,
                        lambda a, b: torch.nn.functional.prelu(a, b) * a, [x, w], dtype)


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_embedding_matches_torch(torch, dtype):
    rng = np.random.default_rng(10)
    idx = rng.integers(0, 7, size=(3, 4))
    w = rng.standard_normal((7, 5))
    _compare_with_torch(torch, lambda t: F.embedding(mg.tensor(idx), t) ** 2,
                        lambda t: torch.nn.functional.embedding(torch.tensor(idx), t) ** 2, [w], dtype)


def test_modules_match_torch_layers_and_state_dict_names(torch):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
    pairs = [(nn.PixelShuffle(2), torch.nn.PixelShuffle(2)),
             (nn.Upsample(scale_factor=2), torch.nn.Upsample(scale_factor=2)),
             (nn.Upsample(size=(5, 7), mode='bilinear', align_corners=False),
              torch.nn.Upsample(size=(5, 7), mode='bilinear', align_corners=False)),
             (nn.PReLU(), torch.nn.PReLU()), (nn.PReLU(4, init=0.1), torch.nn.PReLU(4, init=0.1))]
    for m, t in pairs:
        assert list(m.state_dict()) == list(t.state_dict())
        for k, v in t.state_dict().items():
            np.testing.assert_array_equal(m.state_dict()[k], v.numpy())   # PReLU's init value
        np.testing.assert_allclose(m(mg.tensor(x)).numpy(), t(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)
    emb, temb = nn.Embedding(10, 3), torch.nn.Embedding(10, 3)
    assert list(emb.state_dict()) == list(temb.state_dict()) == ['weight']
    assert emb.weight.shape == tuple(temb.weight.shape)


# ---- bad input: one clear error ---------------------------------------------------------------

@pytest.mark.parametrize('call,match', [
    (lambda x: F.interpolate(x, scale_factor=2, mode='bicubic'), 'not supported'),
    (lambda x: F.interpolate(x, scale_factor=2, align_corners=True), 'align_corners'),
    (lambda x: F.interpolate(x), 'exactly one'),
    (lambda x: F.interpolate(x, size=4, scale_factor=2), 'exactly one'),
    (lambda x: F.interpolate(x[0], size=4), '4-D'),
    (lambda x: F.pixel_shuffle(x, 2), 'divide'),
    (lambda x: F.pixel_shuffle(x, 0), 'positive integer'),
    (lambda x: F.prelu(x, mg.ones(5)), 'channels'),
])
def test_bad_arguments_are_refused_with_a_clear_message(call, match):
    x = mg.randn(1, 3, 4, 4)
    with pytest.raises((ValueError, TypeError), match=match):
        call(x)


def test_embedding_refuses_out_of_range_and_float_indices():
    w = mg.randn(4, 2)
    with pytest.raises(IndexError, match=r'\[0, 3\]'):
        F.embedding(mg.tensor(np.array([0, 4])), w)
    with pytest.raises(TypeError, match='integers'):
        F.embedding(mg.tensor(np.array([0.0, 1.0])), w)

"""Loss modules and the functional losses' PyTorch arguments (reduction, weight, ignore_index,
pos_weight, label_smoothing), and Dropout2d: values and float64 gradients, against PyTorch
and against central differences."""
import numpy as np
import pytest

import minigan as mg
import minigan.nn as nn
import minigan.nn.functional as F

REDUCTIONS = ['mean', 'sum', 'none']


@pytest.fixture
def torch():
    return pytest.importorskip('torch')


def _inputs(name, rng):
    """(float input, target, kwargs) for loss `name`; targets shaped as PyTorch wants them."""
    if name in ('BCELoss',):
        return rng.uniform(0.02, 0.98, (4, 3)), rng.uniform(0, 1, (4, 3)), {}
    if name in ('BCEWithLogitsLoss', 'MSELoss', 'L1Loss'):
        return rng.standard_normal((4, 3)) * 2, rng.uniform(0, 1, (4, 3)), {}
    if name == 'NLLLoss':
        logits = rng.standard_normal((6, 5))
        return logits - np.log(np.exp(logits).sum(1, keepdims=True)), rng.integers(0, 5, 6), {}
    return rng.standard_normal((6, 5)) * 3, rng.integers(0, 5, 6), {}


def _check(torch, name, reduction, kwargs, mg_kwargs=None, seed=0):
    rng = np.random.default_rng(seed)
    x, target, _ = _inputs(name, rng)
    xm, xt = mg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    tm, tt = mg.tensor(target), torch.tensor(target)
    loss = getattr(nn, name)(reduction=reduction, **(mg_kwargs or kwargs))
    loss_t = getattr(torch.nn, name)(reduction=reduction, **{k: torch.tensor(v) if isinstance(v, np.ndarray) else v
                                                            for k, v in kwargs.items()})
    y, yt = loss(xm, tm), loss_t(xt, tt)
    assert y.shape == tuple(yt.shape) and y.dtype == mg.float64
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    u = rng.standard_normal(y.shape)
    g, = mg.grad([y], [xm], [mg.tensor(u)])
    gt, = torch.autograd.grad(yt, xt, torch.tensor(u))
    np.testing.assert_allclose(g.numpy(), gt.numpy(), rtol=1e-9, atol=1e-12)
    mg.gradcheck(lambda a: loss(a, tm), [mg.tensor(x, requires_grad=True)])


@pytest.mark.parametrize('reduction', REDUCTIONS)
@pytest.mark.parametrize('name', ['BCELoss', 'BCEWithLogitsLoss', 'CrossEntropyLoss', 'MSELoss', 'NLLLoss',
                                  'L1Loss'])
def test_loss_modules_match_torch_in_float64(torch, name, reduction):
    _check(torch, name, reduction, {})


@pytest.mark.parametrize('reduction', REDUCTIONS)
@pytest.mark.parametrize('name', ['CrossEntropyLoss', 'NLLLoss'])
def test_class_weights_and_ignore_index(torch, name, reduction):
    w = np.array([0.5, 2.0, 1.0, 0.1, 3.0])
    _check(torch, name, reduction, dict(weight=w), dict(weight=mg.tensor(w)))
    _check(torch, name, reduction, dict(ignore_index=2), seed=3)
    _check(torch, name, reduction, dict(weight=w, ignore_index=1), dict(weight=mg.tensor(w), ignore_index=1), seed=4)


@pytest.mark.parametrize('reduction', REDUCTIONS)
def test_label_smoothing(torch, reduction):
    _check(torch, 'CrossEntropyLoss', reduction, dict(label_smoothing=0.1))
    _check(torch, 'CrossEntropyLoss', reduction, dict(label_smoothing=0.2, ignore_index=0), seed=2)


@pytest.mark.parametrize('reduction', REDUCTIONS)
def test_binary_weights(torch, reduction):
    w = np.linspace(0.5, 1.5, 3)
    _check(torch, 'BCELoss', reduction, dict(weight=w), dict(weight=mg.tensor(w)))
    _check(torch, 'BCEWithLogitsLoss', reduction, dict(weight=w), dict(weight=mg.tensor(w)))
    _check(torch, 'BCEWithLogitsLoss', reduction, dict(pos_weight=w * 2), dict(pos_weight=mg.tensor(w * 2)))


def test_functional_forms_and_legacy_flags(torch):
    rng = np.random.default_rng(1)
    p, t = rng.uniform(0.1, 0.9, (5,)), rng.uniform(0, 1, (5,))
    TF = torch.nn.functional
    for reduction in REDUCTIONS:
        np.testing.assert_allclose(F.binary_cross_entropy(mg.tensor(p), mg.tensor(t), reduction=reduction).numpy(),
                                   TF.binary_cross_entropy(torch.tensor(p), torch.tensor(t), reduction=reduction))
        np.testing.assert_allclose(F.l1_loss(mg.tensor(p), mg.tensor(t), reduction=reduction).numpy(),
                                   TF.l1_loss(torch.tensor(p), torch.tensor(t), reduction=reduction))
    logp, labels = np.log(np.full((3, 4), 0.25)) + rng.standard_normal((3, 4)), np.array([0, 3, 1])
    got = F.nll_loss(mg.tensor(logp), mg.tensor(labels), reduction='sum').item()
    assert got == pytest.approx(-logp[[0, 1, 2], labels].sum())
    assert F.mse_loss(mg.tensor(p), mg.tensor(t), size_average=False).item() == pytest.approx(((p - t) ** 2).sum())
    assert F.mse_loss(mg.tensor(p), mg.tensor(t), reduce=False).shape == (5,)
    assert nn.MSELoss(size_average=False).reduction == 'sum'
    with pytest.raises(ValueError, match='reduction'):
        nn.L1Loss(reduction='avg')(mg.tensor(p), mg.tensor(t))


def test_loss_weight_is_a_buffer():
    loss = nn.CrossEntropyLoss(weight=mg.ones(3))
    assert 'weight' in dict(loss.named_buffers()) and len(list(loss.parameters())) == 0


# ---- Dropout2d ---------------------------------------------------------------------------------

def test_dropout2d_zeroes_whole_channels_and_scales_the_rest():
    mg.manual_seed(0)
    x = mg.tensor(np.random.default_rng(0).uniform(1, 2, (8, 16, 3, 3)), requires_grad=True)
    drop = nn.Dropout2d(p=0.25)
    y = drop(x)
    ratio = (y.numpy() / x.numpy()).reshape(8, 16, 9)
    per_channel = np.round(ratio[:, :, 0], 9)
    # one value per (sample, channel)
    np.testing.assert_allclose(ratio, np.broadcast_to(per_channel[:, :, None], ratio.shape), rtol=1e-8)
    assert set(np.unique(per_channel)) <= {0.0, round(1 / 0.75, 9)}
    assert 0.1 < (per_channel == 0).mean() < 0.4
    g, = mg.grad([y.sum()], [x])
    np.testing.assert_allclose(g.numpy().reshape(8, 16, 9), ratio, rtol=1e-12)   # the gradient is the mask
    assert drop.eval()(x) is x
    mg.manual_seed(0)
    np.testing.assert_array_equal(nn.Dropout2d(p=0.25)(x).numpy(), y.numpy())
    assert np.all(F.dropout2d(x, 1.0, True).numpy() == 0)

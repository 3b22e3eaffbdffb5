"""In-place Tensor methods: values against PyTorch, PyTorch's refusal rules, and the version
counter that turns a modified saved tensor into an error instead of a wrong gradient."""
import numpy as np
import pytest

import minigan as mg


@pytest.fixture
def torch():
    return pytest.importorskip('torch')


def _pair(torch, shape=(3, 4), seed=0):
    a = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return mg.tensor(a), torch.tensor(a)


@pytest.mark.parametrize('call', [
    lambda t, T: t.fill_(2.5),
    lambda t, T: t.zero_(),
    lambda t, T: t.clamp_(-0.5, 0.3),
    lambda t, T: t.clamp_(min=0.1),
    lambda t, T: t.clamp_(max=-0.1),
    lambda t, T: t.mul_(-3.0),
    lambda t, T: t.add_(1.5),
    lambda t, T: t.add_(T(np.arange(4, dtype=np.float32)), alpha=-2),
    lambda t, T: t.sub_(0.25),
    lambda t, T: t.sub_(T(np.ones((3, 1), np.float32)), alpha=0.5),
    lambda t, T: t.div_(4.0),
    lambda t, T: t.mul_(T(np.linspace(-1, 1, 4).astype(np.float32))),
    lambda t, T: t.copy_(T(np.arange(4, dtype=np.float64))),          # broadcast and cast to float32
    lambda t, T: t.add_(1).mul_(2).clamp_(0, 3),                       # chained: each returns self
])
def test_inplace_values_match_torch(torch, call):
    x, x_t = _pair(torch)
    array_before = x.array
    out = call(x, mg.tensor)
    out_t = call(x_t, torch.tensor)
    assert out is x and x.array is array_before          # the same tensor, the same array
    assert x.dtype == np.float32
    np.testing.assert_allclose(x.numpy(), out_t.numpy(), rtol=1e-6, atol=1e-7)


def test_inplace_operators_change_the_tensor_itself():
    x = mg.ones(3)
    alias = x
    x += 2
    x *= mg.tensor([1., 2., 3.])
    x -= 1
    x /= 2
    assert alias is x
    np.testing.assert_allclose(x.numpy(), [1.0, 2.5, 4.0])


def test_every_inplace_change_bumps_the_version():
    x = mg.zeros(3)
    assert x._version == 0
    x.fill_(1).add_(1)
    x.normal_()
    x[0] = 5.0
    assert x._version == 4


def test_normal_and_uniform_follow_manual_seed():
    mg.manual_seed(3)
    a = mg.empty(2000).normal_(1.0, 0.02)
    b = mg.empty(2000).uniform_(-2.0, 3.0)
    mg.manual_seed(3)
    a2 = mg.empty(2000).normal_(1.0, 0.02)
    b2 = mg.empty(2000).uniform_(-2.0, 3.0)
    np.testing.assert_array_equal(a.numpy(), a2.numpy())
    np.testing.assert_array_equal(b.numpy(), b2.numpy())
    assert abs(a.numpy().mean() - 1.0) < 0.002 and abs(a.numpy().std() - 0.02) < 0.002
    assert b.numpy().min() >= -2.0 and b.numpy().max() < 3.0 and abs(b.numpy().mean() - 0.5) < 0.1
    with pytest.raises(ValueError, match='std'):
        mg.empty(3).normal_(0, -1)


def test_leaf_that_requires_grad_is_refused_in_grad_mode():
    w = mg.randn(3, requires_grad=True)
    for call in (lambda: w.fill_(0), lambda: w.mul_(2), lambda: w.normal_(), lambda: w.copy_(mg.zeros(3))):
        with pytest.raises(RuntimeError, match='leaf Variable that requires grad is being used in an in-place'):
            call()
    before = w.numpy()
    with mg.no_grad():
        w.mul_(2)                                        # allowed: an optimiser-style update
    np.testing.assert_allclose(w.numpy(), 2 * before)
    assert w.requires_grad and w.is_leaf


def test_data_shares_the_array_but_not_the_version_counter():
    w = mg.nn.Parameter(mg.zeros(2, 3))
    w.data.normal_(0.0, 0.02)                            # the DCGAN weights_init idiom
    assert w.numpy().std() > 0 and w._version == 0
    w.data.clamp_(-0.01, 0.01)                           # the WGAN clipping idiom
    assert np.abs(w.numpy()).max() <= 0.01
    assert w.requires_grad and w.grad is None


def test_modified_saved_input_raises_instead_of_a_wrong_gradient():
    x = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    w = mg.tensor([4.0, 5.0, 6.0], requires_grad=True)
    y = (x * w).sum()                                    # d/dx needs w's values at forward time
    with mg.no_grad():
        w.add_(1.0)
    with pytest.raises(RuntimeError, match='modified by an inplace operation'):
        y.backward()
    assert x.grad is None


def test_detach_shares_the_version_counter():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    y = (h * h).sum()
    h.detach().zero_()                                   # changes h's values: backward must refuse
    with pytest.raises(RuntimeError, match='modified by an inplace operation'):
        y.backward()


def test_inplace_on_a_non_leaf_is_recorded(torch):
    a = np.array([0.5, -1.0, 2.0])
    w = np.array([1.5, 2.0, -0.5])
    x, wm = mg.tensor(a, requires_grad=True), mg.tensor(w, requires_grad=True)
    xt, wt = torch.tensor(a, requires_grad=True), torch.tensor(w, requires_grad=True)
    for X, W in ((x, wm), (xt, wt)):
        h = X * 2
        h.add_(1).mul_(W).clamp_(-1.0, 3.0)
        (h * h).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(wm.grad.numpy(), wt.grad.numpy(), rtol=1e-12)


def test_inplace_on_an_output_that_backward_reads_raises(torch):
    x = mg.tensor([0.1, 0.2], requires_grad=True)
    y = x.exp()                                          # exp's gradient is its output
    y.mul_(2)
    with pytest.raises(RuntimeError, match='modified by an inplace operation'):
        y.sum().backward()
    xt = torch.tensor([0.1, 0.2], requires_grad=True)
    yt = xt.exp()
    yt.mul_(2)
    with pytest.raises(RuntimeError, match='modified by an inplace operation'):
        yt.sum().backward()


def test_copy_is_differentiable_in_its_source(torch):
    s = np.array([1.0, -2.0, 3.0])
    src, src_t = mg.tensor(s, requires_grad=True), torch.tensor(s, requires_grad=True)
    for S, zeros in ((src, mg.zeros(2, 3, dtype=mg.float64)), (src_t, torch.zeros(2, 3, dtype=torch.float64))):
        buf = zeros
        buf.copy_(S)
        (buf * buf).sum().backward()
    np.testing.assert_allclose(src.grad.numpy(), src_t.grad.numpy())


def test_inplace_methods_on_every_device(device):
    x = mg.tensor(np.array([[-2.0, 0.5], [1.5, 3.0]], np.float32), device=device)
    x.add_(mg.tensor([1.0, 1.0], device=device), alpha=2).mul_(0.5).clamp_(0.0, 2.0)
    np.testing.assert_allclose(x.numpy(), [[0.0, 1.25], [1.75, 2.0]])
    x.copy_(np.arange(2.0)).sub_(1).div_(2)
    np.testing.assert_allclose(x.numpy(), [[-0.5, 0.0], [-0.5, 0.0]])
    mg.manual_seed(0)
    a = x.normal_(0.0, 1.0).numpy()
    mg.manual_seed(0)
    np.testing.assert_array_equal(mg.zeros(2, 2).normal_(0.0, 1.0).numpy(), a)   # the same on any device
    assert x.device == device and x.fill_(mg.tensor(3.0, device=device)).numpy().tolist() == [[3.0, 3.0]] * 2
    w = mg.tensor([1.0, 2.0], requires_grad=True, device=device)
    y = (w * w).sum()
    with mg.no_grad():
        w.zero_()
    with pytest.raises(RuntimeError, match='modified by an inplace operation'):
        y.backward()

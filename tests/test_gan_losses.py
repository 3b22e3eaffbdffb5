"""The GAN losses of minigan.gan.losses against direct formulas and PyTorch.

Each loss takes the discriminator's raw outputs (B,) and returns a scalar to
minimise. Inputs are fresh seeded normals; tolerances rtol 1e-6 in float64.
"""
import numpy as np
import pytest

import minigan as mg
import minigan.functional as F
from minigan.gan import losses

from conftest import to_numpy

def _pair(torch, seed, b=7, device='cpu', dtype=np.float64):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(b).astype(dtype) * 2
    c = rng.standard_normal(b).astype(dtype) * 2
    return (mg.tensor(a, requires_grad=True, device=device), mg.tensor(c, requires_grad=True, device=device),
            torch.tensor(a, requires_grad=True), torch.tensor(c, requires_grad=True))


def _check(torch, ours, ours_inputs, theirs, their_inputs, rtol=1e-6):
    np.testing.assert_allclose(to_numpy(ours), theirs.item(), rtol=rtol)
    grads = mg.grad([ours], ours_inputs)
    tgrads = torch.autograd.grad(theirs, their_inputs)
    for g, tg in zip(grads, tgrads):
        np.testing.assert_allclose(to_numpy(g), tg.numpy(), rtol=rtol, atol=1e-12)


def _outputs(seed, b=7, device='cpu'):
    """Two seeded batches of discriminator outputs, float64 leaves."""
    rng = np.random.default_rng(seed)
    return [mg.tensor(rng.standard_normal(b) * 2, requires_grad=True, device=device) for _ in range(2)]


def _check_formula(loss, inputs, formula):
    """loss(*inputs) equals the NumPy formula, and its gradients equal central differences."""
    np.testing.assert_allclose(loss(*inputs).item(), formula(*[to_numpy(x) for x in inputs]), rtol=1e-10)
    assert mg.gradcheck(loss, inputs)


def softplus(x):
    return np.logaddexp(0, x)


@pytest.mark.parametrize('seed', [0, 1])
def test_dcgan_losses_are_bce_on_logits(seed, device):
    """L_D = mean softplus(-C_r) + mean softplus(C_f), L_G = mean softplus(-C_f): BCE with labels 1 and 0."""
    r, f = _outputs(seed, device=device)
    _check_formula(losses.dcgan_d_loss, [r, f], lambda a, b: softplus(-a).mean() + softplus(b).mean())
    _check_formula(losses.dcgan_g_loss, [f], lambda b: softplus(-b).mean())


@pytest.mark.parametrize('seed', [0, 1])
def test_dcgan_losses_match_torch_bce(seed, device, torch):
    r, f, tr, tf = _pair(torch, seed, device=device)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    _check(torch, losses.dcgan_d_loss(r, f), [r, f],
           bce(tr, torch.ones_like(tr)) + bce(tf, torch.zeros_like(tf)), [tr, tf])
    _check(torch, losses.dcgan_g_loss(f), [f], bce(tf, torch.ones_like(tf)), [tf])


def test_dcgan_loss_is_stable_for_large_logits():
    """BCE on logits in softplus form: no overflow at |logit| = 1000 (a sigmoid + log would give inf)."""
    big = mg.tensor(np.array([1000.0, -1000.0], dtype=np.float32), requires_grad=True)
    d = losses.dcgan_d_loss(big, -big)
    assert np.isfinite(d.item())
    np.testing.assert_allclose(d.item(), 1000.0 / 2 + 1000.0 / 2, rtol=1e-6)
    g, = mg.grad([d], [big])
    assert np.isfinite(g.numpy()).all()


@pytest.mark.parametrize('seed', [0, 1])
def test_ralsgan_losses_match_the_papers_formulas(seed, device):
    """L_D = ½[mean_r (C_r - mean C_f - 1)² + mean_f (C_f - mean C_r + 1)²]; L_G swaps the ±1.

    The relativistic term is the output minus the mean over the OTHER batch
    (RelativisticGAN #2: not mean(fake) - real). Values against NumPy, gradients by central differences."""
    r, f = _outputs(seed, b=6, device=device)

    def ref_d(a, b):
        return 0.5 * (((a - b.mean() - 1) ** 2).mean() + ((b - a.mean() + 1) ** 2).mean())

    def ref_g(a, b):
        return 0.5 * (((a - b.mean() + 1) ** 2).mean() + ((b - a.mean() - 1) ** 2).mean())

    _check_formula(losses.ralsgan_d_loss, [r, f], ref_d)
    _check_formula(losses.ralsgan_g_loss, [r, f], ref_g)


def test_ralsgan_sign_convention():
    """Hand-computed values: each output is compared with the mean of the other batch."""
    real = mg.tensor(np.array([2.0, 3.0, 4.0]))
    fake = mg.tensor(np.array([1.0, 2.0, 3.0]))       # mean 2; real mean 3
    # rel_real = real - 2 = [0,1,2], rel_fake = fake - 3 = [-2,-1,0]
    np.testing.assert_allclose(losses.ralsgan_d_loss(real, fake).item(),
                               0.5 * (np.mean([1, 0, 1]) + np.mean([1, 0, 1])))
    np.testing.assert_allclose(losses.ralsgan_g_loss(real, fake).item(),
                               0.5 * (np.mean([1, 4, 9]) + np.mean([9, 4, 1])))


def test_wgan_losses(device):
    r, f = _outputs(3, b=5, device=device)
    _check_formula(losses.wgan_d_loss, [r, f], lambda a, b: b.mean() - a.mean())
    _check_formula(losses.wgan_g_loss, [f], lambda b: -b.mean())
    np.testing.assert_allclose(losses.wasserstein_estimate(r, f),
                               to_numpy(r).mean() - to_numpy(f).mean(), rtol=1e-12)


class _LinearTanhCritic:
    """C(x) = sum_j v_j tanh((x_flat W)_j): nonlinear, so the penalty's second derivative is not trivial."""

    def __init__(self, w, v):
        self.w, self.v = w, v

    def __call__(self, x):
        h = F.tanh(x.reshape(x.shape[0], -1) @ self.w)
        return h @ self.v


def _torch_gp(torch, real, fake, alpha, w, v, weight=10.0):
    x_hat = (real + alpha.view(-1, 1, 1, 1) * (fake - real)).detach().requires_grad_(True)
    out = torch.tanh(x_hat.reshape(x_hat.shape[0], -1) @ w) @ v
    g, = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return weight * ((g.reshape(g.shape[0], -1).norm(2, dim=1) - 1) ** 2).mean()


def test_gradient_penalty_equals_torch_and_its_weight_gradient(device, torch):
    """Per-sample alpha, the norm over C*H*W, lambda 10, differentiated again into the critic's weights."""
    rng = np.random.default_rng(4)
    b, c, h, w_ = 5, 2, 3, 4
    real = rng.standard_normal((b, c, h, w_))
    fake = rng.standard_normal((b, c, h, w_))
    alpha = rng.random(b)
    W = rng.standard_normal((c * h * w_, 6)) * 0.3
    v = rng.standard_normal(6)
    mw = mg.tensor(W, requires_grad=True).to(device)
    mv = mg.tensor(v, requires_grad=True).to(device)
    gp = losses.gradient_penalty(_LinearTanhCritic(mw, mv), mg.tensor(real).to(device),
                                 mg.tensor(fake).to(device), alpha=mg.tensor(alpha).to(device))
    tw, tv = torch.tensor(W, requires_grad=True), torch.tensor(v, requires_grad=True)
    tgp = _torch_gp(torch, torch.tensor(real), torch.tensor(fake), torch.tensor(alpha), tw, tv)
    _check(torch, gp, [mw, mv], tgp, [tw, tv])


def test_gradient_penalty_norm_is_per_sample_over_chw():
    """C(x) = sum(x * A_i) per sample has gradient A_i: GP = 10 mean_i (||A_i|| - 1)², exactly."""
    rng = np.random.default_rng(5)
    b = 4
    A = rng.standard_normal((b, 3, 4, 4)) * 0.2
    real, fake = rng.standard_normal(A.shape), rng.standard_normal(A.shape)
    At = mg.tensor(A)

    def critic(x):
        return (x * At).sum(axis=(1, 2, 3))

    gp = losses.gradient_penalty(critic, mg.tensor(real), mg.tensor(fake))
    norms = np.sqrt((A.reshape(b, -1) ** 2).sum(axis=1))
    np.testing.assert_allclose(gp.item(), 10 * np.mean((norms - 1) ** 2), rtol=1e-9)
    # the wrong norm (over channels only, pytorch-wgan #40) would give a different number
    wrong = np.sqrt((A ** 2).sum(axis=1)).mean(axis=(1, 2))
    assert abs(10 * np.mean((wrong - 1) ** 2) - gp.item()) > 1e-3


def test_gradient_penalty_gradient_by_finite_differences():
    """d GP / d W through double backprop agrees with central differences (mg.gradcheck, float64)."""
    rng = np.random.default_rng(6)
    b, d = 3, 2 * 2 * 2
    real = mg.tensor(rng.standard_normal((b, 2, 2, 2)))
    fake = mg.tensor(rng.standard_normal((b, 2, 2, 2)))
    alpha = mg.tensor(rng.random(b))
    v = mg.tensor(rng.standard_normal(5))

    def fn(W):
        return losses.gradient_penalty(_LinearTanhCritic(W, v), real, fake, alpha=alpha)

    W = mg.tensor(rng.standard_normal((d, 5)) * 0.5, requires_grad=True)
    assert mg.gradcheck(fn, [W])


def test_gradient_penalty_draws_one_alpha_per_sample():
    """Without alpha, the mixing weights come from minigan's seeded generator, shape (B,)."""
    rng = np.random.default_rng(7)
    real = mg.tensor(rng.standard_normal((6, 1, 2, 2)))
    fake = mg.tensor(rng.standard_normal((6, 1, 2, 2)))
    W = mg.tensor(rng.standard_normal((4, 3)))
    v = mg.tensor(rng.standard_normal(3))
    critic = _LinearTanhCritic(W, v)
    mg.manual_seed(11)
    gp = losses.gradient_penalty(critic, real, fake)
    mg.manual_seed(11)
    alpha = mg.rand(6, dtype=np.float64)
    expect = losses.gradient_penalty(critic, real, fake, alpha=alpha)
    np.testing.assert_allclose(gp.item(), expect.item(), rtol=1e-12)
    with pytest.raises(ValueError, match='differ in shape'):
        losses.gradient_penalty(critic, real, fake[:3])

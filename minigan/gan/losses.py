"""The GAN losses, each a plain function of the discriminator's (critic's) raw
outputs, so they can be tested alone and the training loop stays short.

Conventions: `d_real` and `d_fake` are the discriminator's outputs on a real and
a generated batch, flattened to shape (B,); no sigmoid inside the model.
Every loss is a scalar Tensor to be minimised.

- dcgan   : Goodfellow et al.'s GAN with the non-saturating generator loss,
            written as BCE on logits (the stable softplus form).
- ralsgan : relativistic average least squares (Jolicoeur-Martineau 2018):
            each output is compared with the mean output over the OTHER batch.
- wgan    : Arjovsky et al.'s critic; the Lipschitz constraint comes from
            weight clipping (done by the training step, not here).
- wgan-gp : the same critic loss plus Gulrajani et al.'s gradient penalty.
"""
from .. import autograd
from ..backend import get_array_module
from ..tensor import Tensor
from .. import functional as F
from .. import random as mgr


def _bce_logits(logits, target_value):
    xp = get_array_module(logits.array)
    target = Tensor(xp.full(logits.shape, target_value, dtype=logits.dtype))   # a constant like the logits
    return F.binary_cross_entropy_with_logits(logits, target)


# ---- DCGAN: non-saturating ----------------------------------------------------
def dcgan_d_loss(d_real, d_fake):
    """-log sigmoid(D(x)) - log(1 - sigmoid(D(G(z)))), each term a batch mean (real = 1, fake = 0)."""
    return _bce_logits(d_real, 1.0) + _bce_logits(d_fake, 0.0)


def dcgan_g_loss(d_fake):
    """The non-saturating generator loss: -log sigmoid(D(G(z))), i.e. BCE with target 1."""
    return _bce_logits(d_fake, 1.0)


# ---- RaLSGAN --------------------------------------------------------------------
def ralsgan_d_loss(c_real, c_fake):
    """½[ mean_r (C(x_r) - mean_f C(x_f) - 1)² + mean_f (C(x_f) - mean_r C(x_r) + 1)² ]."""
    rel_real = c_real - c_fake.mean()
    rel_fake = c_fake - c_real.mean()
    return 0.5 * (((rel_real - 1.0) ** 2).mean() + ((rel_fake + 1.0) ** 2).mean())


def ralsgan_g_loss(c_real, c_fake):
    """½[ mean_r (C(x_r) - mean_f C(x_f) + 1)² + mean_f (C(x_f) - mean_r C(x_r) - 1)² ]: the targets swapped."""
    rel_real = c_real - c_fake.mean()
    rel_fake = c_fake - c_real.mean()
    return 0.5 * (((rel_real + 1.0) ** 2).mean() + ((rel_fake - 1.0) ** 2).mean())


# ---- WGAN / WGAN-GP -------------------------------------------------------------
def wgan_d_loss(c_real, c_fake):
    """The critic minimises mean C(G(z)) - mean C(x): minus the Wasserstein estimate."""
    return c_fake.mean() - c_real.mean()


def wgan_g_loss(c_fake):
    """The generator minimises -mean C(G(z))."""
    return -c_fake.mean()


def wasserstein_estimate(c_real, c_fake):
    """mean C(x) - mean C(G(z)) as a Python float (the number WGAN papers plot)."""
    return float(c_real.mean().item() - c_fake.mean().item())


def gradient_penalty(critic, real, fake, alpha=None, weight=10.0):
    """weight * mean_i (||grad_x C(x̂_i)||₂ - 1)², x̂_i = x_i + α_i (G(z)_i - x_i).

    One mixing weight α_i ~ U[0, 1] per sample (pass `alpha` of shape (B,) or
    (B, 1, 1, 1) to fix it); the norm runs over all of C×H×W of each sample.
    The gradient is taken with create_graph=True, so minimising the penalty
    differentiates through it again (double backprop) into the critic's weights.
    The critic must not use batch norm: that would mix the samples' gradients.
    """
    if real.shape != fake.shape:
        raise ValueError(f'gradient_penalty: real {real.shape} and fake {fake.shape} batches differ in shape')
    b = real.shape[0]
    if alpha is None:
        alpha = mgr.batch_rand(b, dtype=real.dtype, device=real.device)
    alpha = alpha.detach().reshape((b,) + (1,) * (real.ndim - 1))
    real, fake = real.detach(), fake.detach()
    with autograd.enable_grad():
        x_hat = (real + alpha * (fake - real)).detach().requires_grad_()
        out = critic(x_hat)
        grad_x, = autograd.grad([out.sum()], [x_hat], create_graph=True)
        # a tiny epsilon keeps the norm's derivative finite where a gradient is exactly zero
        norms = ((grad_x.reshape(b, -1) ** 2).sum(axis=1) + 1e-12).sqrt()
        return weight * ((norms - 1.0) ** 2).mean()


LOSSES = {
    'dcgan': (dcgan_d_loss, dcgan_g_loss),
    'ralsgan': (ralsgan_d_loss, ralsgan_g_loss),
    'wgan': (wgan_d_loss, wgan_g_loss),
    'wgan-gp': (wgan_d_loss, wgan_g_loss),
}

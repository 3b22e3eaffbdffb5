"""One training step per algorithm, kept apart from the command line.

A step takes its real batches from a `source` with three methods:
`remaining()` (batches left in this epoch), `next()` (the epoch's next
(images, labels) batch) and `fresh()` (an extra real batch outside the epoch's
count: RaLSGAN's generator step takes a fresh one, as the reference code does).

Gradients are taken with `mg.grad` with respect to the parameters of the
network being updated only, so the generator step never computes the
discriminator's weight gradients (the engine skips every branch that does not
lead to the requested tensors), and the discriminator step never touches G.

A conditional GAN (num_classes set) passes labels along: real batches come with their
labels from the data, fake batches with labels drawn uniformly over the classes, and both
networks take them: G(z, y), D(x, y). In a WGAN critic step the fakes take the real batch's
labels instead, so that the penalty's x̂ = x + α (G(z, y) - x) mixes two images of one class
y and the critic judges it as that class. With an AC-GAN discriminator, `judge` also returns
the cross-entropy of its class head: the discriminator adds it for real and fake batches,
the generator for its fakes (Odena et al.); the WGAN-GP penalty is taken on the logit alone.

Before each optimiser step the loss is checked: a NaN or Inf raises
`NonFiniteLoss` before any weight has been changed by it.
"""
import math

import numpy as np

from .. import autograd
from .. import functional as F
from .. import random as mgr
from ..autograd import no_grad
from ..models.conditional import ACGANDiscriminator
from . import losses

ALGORITHMS = ('dcgan', 'ralsgan', 'wgan', 'wgan-gp')


class NonFiniteLoss(FloatingPointError):
    def __init__(self, name, value):
        super().__init__(f'{name} is {value}')
        self.name, self.value = name, value


def _scalar(t):
    return float(t.item())


def _checked(name, t):
    v = _scalar(t)
    if not math.isfinite(v):
        raise NonFiniteLoss(name, v)
    return v


def _mean_sigmoid(logits):
    x = np.asarray(logits.numpy(), dtype=np.float64)
    return float(np.mean(0.5 * (1.0 + np.tanh(0.5 * x))))       # sigmoid without overflow warnings


def set_grads(loss, params):
    """p.grad = d loss / d p for exactly these parameters (None for those the loss does not use)."""
    grads = autograd.grad([loss], params, allow_unused=True)
    for p, g in zip(params, grads):
        p.grad = g


def _plus(loss, *terms):
    """loss + every term that is not None (an AC-GAN's class losses; None for other discriminators)."""
    for t in terms:
        if t is not None:
            loss = loss + t
    return loss


def wgan_critic_iters(gen_iterations, n_critic=5, warmup=100):
    """Arjovsky et al.: 100 critic steps for the first 25 generator steps and every 500th, else 5."""
    return warmup if gen_iterations < 25 or gen_iterations % 500 == 0 else n_critic


class GANTrainer:
    """Holds G, D and their optimisers; `step(source, step_index)` runs one generator iteration.

    step_index counts the generator steps already done (0 for the first).
    Returns a dict of Python floats for metrics.jsonl.
    `set_grads(loss, params)` sets the gradients before each optimiser step: data parallel
    training replaces it with minigan.distributed.Reducer, which also averages them.
    """
    set_grads = staticmethod(set_grads)

    def __init__(self, algorithm, G, D, opt_g, opt_d, nz=100, clip_value=0.01, n_critic=5,
                 gp_weight=10.0, num_classes=None):
        if algorithm not in ALGORITHMS:
            raise ValueError(f'unknown GAN algorithm {algorithm!r}: use one of {", ".join(ALGORITHMS)}')
        self.algorithm, self.G, self.D = algorithm, G, D
        self.opt_g, self.opt_d = opt_g, opt_d
        self.nz, self.clip_value, self.n_critic, self.gp_weight = nz, clip_value, n_critic, gp_weight
        self.num_classes = num_classes             # None: unconditional
        self.g_params = list(G.parameters())
        self.d_params = list(D.parameters())

    # ---- pieces ---------------------------------------------------------------
    def noise(self, batch, like):
        return mgr.batch_randn(batch, self.nz, 1, 1, dtype=like.dtype, device=like.device)

    def fake_labels(self, batch, like):
        """Classes for a batch of fakes, uniform over the classes (None for an unconditional GAN)."""
        if self.num_classes is None:
            return None
        return mgr.batch_randint(0, self.num_classes, batch, device=like.device)

    def generate(self, z, labels=None):
        return self.G(z) if labels is None else self.G(z, labels)

    def critic(self, x, labels=None):
        return (self.D(x) if labels is None else self.D(x, labels)).reshape(-1)

    def judge(self, x, labels=None):
        """(D's outputs (B,), the class cross-entropy of an AC-GAN discriminator on `labels` or None)."""
        if labels is not None and isinstance(self.D, ACGANDiscriminator):
            logits, class_logits = self.D.classify(x)
            return logits.reshape(-1), F.cross_entropy(class_logits, labels)
        return self.critic(x, labels), None

    def _real(self, batch):
        """(images, labels) of a real batch; labels only for a conditional GAN."""
        images, labels = batch
        return images, (labels if self.num_classes is not None else None)

    def _update(self, loss, params, opt):
        self.set_grads(loss, params)
        opt.step()

    def clip_critic(self):
        """Clamp every critic parameter (batch-norm scale and shift included) into [-c, c], in place."""
        c = self.clip_value
        with no_grad():
            for p in self.d_params:
                p.array[...] = p.array.clip(-c, c)

    # ---- one generator iteration per algorithm -----------------------------------------
    def step(self, source, step_index=0):
        """One generator iteration of the algorithm: the discriminator's (critic's) update(s), then G's."""
        if self.algorithm == 'dcgan':
            return self._step_dcgan(source, step_index)
        if self.algorithm == 'ralsgan':
            return self._step_ralsgan(source, step_index)
        if self.algorithm == 'wgan':
            return self._step_wgan(source, step_index)
        return self._step_wgan_gp(source, step_index)

    def _step_dcgan(self, source, step_index):
        real, y_real = self._real(source.next())
        z = self.noise(real.shape[0], real)
        y_fake = self.fake_labels(real.shape[0], real)
        fake = self.generate(z, y_fake)
        d_real, class_real = self.judge(real, y_real)
        d_fake, class_fake = self.judge(fake.detach(), y_fake)
        loss_d = _plus(losses.dcgan_d_loss(d_real, d_fake), class_real, class_fake)
        out = {'loss_d': _checked('loss_d', loss_d), 'd_x': _mean_sigmoid(d_real),
               'd_g_z1': _mean_sigmoid(d_fake)}
        self._update(loss_d, self.d_params, self.opt_d)
        d_fake, class_fake = self.judge(fake, y_fake)  # D after its step, on the same fakes
        loss_g = _plus(losses.dcgan_g_loss(d_fake), class_fake)
        out['loss_g'] = _checked('loss_g', loss_g)
        out['d_g_z2'] = _mean_sigmoid(d_fake)
        self._update(loss_g, self.g_params, self.opt_g)
        out['real_images'] = real.shape[0]
        return out

    def _step_ralsgan(self, source, step_index):
        real, y_real = self._real(source.next())
        z = self.noise(real.shape[0], real)
        y_fake = self.fake_labels(real.shape[0], real)
        fake = self.generate(z, y_fake)
        c_real, class_real = self.judge(real, y_real)
        c_fake, class_fake = self.judge(fake.detach(), y_fake)
        loss_d = _plus(losses.ralsgan_d_loss(c_real, c_fake), class_real, class_fake)
        out = {'loss_d': _checked('loss_d', loss_d),
               'c_real': _scalar(c_real.mean()), 'c_fake': _scalar(c_fake.mean())}
        self._update(loss_d, self.d_params, self.opt_d)
        real2, y_real2 = self._real(source.fresh())    # the G step sees a fresh real batch and fresh z
        z2 = self.noise(real2.shape[0], real2)
        y_fake2 = self.fake_labels(real2.shape[0], real2)
        fake2 = self.generate(z2, y_fake2)
        c_real2 = self.critic(real2, y_real2).detach()   # G's gradient does not flow through C(x_r)
        c_fake2, class_fake2 = self.judge(fake2, y_fake2)
        loss_g = _plus(losses.ralsgan_g_loss(c_real2, c_fake2), class_fake2)
        out['loss_g'] = _checked('loss_g', loss_g)
        self._update(loss_g, self.g_params, self.opt_g)
        out['real_images'] = real.shape[0] + real2.shape[0]
        return out

    def _critic_steps(self, source, n, penalty):
        sums = {'loss_d': 0.0, 'wasserstein': 0.0, 'gp': 0.0}
        images = done = 0
        for _ in range(n):
            if source.remaining() <= 0:                # the epoch ran out: go on to the G step
                break
            real, y = self._real(source.next())         # the fakes take the real batch's classes
            with no_grad():
                fake = self.generate(self.noise(real.shape[0], real), y)
            (c_real, class_real), (c_fake, class_fake) = self.judge(real, y), self.judge(fake, y)
            loss_d = losses.wgan_d_loss(c_real, c_fake)
            sums['wasserstein'] += -_scalar(loss_d)
            loss_d = _plus(loss_d, class_real, class_fake)
            if penalty:
                critic = self.D if y is None else (lambda x: self.D(x, y))
                gp = losses.gradient_penalty(critic, real, fake, weight=self.gp_weight)
                sums['gp'] += _checked('gp', gp)
                loss_d = loss_d + gp
            sums['loss_d'] += _checked('loss_d', loss_d)
            self._update(loss_d, self.d_params, self.opt_d)
            if not penalty:
                self.clip_critic()                      # after the step, as the paper's algorithm has it
            images += real.shape[0]
            done += 1
        out = {k: v / max(done, 1) for k, v in sums.items()}
        if not penalty:
            del out['gp']
        out['critic_steps'] = done
        out['real_images'] = images
        return out

    def _generator_step(self, batch, like):
        z = self.noise(batch, like)
        y = self.fake_labels(batch, like)
        c_fake, class_fake = self.judge(self.generate(z, y), y)
        loss_g = _plus(losses.wgan_g_loss(c_fake), class_fake)
        v = _checked('loss_g', loss_g)
        self._update(loss_g, self.g_params, self.opt_g)
        return v

    def _step_wgan(self, source, step_index):
        n = wgan_critic_iters(step_index, self.n_critic)
        out = self._critic_steps(source, n, penalty=False)
        out['loss_g'] = self._generator_step(self._batch_size(source), self._like())
        return out

    def _step_wgan_gp(self, source, step_index):
        out = self._critic_steps(source, self.n_critic, penalty=True)
        out['loss_g'] = self._generator_step(self._batch_size(source), self._like())
        return out

    def _batch_size(self, source):
        return source.batch_size

    def _like(self):
        return self.g_params[0]


class ClassifierTrainer:
    """One SGD/Adam step of a classifier: cross-entropy, or sigmoid + BCE per class for multi-label data."""
    set_grads = staticmethod(set_grads)

    def __init__(self, model, opt, multi_label=False):
        self.model, self.opt, self.multi_label = model, opt, multi_label
        self.params = list(model.parameters())

    def loss(self, logits, labels):
        from .. import functional as F
        if self.multi_label:
            return F.binary_cross_entropy_with_logits(logits, labels.to(dtype=logits.dtype))
        return F.cross_entropy(logits, labels)

    def step(self, source, step_index=0):
        images, labels = source.next()
        logits = self.model(images)
        loss = self.loss(logits, labels)
        value = _checked('loss', loss)
        self.set_grads(loss, self.params)
        self.opt.step()
        correct, count = count_correct(logits, labels, self.multi_label)
        return {'loss': value, 'acc': correct / count, 'real_images': images.shape[0]}


def count_correct(logits, labels, multi_label=False):
    """(number right, number judged): argmax for single-label, each class's sign for multi-label."""
    z = logits.numpy()
    y = labels.numpy()
    if multi_label:
        return int(((z > 0) == (y > 0.5)).sum()), int(y.size)
    return int((z.argmax(axis=1) == y).sum()), int(y.shape[0])

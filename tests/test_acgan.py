"""The AC-GAN discriminator (`train --conditional --cond-d acgan`): an unconditional logit plus a
class head, whose cross-entropy the discriminator minimises on real and fake images and the
generator on its fakes (Odena et al., 2017). Tiny networks, seeded inputs, float64 where exact."""
import json

import numpy as np
import pytest

import minigan as mg
from minigan import checkpoint
from minigan import functional as F
from minigan import optim
from minigan import train as train_mod
from minigan.gan import losses
from minigan.gan.trainer import GANTrainer
from minigan.models import ACGANDiscriminator, ConditionalGenerator
from test_conditional_training import data_dir, tiny  # noqa: F401  (the module's synth data folder)


def test_the_logit_ignores_the_class_and_the_head_classifies():
    mg.manual_seed(0)
    D = ACGANDiscriminator(6, ndf=4).double().eval()
    x = mg.tensor(np.random.default_rng(1).standard_normal((3, 3, 32, 32)))
    logit, classes = D.classify(x)
    assert logit.shape == (3, 1, 1, 1) and classes.shape == (3, 6)
    np.testing.assert_array_equal(D(x, mg.tensor(np.array([0, 5, 2]))).numpy(), logit.numpy())
    np.testing.assert_array_equal(D(x).numpy(), logit.numpy())
    expected = D.classes(D.features(x)).numpy().reshape(3, 6)        # the class head sees phi(x)
    np.testing.assert_allclose(classes.numpy(), expected, rtol=1e-12)


def test_the_critic_is_per_example_for_the_penalty():
    """Without BatchNorm the logit of example i depends on x_i alone, and the penalty of a batch is
    the mean of the examples' penalties taken alone (same mixing weights)."""
    mg.manual_seed(2)
    D = ACGANDiscriminator(4, nc=1, ndf=4, batch_norm=False).double()
    rng = np.random.default_rng(3)
    real, fake = mg.tensor(rng.standard_normal((3, 1, 32, 32))), mg.tensor(rng.standard_normal((3, 1, 32, 32)))
    alpha = mg.tensor(np.array([0.1, 0.6, 0.8]))
    whole = losses.gradient_penalty(D, real, fake, alpha).item()
    alone = [losses.gradient_penalty(D, real[i:i + 1], fake[i:i + 1], alpha[i:i + 1]).item() for i in range(3)]
    np.testing.assert_allclose(whole, np.mean(alone), rtol=1e-10)
    gp = losses.gradient_penalty(D, real, fake, alpha)               # double backprop reaches phi's weights
    g, = mg.autograd.grad([gp], [D.features[0].weight])
    assert np.abs(g.numpy()).sum() > 0


class Batches:
    def __init__(self, x, y):
        self.x, self.y, self.batch_size = x, y, x.shape[0]

    def next(self):
        return self.x, self.y

    fresh = next

    def remaining(self):
        return 1


@pytest.mark.parametrize('algorithm', ['dcgan', 'ralsgan', 'wgan-gp'])
def test_both_players_minimise_the_class_cross_entropy(algorithm):
    """One step's discriminator loss is its adversarial loss + CE(real, y) + CE(fake, y_fake); the
    generator's is its adversarial loss + CE(fake, y_fake): checked by recomputing each loss from
    the networks the trainer handed its optimisers, with the same random draws."""
    rng = np.random.default_rng(4)
    x = mg.tensor(rng.uniform(-1, 1, (4, 3, 32, 32)).astype(np.float32))
    y = mg.tensor(np.array([0, 1, 2, 1]))
    mg.manual_seed(5)
    G = ConditionalGenerator(3, nz=8, ngf=4)
    D = ACGANDiscriminator(3, ndf=4, batch_norm=algorithm != 'wgan-gp')
    seen = []

    def spy(loss, params):
        seen.append((loss.item(), params is trainer.d_params))
        trainer_set_grads(loss, params)
    from minigan.gan.trainer import set_grads as trainer_set_grads
    trainer = GANTrainer(algorithm, G, D, optim.SGD(G.parameters(), lr=0.0), optim.SGD(D.parameters(), lr=0.0),
                         nz=8, n_critic=1, num_classes=3)
    trainer.set_grads = spy
    mg.manual_seed(6)
    trainer.step(Batches(x, y))
    # the same draws again, by hand (lr 0: the networks did not change)
    mg.manual_seed(6)
    with mg.no_grad():
        if algorithm == 'wgan-gp':
            fake = G(trainer.noise(4, x), y)
            (cr, kr), (cf, kf) = D.classify(x), D.classify(fake)
            gp = losses.gradient_penalty(D, x, fake)
            expect_d = (cf.mean() - cr.mean() + F.cross_entropy(kr, y) + F.cross_entropy(kf, y) + gp).item()
            zg, yg = trainer.noise(4, x), trainer.fake_labels(4, x)
            cg, kg = D.classify(G(zg, yg))
            expect_g = (-cg.mean() + F.cross_entropy(kg, yg)).item()
        else:
            z, yf = trainer.noise(4, x), trainer.fake_labels(4, x)
            fake = G(z, yf)
            (cr, kr), (cf, kf) = D.classify(x), D.classify(fake)
            d_loss, g_loss = losses.LOSSES[algorithm]
            cr, cf = cr.reshape(-1), cf.reshape(-1)
            expect_d = (d_loss(cr, cf) + F.cross_entropy(kr, y) + F.cross_entropy(kf, yf)).item()
            if algorithm == 'dcgan':
                expect_g = (g_loss(cf) + F.cross_entropy(kf, yf)).item()
            else:                                       # RaLSGAN's G step: a fresh batch and fresh draws
                z2, yf2 = trainer.noise(4, x), trainer.fake_labels(4, x)
                c2, k2 = D.classify(G(z2, yf2))
                expect_g = (g_loss(D.classify(x)[0].reshape(-1), c2.reshape(-1)) + F.cross_entropy(k2, yf2)).item()
    (got_d, is_d), (got_g, is_g) = seen
    assert is_d and not is_g
    np.testing.assert_allclose(got_d, expect_d, rtol=1e-5)
    np.testing.assert_allclose(got_g, expect_g, rtol=1e-5)


@pytest.mark.parametrize('model', ['dcgan', 'wgan-gp'])
def test_train_cond_d_acgan_end_to_end_and_resume(model, data_dir, tmp_path):  # noqa: F811
    out = tmp_path / 'run'
    assert train_mod.main(tiny(data_dir, out, '--cond-d', 'acgan', '--max-steps', '2', model=model)) == 0
    cfg = json.loads((out / 'config.json').read_text())
    assert cfg['cond_d'] == 'acgan'
    st = checkpoint.load(checkpoint.latest_path(str(out)))
    assert st['D']['classes.weight'].shape[0] == 10 and 'embed.weight' not in st['D']
    assert train_mod.main(['--resume', str(out), '--max-steps', '3', '--quiet']) == 0


def test_cond_d_without_conditional_is_refused_in_one_sentence(data_dir, tmp_path, capsys):  # noqa: F811
    args = tiny(data_dir, tmp_path / 'r', '--max-steps', '1', '--cond-d', 'acgan')
    args.remove('--conditional')
    assert train_mod.main(args) == 2
    err = capsys.readouterr().err
    assert '--cond-d chooses the discriminator of a --conditional GAN: add --conditional' in err
    assert 'Traceback' not in err and len(err.strip().splitlines()) == 1


def test_an_unknown_cond_d_is_refused_by_the_parser(data_dir, tmp_path, capsys):  # noqa: F811
    with pytest.raises(SystemExit) as stop:
        train_mod.main(tiny(data_dir, tmp_path / 'r', '--max-steps', '1', '--cond-d', 'aux'))
    assert stop.value.code == 2 and "invalid choice: 'aux'" in capsys.readouterr().err

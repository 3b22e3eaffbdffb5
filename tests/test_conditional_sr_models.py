"""The conditional DCGAN (embedding joined to z, projection discriminator), SRResNet and the
image-quality metrics (PSNR, SSIM against a window-by-window computation)."""
import numpy as np
import pytest

import minigan as mg
from minigan.metrics import psnr, ssim
from minigan.models import ConditionalGenerator, ProjectionDiscriminator, SRDiscriminator, SRResNet


def test_the_generator_draws_what_the_label_asks_for():
    mg.manual_seed(0)
    G = ConditionalGenerator(10, nz=16, ngf=8).eval()
    z = mg.randn(1, 16).expand(3, 16)
    x = G(z, mg.tensor(np.array([2, 2, 7]))).numpy()
    assert x.shape == (3, 3, 32, 32) and np.all(np.abs(x) <= 1)
    np.testing.assert_allclose(x[0], x[1], rtol=1e-5, atol=1e-6)    # same z, same class: same image
    assert np.abs(x[0] - x[2]).max() > 1e-5                           # another class: another image


def test_at_the_start_the_noise_not_the_class_makes_most_of_the_picture():
    """Class vectors start at N(0, 0.1^2), z is N(0, 1): at initialisation the images of one class
    vary with z almost as much as all images do (ratio 0.97; 0.80 with class vectors drawn like z, which
    let G drop z and draw one image per class; bench/RESULTS.md). Seed 0, 10 classes x 10 z."""
    mg.manual_seed(0)
    G = ConditionalGenerator(10, nz=100, ngf=16)
    np.testing.assert_allclose(G.embed.weight.numpy().std(), 0.1, rtol=0.15)
    z = mg.randn(100, 100)
    x = G(z, mg.tensor(np.repeat(np.arange(10), 10))).numpy().reshape(10, 10, -1)
    within = x.std(axis=1, ddof=1).mean()
    overall = x.reshape(100, -1).std(axis=0, ddof=1).mean()
    assert within / overall > 0.95                                    # 0.80 with N(0, 1) class vectors


@pytest.mark.parametrize('batch_norm', [True, False])
def test_projection_adds_the_class_embedding_inner_product(batch_norm):
    mg.manual_seed(1)
    D = ProjectionDiscriminator(5, ndf=8, batch_norm=batch_norm).double().eval()
    x = mg.tensor(np.random.default_rng(2).standard_normal((4, 3, 32, 32)))
    y = mg.tensor(np.array([0, 1, 4, 1]))
    h = D.features(x)
    expected = D.head(h).numpy().reshape(-1) + (D.embed.weight.numpy()[y.numpy()] *
                                                h.numpy().sum(axis=(2, 3))).sum(axis=1)
    np.testing.assert_allclose(D(x, y).numpy().reshape(-1), expected, rtol=1e-10)


def test_the_wgan_gp_critic_stays_per_example_with_double_backprop():
    """Without BatchNorm, D(x_i, y_i) depends on x_i alone: the gradient penalty is per example."""
    mg.manual_seed(3)
    D = ProjectionDiscriminator(3, ndf=4, batch_norm=False).double()
    x = mg.tensor(np.random.default_rng(4).standard_normal((3, 3, 32, 32)), requires_grad=True)
    y = mg.tensor(np.array([0, 2, 1]))
    g, = mg.grad([D(x, y)[1].sum()], [x], create_graph=True)
    assert not np.any(g.numpy()[[0, 2]]) and np.any(g.numpy()[1])
    g, = mg.grad([D(x, y).sum()], [x], create_graph=True)
    penalty = ((g.reshape(3, -1) ** 2).sum(axis=1).sqrt() - 1) ** 2
    penalty.mean().backward()
    assert D.embed.weight.grad is not None and np.any(D.embed.weight.grad.numpy())


def test_bad_labels_get_a_clear_error():
    G = ConditionalGenerator(4, nz=8, ngf=4)
    with pytest.raises(ValueError, match=r'\[0, 3\]'):
        G(mg.randn(2, 8), mg.tensor(np.array([0, 4])))
    with pytest.raises(ValueError, match='one class per example'):
        G(mg.randn(2, 8), mg.tensor(np.array([0, 1, 2])))


@pytest.mark.parametrize('scale', [2, 4])
def test_srresnet_upscales_by_its_factor(scale):
    mg.manual_seed(5)
    net = SRResNet(scale, channels=8, blocks=2)
    y = net(mg.randn(2, 3, 7, 5))
    assert y.shape == (2, 3, 7 * scale, 5 * scale)
    assert SRDiscriminator(channels=8)(y).shape == (2, 1)
    with pytest.raises(ValueError, match='2 or 4'):
        SRResNet(3)


def test_psnr_is_ten_log_range_squared_over_mse():
    a = np.zeros((1, 3, 4, 4), np.uint8)
    b = a + 5                                                          # mse 25
    np.testing.assert_allclose(psnr(b, a), 10 * np.log10(255 ** 2 / 25))


def test_ssim_matches_a_window_by_window_computation():
    rng = np.random.default_rng(6)
    a = rng.integers(0, 256, (1, 2, 14, 13)).astype(np.float64)
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255)
    x = np.arange(11) - 5
    g = np.exp(-x ** 2 / 4.5)
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for c in range(2):
        for i in range(14 - 10):
            for j in range(13 - 10):
                pa, pb = a[0, c, i:i + 11, j:j + 11], b[0, c, i:i + 11, j:j + 11]
                ma, mb = (w * pa).sum(), (w * pb).sum()
                va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
                cov = (w * (pa - ma) * (pb - mb)).sum()
                vals.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    np.testing.assert_allclose(ssim(b, a), [np.mean(vals)], rtol=1e-9)
    np.testing.assert_allclose(ssim(a, a), [1.0])
    assert ssim(b, a)[0] < 1

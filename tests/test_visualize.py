"""Class-model images, saliency maps, hidden-layer activation maximisation and first-layer
filters (minigan.visualize), on tiny seeded networks."""
import numpy as np
import pytest

import minigan as mg
import minigan.nn as nn
from minigan import visualize as V


def tiny_classifier(seed=0, classes=5, nc=3):
    """(B, nc, 16, 16) -> (B, classes): conv-relu-pool twice, then a linear head."""
    mg.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(nc, 4, 3, 1, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(6 * 4 * 4, classes)).eval()


def tiny_discriminator(seed=0):
    """A DCGAN-style critic on 16x16 images: one logit per image, shape (B, 1, 1, 1)."""
    mg.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 4, 2, 1), nn.LeakyReLU(0.2),
                         nn.Conv2d(4, 8, 4, 2, 1), nn.BatchNorm2d(8), nn.LeakyReLU(0.2),
                         nn.Conv2d(8, 1, 4, 1, 0)).eval()


def scores(model, images):
    with mg.no_grad():
        return V.scores_of(model, mg.tensor(np.asarray(images, np.float32))).numpy()


def start_images(n, seed=0):
    return np.random.default_rng(seed).normal(0, 0.1, (n, 3, 16, 16)).astype(np.float32)


def test_class_model_images_raise_the_chosen_class_score():
    model = tiny_classifier()
    imgs = V.class_model_images(model, range(5), image_shape=(3, 16, 16), steps=60, seed=0)
    assert imgs.shape == (5, 3, 16, 16) and imgs.min() >= -1 and imgs.max() <= 1
    before, after = scores(model, start_images(5)), scores(model, imgs)    # same seeded start
    gain = after - before
    chosen = np.diag(gain)
    others = (gain.sum(axis=1) - chosen) / 4
    assert np.all(chosen > 0.2), chosen
    assert np.all(chosen > others + 0.1), (chosen, others)            # the chosen class gains the most
    assert np.all(after.argmax(axis=1) == np.arange(5)), after          # each image is classified as its class
    assert model.training is False


def test_class_model_image_of_a_discriminator_raises_its_realness_score():
    D = tiny_discriminator()
    img = V.class_model_images(D, [0], image_shape=(3, 16, 16), steps=40, seed=1)
    assert scores(D, img)[0, 0] > scores(D, start_images(1, seed=1))[0, 0] + 0.1
    with pytest.raises(ValueError, match='one score'):
        V.class_model_images(D, [1], image_shape=(3, 16, 16), steps=1)


def test_saliency_has_the_input_shape():
    model = tiny_classifier()
    x = mg.tensor(start_images(3, seed=2) * 5)
    grads = V.input_gradient(model, x, [0, 2, 4])
    assert grads.shape == x.shape
    assert V.saliency(model, x, [0, 2, 4], reduce=None).shape == x.shape
    maps = V.saliency(model, x, [0, 2, 4])
    assert maps.shape == (3, 16, 16)
    np.testing.assert_allclose(maps, np.abs(grads).max(axis=1))
    assert np.all(maps >= 0) and maps.max() > 0


def test_saliency_of_a_linear_model_is_the_weight_magnitude():
    # score_c = w_c . x + b_c, so |d score_c / dx| = |w_c| whatever x is
    mg.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 5 * 7, 4))
    x = mg.tensor(np.random.default_rng(3).normal(size=(2, 2, 5, 7)).astype(np.float32))
    maps = V.saliency(model, x, [1, 3])
    w = np.abs(model[1].weight.numpy()).reshape(4, 2, 5, 7)
    np.testing.assert_allclose(maps, w[[1, 3]].max(axis=1), rtol=1e-6)


def test_input_gradient_matches_torch():
    torch = pytest.importorskip('torch')
    model = tiny_classifier(seed=4)
    ref = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, 1, 1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.MaxPool2d(2), torch.nn.Conv2d(4, 6, 3, 1, 1), torch.nn.ReLU(),
                              torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(96, 5)).double().eval()
    ref.load_state_dict({k: torch.tensor(v, dtype=torch.float64 if v.dtype.kind == 'f' else None)
                         for k, v in model.state_dict().items()})
    model.to(np.float64)
    x = np.random.default_rng(4).normal(size=(3, 3, 16, 16))
    ours = V.input_gradient(model, mg.tensor(x), [4, 0, 1])
    xt = torch.tensor(x, requires_grad=True)
    ref(xt)[[0, 1, 2], [4, 0, 1]].sum().backward()
    np.testing.assert_allclose(ours, xt.grad.numpy(), rtol=1e-6, atol=1e-10)


def test_layer_output_runs_the_model_up_to_that_layer():
    model = tiny_classifier(seed=5)
    x = mg.tensor(start_images(2, seed=5))
    with mg.no_grad():
        expected = x
        for m in list(model)[:5]:
            expected = m(expected)
        got = V.layer_output(model, '4', x)
        full_before = model(x).numpy()
        assert got.shape == (2, 6, 8, 8)
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-6)
        np.testing.assert_array_equal(model(x).numpy(), full_before)      # the hook is gone afterwards
    assert 'forward' not in model[4].__dict__
    with pytest.raises(KeyError, match="no layer named '42'"):
        V.layer_output(model, '42', x)


def test_activation_maximisation_of_a_nested_named_layer():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            mg.manual_seed(6)
            self.features = nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1), nn.ReLU(), nn.Conv2d(4, 6, 3, 1, 1))
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(6 * 16 * 16, 3))

        def forward(self, x):
            return self.head(self.features(x))

    net = Net().eval()
    channels = [0, 3, 5]
    imgs = V.activation_maximisation(net, 'features.2', channels, image_shape=(3, 16, 16), steps=40, seed=6)
    assert imgs.shape == (3, 3, 16, 16)

    def mean_act(images):
        with mg.no_grad():
            a = V.layer_output(net, 'features.2', mg.tensor(images)).numpy()
        return a.mean(axis=(2, 3))[np.arange(3), channels]

    before, after = mean_act(start_images(3, seed=6)), mean_act(imgs)
    assert np.all(after > before), (before, after)
    # better than the best of 100 random images in the same range
    rand = np.random.default_rng(6).uniform(-1, 1, (100, 3, 16, 16)).astype(np.float32)
    with mg.no_grad():
        best_random = V.layer_output(net, 'features.2', mg.tensor(rand)).numpy().mean(axis=(2, 3)).max(axis=0)
    assert np.all(after > best_random[channels]), (after, best_random[channels])
    with pytest.raises(ValueError, match='6 channels'):
        V.activation_maximisation(net, 'features.2', [6], image_shape=(3, 16, 16), steps=1)


def test_first_layer_filters():
    model = tiny_classifier(seed=7)
    f = V.first_layer_filters(model)
    assert f.shape == (4, 3, 3, 3)
    np.testing.assert_allclose(np.abs(f).reshape(4, -1).max(axis=1), 1, rtol=1e-9)
    w = model[0].weight.numpy()
    np.testing.assert_allclose(f[2] * np.abs(w[2]).max(), w[2], rtol=1e-5, atol=1e-7)
    grey = V.first_layer_filters(nn.Sequential(nn.Conv2d(1, 5, 4, 2, 1)))
    assert grey.shape == (5, 1, 4, 4)


def test_blur_matches_scipy_gaussian_filter():
    ndimage = pytest.importorskip('scipy.ndimage')
    x = np.random.default_rng(8).normal(size=(2, 3, 9, 11))
    sigma = 0.8
    r = int(3 * sigma)
    ref = ndimage.gaussian_filter(x, sigma=(0, 0, sigma, sigma), mode='mirror', truncate=r / sigma)
    np.testing.assert_allclose(V._gaussian_blur(x, sigma), ref, rtol=1e-10, atol=1e-12)


def test_figures(tmp_path):
    model = tiny_classifier(seed=9)
    x = start_images(4, seed=9) * 5
    maps = V.saliency(model, mg.tensor(x), [0, 1, 2, 3])
    fig = V.saliency_figure(np.clip(x, -1, 1), maps, ['a', 'b', 'c', 'd'])
    fig.save(tmp_path / 's.png')
    assert fig.size[0] > 8 * 16 and np.asarray(fig).std() > 0


def test_command_line_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert V.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert 'config.json' in err and 'Traceback' not in err

"""Proof by real scripts: the loops in pytorch_scripts.py run on minigan with only the imports
changed, and from the same weights, data and noise they print the same numbers as PyTorch for
their first steps (to float32 tolerance)."""
import numpy as np
import pytest

from pytorch_scripts import dcgan_loop, mnist_loop, wgan_gp_loop, wgan_loop

RTOL, ATOL = 2e-4, 2e-6


def minigan_modules():
    import minigan as torch
    import minigan.nn as nn
    import minigan.nn.functional as F
    import minigan.optim as optim
    from minigan.utils import data
    return dict(torch=torch, nn=nn, F=F, optim=optim, data=data)


def torch_modules():
    torch = pytest.importorskip('torch')
    import torch.nn as nn
    import torch.nn.functional as F
    import torch.optim as optim
    from torch.utils import data
    return dict(torch=torch, nn=nn, F=F, optim=optim, data=data)


class Shared:
    """What both runs share: noise from one seeded NumPy stream, and the first run's initial weights."""

    def __init__(self, seed=0):
        self.seed, self.weights = seed, {}

    def run(self, loop, modules, **kwargs):
        torch = modules['torch']
        rng = np.random.default_rng(self.seed)

        def randn(*shape, device=None):
            return torch.tensor(rng.standard_normal(shape).astype(np.float32), device=device)

        def rand(*shape, device=None):
            return torch.tensor(rng.random(shape).astype(np.float32), device=device)

        def sync(name, module):
            if name in self.weights:
                module.load_state_dict(self.weights[name])
            else:
                self.weights[name] = {k: np.array(v.detach().cpu().numpy() if hasattr(v, 'detach') else v)
                                      for k, v in module.state_dict().items()}

        extra = {k: v for k, v in dict(randn=randn, rand=rand, sync=sync).items()
                 if k in loop.__code__.co_varnames[:loop.__code__.co_argcount]}
        return loop(**modules, **extra, **kwargs)


def _images(n, channels=3, size=16, seed=1):
    return np.random.default_rng(seed).uniform(-1, 1, (n, channels, size, size)).astype(np.float32)


def test_dcgan_loop(tmp_path):
    from minigan.utils import save_image
    import minigan as mg
    utils = type('vutils', (), {'save_image': staticmethod(save_image)})
    shared = Shared()
    (tmp_path / 'torch').mkdir()
    (tmp_path / 'mg').mkdir()
    want = shared.run(dcgan_loop, torch_modules(), vutils=utils, images=_images(16), out_dir=tmp_path / 'torch')
    got = shared.run(dcgan_loop, minigan_modules(), vutils=utils, images=_images(16), out_dir=tmp_path / 'mg')
    assert len(got) == len(want) == 4
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    assert (tmp_path / 'mg' / 'fake_samples_epoch_001.png').exists()
    state = mg.load(tmp_path / 'mg' / 'netG_epoch_1.pth')
    assert state['main.0.weight'].shape == (8, 16, 4, 4)
    # weights_init drew from minigan's seeded generator: normal_(0, 0.02) for conv weights
    assert abs(np.std(shared.weights['netD']['main.0.weight']) - 0.02) < 0.01


def test_mnist_loop(tmp_path):
    rng = np.random.default_rng(2)
    train_set = (rng.standard_normal((32, 1, 12, 12)).astype(np.float32), rng.integers(0, 10, 32))
    test_set = (rng.standard_normal((16, 1, 12, 12)).astype(np.float32), rng.integers(0, 10, 16))
    shared = Shared()
    kwargs = dict(train_set=train_set, test_set=test_set, out_dir=tmp_path, shuffle=False, dropout=(0.0, 0.0))
    losses_t, tests_t, lrs_t = shared.run(mnist_loop, torch_modules(), **kwargs)
    losses, tests, lrs = shared.run(mnist_loop, minigan_modules(), **kwargs)
    np.testing.assert_allclose(losses, losses_t, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose([t[0] for t in tests], [t[0] for t in tests_t], rtol=RTOL)
    assert [t[1] for t in tests] == [t[1] for t in tests_t]
    assert lrs == lrs_t == [0.7, 0.7 * 0.7]


def test_mnist_loop_with_dropout_and_shuffling_trains(tmp_path):
    import minigan as mg
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 10, 64)
    images = rng.standard_normal((64, 1, 12, 12)).astype(np.float32) * 0.3
    images[np.arange(64), 0, labels, labels] += 3.0         # a learnable pattern: a bright pixel per class
    mg.manual_seed(0)
    losses, tests, _ = Shared().run(mnist_loop, minigan_modules(), train_set=(images, labels),
                                    test_set=(images, labels), out_dir=tmp_path, epochs=4)
    assert np.mean(losses[-8:]) < np.mean(losses[:8]) - 0.02
    assert tests[-1][0] < tests[0][0] and 0 <= tests[-1][1] <= 64
    assert (tmp_path / 'mnist_cnn.pt').exists()


def test_wgan_clipping_loop():
    shared = Shared()
    images = _images(12, channels=1, size=8)
    want = shared.run(wgan_loop, torch_modules(), images=images)
    got = shared.run(wgan_loop, minigan_modules(), images=images)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-7)


def test_wgan_gp_loop():
    import minigan
    shared = Shared()
    images = _images(12, channels=1, size=8)
    torch_ns = torch_modules()
    want = shared.run(wgan_gp_loop, torch_ns, autograd=torch_ns['torch'].autograd, images=images)
    got = shared.run(wgan_gp_loop, minigan_modules(), autograd=minigan.autograd, images=images)
    assert len(got) == len(want) == 4
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)

"""The reference models of spec/models.md against the same models built with torch.nn.Sequential.

Each torch twin below is written out from models.md independently of minigan.models:
state_dict keys and shapes must be equal, weights copy in both directions, and for one
batch of 4 the outputs, the input gradient, ALL parameter gradients and the batch-norm
running statistics agree (float64 rtol 1e-6, float32 rtol 1e-4), in train and in eval mode.
The no-BatchNorm critic's WGAN-GP penalty gradient (double backprop) is checked too.
"""
import numpy as np
import pytest

import minigan as mg
import minigan.models as models
from conftest import optional_torch, to_numpy

torch = optional_torch()        # None without PyTorch: the twins below are built only by tests that take
tnn = torch.nn if torch else None   # the `torch` fixture, which skips them, saying why, when it is missing


# ---------------------------------------------------------------------------------------------
# torch twins, layer by layer from spec/models.md (no bias where BatchNorm follows)
def torch_generator32(nz=100, ngf=64, nc=3):
    return tnn.Sequential(
        tnn.ConvTranspose2d(nz, 4 * ngf, 4, 1, 0, bias=False), tnn.BatchNorm2d(4 * ngf), tnn.ReLU(True),
        tnn.ConvTranspose2d(4 * ngf, 2 * ngf, 4, 2, 1, bias=False), tnn.BatchNorm2d(2 * ngf), tnn.ReLU(True),
        tnn.ConvTranspose2d(2 * ngf, ngf, 4, 2, 1, bias=False), tnn.BatchNorm2d(ngf), tnn.ReLU(True),
        tnn.ConvTranspose2d(ngf, nc, 4, 2, 1), tnn.Tanh())


def torch_discriminator32(nc=3, ndf=64, batch_norm=True):
    bn = (lambda c: [tnn.BatchNorm2d(c)]) if batch_norm else (lambda c: [])
    return tnn.Sequential(
        tnn.Conv2d(nc, ndf, 4, 2, 1), tnn.LeakyReLU(0.2, True),
        tnn.Conv2d(ndf, 2 * ndf, 4, 2, 1, bias=not batch_norm), *bn(2 * ndf), tnn.LeakyReLU(0.2, True),
        tnn.Conv2d(2 * ndf, 4 * ndf, 4, 2, 1, bias=not batch_norm), *bn(4 * ndf), tnn.LeakyReLU(0.2, True),
        tnn.Conv2d(4 * ndf, 1, 4, 1, 0))


def torch_generator64(nz=100, ngf=64, nc=3):
    return tnn.Sequential(
        tnn.ConvTranspose2d(nz, 8 * ngf, 4, 1, 0, bias=False), tnn.BatchNorm2d(8 * ngf), tnn.ReLU(True),
        tnn.ConvTranspose2d(8 * ngf, 4 * ngf, 4, 2, 1, bias=False), tnn.BatchNorm2d(4 * ngf), tnn.ReLU(True),
        tnn.ConvTranspose2d(4 * ngf, 2 * ngf, 4, 2, 1, bias=False), tnn.BatchNorm2d(2 * ngf), tnn.ReLU(True),
        tnn.ConvTranspose2d(2 * ngf, ngf, 4, 2, 1, bias=False), tnn.BatchNorm2d(ngf), tnn.ReLU(True),
        tnn.ConvTranspose2d(ngf, nc, 4, 2, 1), tnn.Tanh())


def torch_discriminator64(nc=3, ndf=64, batch_norm=True):
    bn = (lambda c: [tnn.BatchNorm2d(c)]) if batch_norm else (lambda c: [])
    return tnn.Sequential(
        tnn.Conv2d(nc, ndf, 4, 2, 1), tnn.LeakyReLU(0.2, True),
        tnn.Conv2d(ndf, 2 * ndf, 4, 2, 1, bias=not batch_norm), *bn(2 * ndf), tnn.LeakyReLU(0.2, True),
        tnn.Conv2d(2 * ndf, 4 * ndf, 4, 2, 1, bias=not batch_norm), *bn(4 * ndf), tnn.LeakyReLU(0.2, True),
        tnn.Conv2d(4 * ndf, 8 * ndf, 4, 2, 1, bias=not batch_norm), *bn(8 * ndf), tnn.LeakyReLU(0.2, True),
        tnn.Conv2d(8 * ndf, 1, 4, 1, 0))


def torch_classifier32(nc=3, n_classes=10):
    def block(i, o):
        return [tnn.Conv2d(i, o, 3, 1, 1, bias=False), tnn.BatchNorm2d(o), tnn.ReLU(True)]
    return tnn.Sequential(*block(nc, 32), *block(32, 32), tnn.MaxPool2d(2),
                          *block(32, 64), *block(64, 64), tnn.MaxPool2d(2),
                          *block(64, 128), tnn.MaxPool2d(2), tnn.Flatten(),
                          tnn.Linear(2048, 256), tnn.ReLU(True), tnn.Dropout(0.5), tnn.Linear(256, n_classes))


PAIRS = {   # name: (minigan constructor, torch constructor, input shape for batch 4)
    'G32': (lambda **k: models.Generator32(**k), torch_generator32, (4, 100, 1, 1)),
    'D32': (lambda **k: models.Discriminator32(**k), torch_discriminator32, (4, 3, 32, 32)),
    'critic32': (lambda **k: models.Discriminator32(batch_norm=False, **k),
                 lambda **k: torch_discriminator32(batch_norm=False, **k), (4, 3, 32, 32)),
    'G64': (lambda **k: models.Generator64(**k), torch_generator64, (4, 100, 1, 1)),
    'D64': (lambda **k: models.Discriminator64(**k), torch_discriminator64, (4, 3, 64, 64)),
    'classifier32': (lambda **k: models.Classifier32(**k), torch_classifier32, (4, 3, 32, 32)),
}


def randomise_bn(tmodel, gen):
    """Non-trivial batch-norm parameters and running statistics, so eval mode is a real test."""
    with torch.no_grad():
        for m in tmodel.modules():
            if isinstance(m, tnn.BatchNorm2d):
                m.weight.normal_(1.0, 0.2, generator=gen)
                m.bias.normal_(0.0, 0.2, generator=gen)
                m.running_mean.normal_(0.0, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)
                m.num_batches_tracked.fill_(7)


# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('kw', [{}, {'nc': 1}], ids=['default', 'nc1'])
@pytest.mark.parametrize('name', list(PAIRS))
def test_state_dict_keys_and_shapes_equal_torch(name, kw, torch):
    make_m, make_t, _ = PAIRS[name]
    if name == 'G32' or name == 'G64':
        kw = dict(kw, ngf=8)                # keeps construction fast; the layout is what is tested
    elif name != 'classifier32':
        kw = dict(kw, ndf=8)
    m, t = make_m(**kw), make_t(**kw)
    msd, tsd = m.state_dict(), t.state_dict()
    assert list(msd) == list(tsd)
    assert [msd[k].shape for k in msd] == [tuple(v.shape) for v in tsd.values()]
    assert [n for n, _ in m.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert [p.shape for p in m.parameters()] == [tuple(p.shape) for p in t.parameters()]
    # weights copy both ways
    m.load_state_dict({k: v.numpy() for k, v in tsd.items()})
    for k in tsd:
        np.testing.assert_array_equal(m.state_dict()[k], tsd[k].numpy())
    m2 = make_m(**kw)
    t.load_state_dict({k: torch.from_numpy(v) for k, v in m2.state_dict().items()})
    for k, v in m2.state_dict().items():
        np.testing.assert_array_equal(t.state_dict()[k].numpy(), v)


def test_default_sizes():
    g, d = models.Generator32(), models.Discriminator32()
    assert g[0].weight.shape == (100, 256, 4, 4) and g[9].weight.shape == (64, 3, 4, 4)
    assert d[0].weight.shape == (64, 3, 4, 4) and d[8].weight.shape == (1, 256, 4, 4)
    critic = models.Critic32(nc=1)
    assert not any('BatchNorm' in type(m).__name__ for m in critic.modules())
    with mg.no_grad():
        assert g(mg.randn(2, 100, 1, 1)).shape == (2, 3, 32, 32) and d(mg.randn(2, 3, 32, 32)).shape == (2, 1, 1, 1)


def test_repr_equals_torchs(torch):
    g = models.Generator32()
    def body(r):                     # the layer list, without the class name on the first line
        return r.split('\n', 1)[1]
    assert repr(g).startswith('Generator32(') and body(repr(g)) == body(repr(torch_generator32()))
    assert body(repr(models.Classifier32())) == body(repr(torch_classifier32()))
    critic = models.Critic32(nc=1)
    assert not any('BatchNorm' in type(m).__name__ for m in critic.modules())
    assert body(repr(critic)) == body(repr(torch_discriminator32(nc=1, batch_norm=False)))


def _compare(name, mode, dtype, device, direction, rtol, kw=None):
    kw = kw or {}
    make_m, make_t, shape = PAIRS[name]
    gen = torch.Generator().manual_seed(11)
    torch.manual_seed(11)
    mg.manual_seed(11)
    t = make_t(**kw).to(torch.float64 if dtype == np.float64 else torch.float32)
    m = make_m(**kw).to(dtype)
    if direction == 'torch->minigan':
        randomise_bn(t, gen)
        m.load_state_dict({k: v.numpy() for k, v in t.state_dict().items()})
    else:
        rng = np.random.default_rng(12)
        with mg.no_grad():
            for mod in m.modules():
                if type(mod).__name__ == 'BatchNorm2d':
                    mod.weight.array[...] = rng.normal(1.0, 0.2, mod.weight.shape)
                    mod.bias.array[...] = rng.normal(0.0, 0.2, mod.bias.shape)
                    mod.running_mean.array[...] = rng.normal(0.0, 0.1, mod.running_mean.shape)
                    mod.running_var.array[...] = rng.uniform(0.5, 1.5, mod.running_var.shape)
        t.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    m.to(device)
    m.train(mode == 'train')
    t.train(mode == 'train')
    if name == 'classifier32':          # dropout masks are random: compare with dropout off, BN in `mode`
        m[21].eval()
        t[21].eval()
    rng = np.random.default_rng(13)
    x_np = rng.standard_normal(shape).astype(dtype)
    if name.startswith('D') or name.startswith('critic') or name.startswith('classifier'):
        x_np = np.tanh(x_np)            # images in [-1, 1]
    x = mg.tensor(x_np, requires_grad=True, device=device)
    tx = torch.tensor(x_np, requires_grad=True)
    y, ty = m(x), t(tx)
    assert y.shape == tuple(ty.shape)
    floor = 1e-2 if dtype == np.float64 else 1e-1
    atol = rtol * float(np.abs(to_numpy(ty)).max()) * floor
    np.testing.assert_allclose(to_numpy(y), to_numpy(ty), rtol=rtol, atol=atol, err_msg='output')
    cot = rng.standard_normal(ty.shape).astype(dtype)
    (y * mg.tensor(cot, device=device)).sum().backward()
    (ty * torch.from_numpy(cot)).sum().backward()

    def close(a, b, what):            # float32 sums over thousands of terms: an absolute floor too
        b = to_numpy(b)
        np.testing.assert_allclose(to_numpy(a), b, rtol=rtol, atol=rtol * float(np.abs(b).max()) * floor,
                                   err_msg=what)
    close(x.grad, tx.grad, 'input gradient')
    tparams = dict(t.named_parameters())
    mparams = dict(m.named_parameters())
    assert list(mparams) == list(tparams)
    for k, p in mparams.items():
        assert p.grad is not None, k
        close(p.grad, tparams[k].grad, f'gradient of {k}')
    tbufs = dict(t.named_buffers())
    for k, b in m.named_buffers():
        close(b, tbufs[k], f'buffer {k} after the {mode}-mode forward')


@pytest.mark.parametrize('mode', ['train', 'eval'])
@pytest.mark.parametrize('name,direction', [('G32', 'torch->minigan'), ('D32', 'minigan->torch'),
                                            ('critic32', 'torch->minigan'), ('classifier32', 'torch->minigan')])
def test_model_matches_torch_float64(name, direction, mode, device, torch):
    _compare(name, mode, np.float64, device, direction, 1e-6)


@pytest.mark.parametrize('name', ['G32', 'D32', 'classifier32'])
def test_model_matches_torch_float32(name, device, torch):
    _compare(name, 'train', np.float32, device, 'torch->minigan', 1e-4)


@pytest.mark.parametrize('name', ['G64', 'D64'])
def test_dcgan64_matches_torch_float64(name, torch):
    _compare(name, 'train', np.float64, 'cpu', 'minigan->torch', 1e-6,
             kw={'ngf': 8} if name == 'G64' else {'ndf': 8})


def _gradient_penalty(lib, critic, real, fake, alpha):
    """((||d critic(x_hat) / d x_hat||_2 over C*H*W per sample - 1)^2).mean(); x_hat on the segment."""
    x_hat = real + alpha * (fake - real)
    if lib is torch:
        x_hat = x_hat.detach().requires_grad_(True)
        out = critic(x_hat)
        g, = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    else:
        x_hat = x_hat.detach().requires_grad_()
        out = critic(x_hat)
        g, = mg.grad([out.sum()], [x_hat], create_graph=True)
    norms = ((g * g).reshape(g.shape[0], -1).sum(1) + 1e-12).sqrt()
    return ((norms - 1) ** 2).mean()


def test_wgan_gp_penalty_gradient_matches_torch(device, torch):
    """Double backprop through the no-BatchNorm critic: d GP / d weights equals torch's."""
    mg.manual_seed(21)
    critic = models.Critic32(nc=3, ndf=16).to(device, np.float64)
    t = torch_discriminator32(nc=3, ndf=16, batch_norm=False).double()
    t.load_state_dict({k: torch.from_numpy(v) for k, v in critic.state_dict().items()})
    rng = np.random.default_rng(22)
    real = np.tanh(rng.standard_normal((4, 3, 32, 32)))
    fake = np.tanh(rng.standard_normal((4, 3, 32, 32)))
    alpha = rng.uniform(size=(4, 1, 1, 1))
    gp = _gradient_penalty(mg, critic, *(mg.tensor(a, device=device) for a in (real, fake, alpha)))
    tgp = _gradient_penalty(torch, t, *(torch.from_numpy(a) for a in (real, fake, alpha)))
    np.testing.assert_allclose(float(gp.item()), float(tgp.item()), rtol=1e-6)
    assert tgp.item() > 1e-3                   # the penalty is not trivially zero
    gp.backward()
    tgp.backward()
    tparams = dict(t.named_parameters())
    for k, p in critic.named_parameters():
        tg = to_numpy(tparams[k].grad)
        if k.endswith('bias'):             # the critic is piecewise linear in x: biases get no penalty gradient
            assert tg is None or np.all(tg == 0), k     # (zeros, or None where no path leads to it)
            assert p.grad is None or np.all(to_numpy(p.grad) == 0), k
            continue
        assert np.abs(tg).max() > 0, k
        np.testing.assert_allclose(to_numpy(p.grad), tg, rtol=1e-6, atol=1e-8 * np.abs(tg).max(),
                                   err_msg=f'penalty gradient of {k}')


def test_weights_init_distribution():
    mg.manual_seed(31)
    g = models.Generator32()
    convs = np.concatenate([g[i].weight.numpy().ravel() for i in (0, 3, 6, 9)]).astype(np.float64)
    assert abs(convs.mean()) < 5 * 0.02 / np.sqrt(convs.size)
    assert abs(convs.std() - 0.02) < 0.02 * 0.01
    gammas = np.concatenate([g[i].weight.numpy() for i in (1, 4, 7)]).astype(np.float64)
    assert abs(gammas.mean() - 1) < 5 * 0.02 / np.sqrt(gammas.size)
    assert abs(gammas.std() - 0.02) < 0.02 * 0.15
    assert all(np.all(g[i].bias.numpy() == 0) for i in (1, 4, 7))
    mg.manual_seed(31)
    np.testing.assert_array_equal(models.Generator32()[0].weight.numpy(), g[0].weight.numpy())
    # dcgan_init=False keeps PyTorch's default initialisation
    plain = models.Discriminator32(dcgan_init=False)
    assert np.all(plain[3].weight.numpy() == 1)
    assert np.abs(plain[0].weight.numpy()).max() <= 1 / np.sqrt(3 * 16) + 1e-7


@pytest.mark.parametrize('make,shape,match', [
    (lambda: models.Discriminator32(), (2, 3, 64, 64), r'\(B, 3, 32, 32\)'),
    (lambda: models.Discriminator64(nc=1, ndf=8), (2, 3, 64, 64), r'\(B, 1, 64, 64\)'),
    (lambda: models.Generator32(nz=10, ngf=8), (2, 100, 1, 1), r'\(B, 10, 1, 1\)'),
    (lambda: models.Classifier32(nc=1), (2, 3, 32, 32), r'\(B, 1, 32, 32\)'),
])
def test_wrong_input_shape_raises(make, shape, match):
    with pytest.raises(ValueError, match=match):
        make()(mg.randn(*shape))


def test_generator_accepts_flat_noise():
    mg.manual_seed(41)
    g = models.Generator32(nz=8, ngf=4, nc=1).eval()
    z = mg.randn(2, 8)
    np.testing.assert_array_equal(g(z).numpy(), g(z.reshape(2, 8, 1, 1)).numpy())
    assert g(z).shape == (2, 1, 32, 32)

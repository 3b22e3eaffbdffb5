"""The DCGAN generators and discriminators of spec/models.md, as nn.Sequential.

Each model is an nn.Sequential, so its state_dict keys ("0.weight", "1.running_mean",
...) and shapes equal those of the torch.nn.Sequential built from the same layer list,
and weights copy across in either direction. Convolutions followed by BatchNorm have
no bias; the others (the discriminator's first and last, the generator's last, and
every conv of the no-BatchNorm WGAN-GP critic) have one.

The discriminator returns raw logits of shape (B, 1, 1, 1): there is no sigmoid
inside (use F.binary_cross_entropy_with_logits); ``out.reshape(-1)`` gives (B,).
"""
from .. import nn
from ..nn import init


def weights_init(m):
    """The DCGAN initialisation: conv weights ~ N(0, 0.02); BatchNorm gamma ~ N(1, 0.02), beta = 0.

    Use as ``model.apply(weights_init)`` (the models below do it when dcgan_init=True).
    Conv biases, where present, keep their default initialisation."""
    name = type(m).__name__
    if 'Conv' in name and getattr(m, 'weight', None) is not None:
        init.normal_(m.weight, 0.0, 0.02)
    elif 'BatchNorm' in name and getattr(m, 'weight', None) is not None:
        init.normal_(m.weight, 1.0, 0.02)
        if m.bias is not None:
            init.zeros_(m.bias)


def _generator_layers(nz, ngf, nc, n_up):
    """ConvT(nz, m ngf, 4, 1, 0) BN ReLU, then n_up ConvT(., ., 4, 2, 1) halving channels to nc, Tanh."""
    mult = 2 ** (n_up - 1)
    layers = [nn.ConvTranspose2d(nz, ngf * mult, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * mult), nn.ReLU(True)]
    for _ in range(n_up - 1):
        layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 4, 2, 1, bias=False),
                   nn.BatchNorm2d(ngf * mult // 2), nn.ReLU(True)]
        mult //= 2
    layers += [nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=True), nn.Tanh()]
    return layers


def _discriminator_layers(nc, ndf, n_down, batch_norm):
    """Conv(nc, ndf, 4, 2, 1) LReLU, then n_down - 1 Conv(., ., 4, 2, 1) doubling [BN] LReLU, Conv(., 1, 4, 1, 0)."""
    layers = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=True), nn.LeakyReLU(0.2, True)]
    mult = 1
    for _ in range(n_down - 1):
        layers.append(nn.Conv2d(ndf * mult, ndf * mult * 2, 4, 2, 1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(ndf * mult * 2))
        layers.append(nn.LeakyReLU(0.2, True))
        mult *= 2
    layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 0, bias=True))
    return layers


def _check_sizes(**sizes):
    for name, v in sizes.items():
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ValueError(f'{name} must be a positive int, got {v!r}')


class _Generator(nn.Sequential):
    image_size = None
    _n_up = None

    def __init__(self, nz=100, ngf=64, nc=3, dcgan_init=True):
        _check_sizes(nz=nz, ngf=ngf, nc=nc)
        super().__init__(*_generator_layers(nz, ngf, nc, self._n_up))
        self.nz, self.ngf, self.nc = nz, ngf, nc
        if dcgan_init:
            self.apply(weights_init)

    def forward(self, z):
        """z: (B, nz, 1, 1) or (B, nz) -> images (B, nc, S, S) in [-1, 1]."""
        if z.ndim == 2:
            z = z.reshape(z.shape + (1, 1))
        if z.ndim != 4 or z.shape[1:] != (self.nz, 1, 1):
            raise ValueError(f'{type(self).__name__} takes noise of shape (B, {self.nz}, 1, 1) or (B, {self.nz}), '
                             f'got {z.shape}')
        return super().forward(z)


class _Discriminator(nn.Sequential):
    image_size = None
    _n_down = None

    def __init__(self, nc=3, ndf=64, batch_norm=True, dcgan_init=True):
        _check_sizes(nc=nc, ndf=ndf)
        super().__init__(*_discriminator_layers(nc, ndf, self._n_down, batch_norm))
        self.nc, self.ndf, self.batch_norm = nc, ndf, batch_norm
        if dcgan_init:
            self.apply(weights_init)

    def forward(self, x):
        """x: (B, nc, S, S) images -> logits (B, 1, 1, 1)."""
        s = self.image_size
        if x.ndim != 4 or x.shape[1:] != (self.nc, s, s):
            raise ValueError(f'{type(self).__name__} takes images of shape (B, {self.nc}, {s}, {s}), got {x.shape}')
        return super().forward(x)


class Generator32(_Generator):
    """DCGAN-32 generator: z (B, nz, 1, 1) -> (B, nc, 32, 32).
    ConvT(nz, 4ngf, 4, 1, 0) BN ReLU, ConvT(4ngf, 2ngf) BN ReLU, ConvT(2ngf, ngf) BN ReLU,
    ConvT(ngf, nc) Tanh (the last three 4, 2, 1)."""
    image_size, _n_up = 32, 3


class Generator64(_Generator):
    """DCGAN-64 generator (the DCGAN paper's): z -> (B, nc, 64, 64), channels 8ngf -> 4ngf -> 2ngf -> ngf -> nc."""
    image_size, _n_up = 64, 4


class Discriminator32(_Discriminator):
    """DCGAN-32 discriminator / critic: (B, nc, 32, 32) -> logits (B, 1, 1, 1).
    Conv(nc, ndf) LReLU(0.2), Conv(ndf, 2ndf) BN LReLU, Conv(2ndf, 4ndf) BN LReLU (all 4, 2, 1),
    Conv(4ndf, 1, 4, 1, 0). batch_norm=False gives the WGAN-GP critic (the penalty is per sample)."""
    image_size, _n_down = 32, 3


class Discriminator64(_Discriminator):
    """DCGAN-64 discriminator: (B, nc, 64, 64) -> logits (B, 1, 1, 1), channels ndf -> 2ndf -> 4ndf -> 8ndf -> 1."""
    image_size, _n_down = 64, 4


def Critic32(nc=3, ndf=64, dcgan_init=True):
    """The WGAN-GP critic: Discriminator32 without BatchNorm."""
    return Discriminator32(nc, ndf, batch_norm=False, dcgan_init=dcgan_init)


def Critic64(nc=3, ndf=64, dcgan_init=True):
    """Discriminator64 without BatchNorm."""
    return Discriminator64(nc, ndf, batch_norm=False, dcgan_init=dcgan_init)

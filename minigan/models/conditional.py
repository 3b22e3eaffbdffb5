"""Conditional DCGAN-32/64: the generator is told the class, the discriminator judges (image, class).

Generator: a learned class embedding joined to z. The DCGAN generator stays as it is and
only its input grows from nz to nz + embed_dim channels; with tens of classes this is enough,
and it keeps BatchNorm's running statistics shared by all classes (class-conditional
BatchNorm would need a table of gammas and betas per layer, more code for the same job here).
The class vectors start small, N(0, 0.1^2) per entry against z's N(0, 1): drawn like z, the
class carried as much of the input as the noise, and G learned to ignore z, drawing one image
per class within 100 steps (bench/RESULTS.md, "Conditional GANs").

Discriminator, two kinds (train --cond-d):
- projection (the default; Miyato and Koyama, 2018):
    D(x, y) = psi(phi(x)) + <embed(y), sum over pixels of phi(x)>
  phi is the DCGAN discriminator up to its last conv, psi that last conv. The class enters as one
  inner product, so the output stays one logit per example: the DCGAN, RaLSGAN and WGAN losses
  apply unchanged, and the WGAN-GP penalty stays per example with its double backprop.
- acgan (Odena et al., 2017): D(x) is the unconditional logit, and a second head on phi(x)
  classifies the image; both players also minimise its cross-entropy on the classes the fakes
  were drawn for (the discriminator on real images too). The penalty is taken on the logit alone.
The projection discriminator is the default because it was measured better here
(bench/RESULTS.md, "Conditional GANs") and asks nothing of the losses.
"""
from .. import functional as F
from .. import nn
from .dcgan import _discriminator_layers, _generator_layers, _check_sizes, weights_init


EMBED_STD = 0.1        # the generator's class vectors at the start, next to z ~ N(0, 1)


class ConditionalGenerator(nn.Module):
    """z (B, nz[, 1, 1]) and labels (B,) int64 -> images (B, nc, S, S), S = 32 or 64."""

    def __init__(self, num_classes, nz=100, ngf=64, nc=3, image_size=32, embed_dim=None, dcgan_init=True):
        super().__init__()
        embed_dim = nz if embed_dim is None else embed_dim
        _check_sizes(num_classes=num_classes, nz=nz, ngf=ngf, nc=nc, embed_dim=embed_dim)
        if image_size not in (32, 64):
            raise ValueError(f'ConditionalGenerator makes 32x32 or 64x64 images, not {image_size}')
        self.num_classes, self.nz, self.nc, self.image_size = num_classes, nz, nc, image_size
        self.embed = nn.Embedding(num_classes, embed_dim)
        self.net = nn.Sequential(*_generator_layers(nz + embed_dim, ngf, nc, 3 if image_size == 32 else 4))
        if dcgan_init:
            self.net.apply(weights_init)
            nn.init.normal_(self.embed.weight, 0.0, EMBED_STD)

    def forward(self, z, labels):
        if z.ndim == 4:
            z = z.reshape(z.shape[:2])
        if z.ndim != 2 or z.shape[1] != self.nz:
            raise ValueError(f'ConditionalGenerator takes noise of shape (B, {self.nz}), got {z.shape}')
        _check_labels(labels, z.shape[0], self.num_classes)
        h = F.cat([z, self.embed(labels).to(dtype=z.dtype)], dim=1)      # [z, e(y)]
        return self.net(h.reshape(h.shape + (1, 1)))


class ProjectionDiscriminator(nn.Module):
    """(images (B, nc, S, S), labels (B,)) -> logits (B, 1, 1, 1); batch_norm=False for WGAN-GP."""

    def __init__(self, num_classes, nc=3, ndf=64, image_size=32, batch_norm=True, dcgan_init=True):
        super().__init__()
        _check_sizes(num_classes=num_classes, nc=nc, ndf=ndf)
        if image_size not in (32, 64):
            raise ValueError(f'ProjectionDiscriminator judges 32x32 or 64x64 images, not {image_size}')
        layers = _discriminator_layers(nc, ndf, 3 if image_size == 32 else 4, batch_norm)
        self.num_classes, self.nc, self.image_size = num_classes, nc, image_size
        self.features = nn.Sequential(*layers[:-1])                  # phi
        self.head = layers[-1]                                       # psi: Conv(., 1, 4, 1, 0)
        self.embed = nn.Embedding(num_classes, self.head.in_channels)
        if dcgan_init:
            self.apply(weights_init)
            nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, x, labels):
        s = self.image_size
        if x.ndim != 4 or x.shape[1:] != (self.nc, s, s):
            raise ValueError(f'ProjectionDiscriminator takes images of shape (B, {self.nc}, {s}, {s}), '
                             f'got {x.shape}')
        _check_labels(labels, x.shape[0], self.num_classes)
        h = self.features(x)
        projection = (self.embed(labels).to(dtype=h.dtype) * h.sum(axis=(2, 3))).sum(axis=1)
        return self.head(h) + projection.reshape(-1, 1, 1, 1)


class ACGANDiscriminator(nn.Module):
    """images (B, nc, S, S) -> logits (B, 1, 1, 1); classify(images) -> (logits, class logits (B, K)).
    forward takes the labels too, like the projection discriminator, and ignores them."""

    def __init__(self, num_classes, nc=3, ndf=64, image_size=32, batch_norm=True, dcgan_init=True):
        super().__init__()
        _check_sizes(num_classes=num_classes, nc=nc, ndf=ndf)
        if image_size not in (32, 64):
            raise ValueError(f'ACGANDiscriminator judges 32x32 or 64x64 images, not {image_size}')
        layers = _discriminator_layers(nc, ndf, 3 if image_size == 32 else 4, batch_norm)
        self.num_classes, self.nc, self.image_size = num_classes, nc, image_size
        self.features = nn.Sequential(*layers[:-1])                  # phi
        self.head = layers[-1]                                       # real or fake
        self.classes = nn.Conv2d(self.head.in_channels, num_classes, 4, 1, 0)   # which class
        if dcgan_init:
            self.apply(weights_init)

    def classify(self, x):
        s = self.image_size
        if x.ndim != 4 or x.shape[1:] != (self.nc, s, s):
            raise ValueError(f'ACGANDiscriminator takes images of shape (B, {self.nc}, {s}, {s}), got {x.shape}')
        h = self.features(x)
        return self.head(h), self.classes(h).reshape(x.shape[0], self.num_classes)

    def forward(self, x, labels=None):
        if labels is not None:
            _check_labels(labels, x.shape[0], self.num_classes)
        return self.classify(x)[0]


def _check_labels(labels, batch, num_classes):
    if labels.ndim != 1 or labels.shape[0] != batch:
        raise ValueError(f'labels must have shape ({batch},), one class per example, got {labels.shape}')
    if labels.dtype.kind not in 'iu':
        raise TypeError(f'labels must be integers (int64), got {labels.dtype}')
    lo, hi = int(labels.array.min()), int(labels.array.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(f'labels must lie in [0, {num_classes - 1}], got values from {lo} to {hi}')

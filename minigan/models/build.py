"""The networks of a run, built by name from its config (config.json's image_size, nz, ngf, ndf, model).

    G = build_generator(cfg, nc=3)            # DCGAN-32 or DCGAN-64, from cfg['image_size']
    D = build_discriminator(cfg, nc=3)        # the WGAN-GP critic (no batch norm) when cfg['model'] == 'wgan-gp'
    net = build_classifier(cfg, nc=3, n_classes=10)

With cfg['conditional'] the GAN networks take the class too (conditional.py; cfg['cond_d'] picks
the projection or the AC-GAN discriminator), given num_classes, the number of classes of the run's data.

Building a network draws its initial weights from minigan's random state.
"""
from .classifier import Classifier32
from .conditional import ACGANDiscriminator, ConditionalGenerator, ProjectionDiscriminator
from .dcgan import Discriminator32, Discriminator64, Generator32, Generator64
from .srresnet import SRDiscriminator, SRResNet


def build_generator(cfg, nc, num_classes=None):
    """DCGAN-32 or DCGAN-64 generator: z of length cfg['nz'] -> nc x S x S images in [-1, 1]."""
    if cfg.get('conditional'):
        return ConditionalGenerator(num_classes, nz=cfg['nz'], ngf=cfg['ngf'], nc=nc, image_size=cfg['image_size'])
    cls = Generator32 if cfg['image_size'] == 32 else Generator64
    return cls(nz=cfg['nz'], ngf=cfg['ngf'], nc=nc)


def build_discriminator(cfg, nc, num_classes=None):
    """DCGAN-32 or DCGAN-64 discriminator; without batch norm for WGAN-GP, whose penalty is per example."""
    if cfg.get('conditional'):
        cls = ACGANDiscriminator if cfg.get('cond_d') == 'acgan' else ProjectionDiscriminator
        return cls(num_classes, nc=nc, ndf=cfg['ndf'], image_size=cfg['image_size'],
                   batch_norm=cfg['model'] != 'wgan-gp')
    cls = Discriminator32 if cfg['image_size'] == 32 else Discriminator64
    return cls(nc=nc, ndf=cfg['ndf'], batch_norm=cfg['model'] != 'wgan-gp')


def build_classifier(cfg, nc, n_classes):
    """classifier-32 (the only classifier size there is; cfg is taken for symmetry with the others)."""
    return Classifier32(nc=nc, n_classes=n_classes)


def build_upscaler(cfg, nc):
    """The SRResNet of a super-resolution run: upscales by cfg['scale'] (2 or 4), learning the
    difference from bilinear upscaling."""
    return SRResNet(scale=cfg['scale'], nc=nc, channels=cfg['sr_channels'], blocks=cfg['sr_blocks'],
                    bilinear_skip=True)


def build_sr_discriminator(cfg, nc):
    """SRGAN's discriminator, for a super-resolution run with cfg['adversarial']."""
    return SRDiscriminator(nc=nc, channels=cfg['sr_channels'])

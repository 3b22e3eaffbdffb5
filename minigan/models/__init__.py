"""The reference models of spec/models.md (DCGAN-32/64, the WGAN-GP critic, classifier-32),
and the builders that make them from a run's config."""
from .dcgan import (Generator32, Discriminator32, Generator64, Discriminator64,  # noqa: F401
                    Critic32, Critic64, weights_init)
from .classifier import Classifier32  # noqa: F401
from .build import (build_classifier, build_discriminator, build_generator, build_sr_discriminator,  # noqa: F401
                    build_upscaler)
from .conditional import ACGANDiscriminator, ConditionalGenerator, ProjectionDiscriminator  # noqa: F401
from .srresnet import SRResNet, SRDiscriminator  # noqa: F401

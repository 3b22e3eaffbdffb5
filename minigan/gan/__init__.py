"""GAN training: the losses (dcgan, ralsgan, wgan, wgan-gp) and one training step per algorithm."""
from . import losses  # noqa: F401
from .losses import gradient_penalty  # noqa: F401
from .trainer import GANTrainer, ClassifierTrainer, NonFiniteLoss, wgan_critic_iters  # noqa: F401

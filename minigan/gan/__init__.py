"""GAN training: the losses (dcgan, ralsgan, wgan, wgan-gp), one training step per algorithm
(trainer.py, with the classifier's step beside them) and drawing samples from a generator (sampling.py)."""
from . import losses  # noqa: F401
from .losses import gradient_penalty  # noqa: F401
from .trainer import GANTrainer, ClassifierTrainer, NonFiniteLoss, wgan_critic_iters  # noqa: F401

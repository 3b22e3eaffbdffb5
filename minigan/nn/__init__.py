"""minigan.nn: layers and models as Modules, with PyTorch's names, weight layouts and init."""
from .module import Module, Parameter  # noqa: F401
from .containers import Sequential, ModuleList  # noqa: F401
from .linear import Linear, Identity  # noqa: F401
from .conv import Conv2d, ConvTranspose2d  # noqa: F401
from .batchnorm import BatchNorm1d, BatchNorm2d  # noqa: F401
from .activation import ReLU, LeakyReLU, PReLU, Tanh, Sigmoid, Softmax, LogSoftmax  # noqa: F401
from .resample import PixelShuffle, PixelUnshuffle, Upsample  # noqa: F401
from .embedding import Embedding  # noqa: F401
from .dropout import Dropout, Dropout2d  # noqa: F401
from .pooling import MaxPool2d, AvgPool2d  # noqa: F401
from .flatten import Flatten, Unflatten  # noqa: F401
from .loss import (L1Loss, MSELoss, BCELoss, BCEWithLogitsLoss, NLLLoss,  # noqa: F401
                   CrossEntropyLoss)
from . import init, functional, utils  # noqa: F401

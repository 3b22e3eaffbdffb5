"""minigan.nn.functional: PyTorch's name for minigan.functional (the same functions)."""
from minigan.functional import *  # noqa: F401,F403
from minigan.functional import (conv2d, conv_transpose2d, linear, batch_norm,  # noqa: F401
                                relu, leaky_relu, tanh, sigmoid, dropout, max_pool2d, avg_pool2d,
                                softmax, log_softmax, cross_entropy, binary_cross_entropy_with_logits,
                                mse_loss)
import minigan.functional as _F


def __getattr__(name):          # anything else minigan.functional defines (private helpers, later ops)
    try:
        return getattr(_F, name)
    except AttributeError:
        raise AttributeError(f'minigan.nn.functional has no attribute {name!r}') from None


def __dir__():
    return sorted(set(globals()) | set(dir(_F)))

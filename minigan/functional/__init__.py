"""minigan.functional: every differentiable op, one Function each.
(minigan.nn.functional is the same module under PyTorch's name.)"""
from .shape import (reshape, permute, broadcast_to, sum_to, getitem, cat, stack,  # noqa: F401
                    flatten, squeeze, unsqueeze)
from .math import (add, sub, mul, div, neg, pow, exp, log, sqrt, abs, clamp,  # noqa: F401
                   cast, to_device, matmul)
from .reduce import sum, mean, max, min, var  # noqa: F401
from .conv import conv2d, conv_transpose2d  # noqa: F401
from .pool import max_pool2d, avg_pool2d  # noqa: F401
from .linear import linear  # noqa: F401
from .activation import (relu, leaky_relu, tanh, sigmoid, softplus, logsigmoid, log1p,  # noqa: F401
                         softmax, log_softmax, dropout, dropout2d, prelu)
from .norm import batch_norm  # noqa: F401
from .loss import (cross_entropy, nll_loss, binary_cross_entropy_with_logits,  # noqa: F401
                   binary_cross_entropy, mse_loss, l1_loss)
from .select import where, masked_fill, one_hot  # noqa: F401
from .resample import pixel_shuffle, pixel_unshuffle, interpolate  # noqa: F401
from .embedding import embedding  # noqa: F401

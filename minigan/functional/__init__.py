"""minigan.functional: every differentiable op, one Function each.
(minigan.nn.functional is the same module under PyTorch's name.)"""
from .shape import (reshape, permute, broadcast_to, sum_to, getitem, cat, stack,  # noqa: F401
                    flatten, squeeze, unsqueeze)
from .math import (add, sub, mul, div, neg, pow, exp, log, sqrt, abs, clamp,  # noqa: F401
                   cast, to_device, matmul)
from .reduce import sum, mean, max, min, var  # noqa: F401

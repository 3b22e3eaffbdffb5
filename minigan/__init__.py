"""minigan: a from-scratch deep-learning engine over NumPy and CuPy, for GANs."""
__version__ = '0.1.0'

# the core first: tensor.py imports autograd and the ops at its end (see the comment there)
from .tensor import Tensor, tensor, as_tensor  # noqa: F401
from .autograd import no_grad, enable_grad, set_grad_enabled, is_grad_enabled, grad, Function  # noqa: F401
from .functional import cat, stack  # noqa: F401
from .random import (manual_seed, randn, rand, randint, zeros, ones, full,  # noqa: F401
                     zeros_like, ones_like, randn_like)
from .gradcheck import gradcheck, gradgradcheck, GradcheckError  # noqa: F401
from .graph_dot import graph  # noqa: F401
from .backend import cuda_available  # noqa: F401
from .dispatch import set_conv_backend, get_conv_backend, conv_backend, available_backends  # noqa: F401
from .cpu_ext import set_num_threads, get_num_threads  # noqa: F401

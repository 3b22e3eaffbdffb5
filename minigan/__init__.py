"""minigan: a from-scratch deep-learning engine over NumPy and CuPy, for GANs."""
__version__ = '0.1.0'

from .autograd import no_grad, enable_grad, set_grad_enabled, is_grad_enabled, grad, Function  # noqa: F401
from .tensor import Tensor, tensor, as_tensor  # noqa: F401
from .functional import cat, stack  # noqa: F401
from .random import (manual_seed, randn, rand, randint, zeros, ones, full,  # noqa: F401
                     zeros_like, ones_like, randn_like)
from .gradcheck import gradcheck, gradgradcheck, GradcheckError  # noqa: F401
from .backend import cuda_available  # noqa: F401
from .kernel_table import (set_kernel_backend, get_kernel_backend, kernel_backend, tune,  # noqa: F401
                      available_backends, set_conv_backend, get_conv_backend, conv_backend)
from .cpu_ext import set_num_threads, get_num_threads  # noqa: F401

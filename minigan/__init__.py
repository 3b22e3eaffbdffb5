"""minigan: a from-scratch deep-learning engine over NumPy and CuPy, for GANs."""
__version__ = '0.1.0'

# the core first: tensor.py imports autograd and the ops at its end (see the comment there)
from .tensor import Tensor, tensor, as_tensor  # noqa: F401
from .autograd import no_grad, enable_grad, set_grad_enabled, is_grad_enabled, grad, Function  # noqa: F401
from .functional import cat, stack  # noqa: F401
from .random import (manual_seed, randn, rand, randint, zeros, ones, full, empty,  # noqa: F401
                     zeros_like, ones_like, randn_like, rand_like, full_like, empty_like, Generator,
                     randperm, arange, linspace, eye)
from .gradcheck import gradcheck, gradgradcheck, GradcheckError  # noqa: F401
from .graph_dot import graph  # noqa: F401
from .backend import cuda_available  # noqa: F401
from .kernel_table import (set_kernel_backend, get_kernel_backend, kernel_backend, tune,  # noqa: F401
                      available_backends, set_conv_backend, get_conv_backend, conv_backend)
from .cpu_ext import set_num_threads, get_num_threads  # noqa: F401

# PyTorch's everyday names (dtype objects, devices, torch.* functions, save/load)
from .dtypes import (float16, half, float32, float, float64, double, uint8, int8, int16, short,  # noqa: F401,E402
                     int32, int, int64, long, bool, get_default_dtype, is_floating_point)
from .device import device  # noqa: F401,E402
from . import cuda  # noqa: F401,E402
from .functional import where  # noqa: F401,E402
from .torch_functions import (flatten, exp, log, sqrt, abs, neg, tanh, sigmoid, relu,  # noqa: F401,E402
                              add, sub, mul, div, pow, matmul, mm, softmax, log_softmax, squeeze,
                              unsqueeze, clamp, sum, mean, argmax, reshape, transpose, permute, numel,
                              is_tensor, max, min)
from .legacy import (FloatTensor, DoubleTensor, HalfTensor, LongTensor, IntTensor,  # noqa: F401,E402
                     ByteTensor, BoolTensor)
from . import autograd  # noqa: F401,E402
from .serialization import save, load  # noqa: F401,E402
# so that torch.nn, torch.optim, torch.utils.data work after `import minigan as torch`
from . import backends, functional, nn, optim, utils  # noqa: F401,E402

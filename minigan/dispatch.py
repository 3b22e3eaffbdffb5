"""The old name of the kernel-backend switch, kept for code written against it: see kernel_table.py."""
from .kernel_table import (available_backends, available_gpu_backends, conv_backend, get_conv_backend,  # noqa: F401
                      set_conv_backend)

"""dtype objects under PyTorch's names: they are NumPy dtypes, so `x.dtype == mg.float32`,
`dtype=mg.int64` on any factory and `x.to(mg.float64)` all work, and NumPy code reads them too."""
import numpy as np

float16 = half = np.dtype('float16')
float32 = np.dtype('float32')
float64 = double = np.dtype('float64')
uint8 = np.dtype('uint8')
int8 = np.dtype('int8')
int16 = short = np.dtype('int16')
int32 = np.dtype('int32')
int64 = long = np.dtype('int64')
bool_ = np.dtype('bool')

# PyTorch's builtin-shadowing aliases; defined last, so nothing in this file reads the shadowed names
float = float32  # noqa: A001
int = int32      # noqa: A001
bool = bool_     # noqa: A001


def get_default_dtype():
    """The dtype of tensors made from Python floats and of float factories: float32, as in PyTorch."""
    return float32


def is_floating_point(x):
    return x.dtype.kind == 'f'

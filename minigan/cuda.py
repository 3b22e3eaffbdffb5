"""mg.cuda: the few torch.cuda calls training scripts make.

minigan draws every random number on the host from one generator, so mg.manual_seed
already fixes what a GPU run draws: the seeding calls here do nothing."""
from . import backend
from .legacy import LegacyTensorType


def is_available():
    """True when CuPy is installed and sees a GPU."""
    return backend.cuda_available()


def device_count():
    return backend.cupy_or_raise().cuda.runtime.getDeviceCount() if is_available() else 0


def current_device():
    return 0


def synchronize():
    """Wait for every queued GPU kernel to finish (for timing); nothing to wait for without a GPU."""
    if is_available():
        backend.cupy_or_raise().cuda.Device().synchronize()


def manual_seed(seed):
    """A no-op: mg.manual_seed seeds the one host generator that CUDA tensors are drawn from too."""


manual_seed_all = manual_seed


# torch.cuda.FloatTensor & co.: the legacy types, making tensors on the GPU
FloatTensor, DoubleTensor, HalfTensor = (LegacyTensorType(t, 'cuda') for t in ('float32', 'float64', 'float16'))
LongTensor, IntTensor, ByteTensor, BoolTensor = (LegacyTensorType(t, 'cuda') for t in ('int64', 'int32', 'uint8',
                                                                                        'bool'))

"""minigan's CUDA kernel sources, installed as the package minigan.kernels.

    conv2d.cu       the three conv2d primitives as implicit GEMMs (float32, float64, TF32)
    batch_norm.cu   training-mode batch norm fused with a leaky ReLU, forward and backward
    optimizers.cu   the Adam, RMSprop and SGD-momentum updates, in place

Every kernel is an extern "C" __global__ function and the files include no headers, so that
NVRTC (CuPy's RawModule, at run time) and nvcc (the extension minigan._cuda, at install) compile
them alike. setup.py maps this folder onto the package minigan.kernels so the .cu files ship in
the wheel; minigan/cuda_kernels.py finds them there, or here in a source tree, and launches them.
"""

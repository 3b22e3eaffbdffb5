// The module minigan._cuda: the kernels of kernels/*.cu, compiled by nvcc at install, each bound
// as a Python function that launches it on a given stream with raw device pointers.
//
// minigan/cuda_kernels.py works out every launch and calls either the NVRTC-compiled kernel of
// the same name or the function here, as
//     name(grid, block, stream, *args)
// grid and block: 3-tuples; stream: a cudaStream_t as an integer (CuPy's current stream,
// cupy.cuda.get_current_stream().ptr); args: the kernel's own arguments in order, each pointer
// as an integer (cupy_array.data.ptr), each number as itself. Built only with MINIGAN_BUILD_CUDA=1
// (setup.py), with -I kernels so that the sources below are the very files NVRTC compiles.
#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>

#include <cuda_runtime.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "batch_norm.cu"
#include "conv2d.cu"
#include "optimizers.cu"

namespace py = pybind11;

namespace {

// How Python passes one kernel argument: a device pointer as an integer, anything else as itself.
template <typename T>
struct FromPython {
    using type = T;
    static T get(type v) { return v; }
};
template <typename T>
struct FromPython<T *> {
    using type = std::uintptr_t;
    static T *get(type v) { return reinterpret_cast<T *>(v); }
};

using Dim3 = std::array<unsigned, 3>;

// Bind `kernel` as name(grid, block, stream, *args): launch it, and raise if the launch was refused.
template <typename... Args>
void bind_kernel(py::module_ &m, const char *name, void (*kernel)(Args...)) {
    m.def(name, [kernel, name](Dim3 grid, Dim3 block, std::uintptr_t stream,
                               typename FromPython<Args>::type... args) {
        kernel<<<dim3(grid[0], grid[1], grid[2]), dim3(block[0], block[1], block[2]), 0,
                 reinterpret_cast<cudaStream_t>(stream)>>>(FromPython<Args>::get(args)...);
        const cudaError_t err = cudaGetLastError();
        if (err != cudaSuccess)
            throw std::runtime_error(std::string(name) + ": the launch failed: " + cudaGetErrorString(err));
    });
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
    m.doc() = "minigan's CUDA kernels (kernels/*.cu) compiled by nvcc; launched by minigan.cuda_kernels";
    bind_kernel(m, "conv2d_forward_f32", conv2d_forward_f32);
    bind_kernel(m, "conv2d_forward_f64", conv2d_forward_f64);
    bind_kernel(m, "conv2d_forward_tf32", conv2d_forward_tf32);
    bind_kernel(m, "conv2d_backward_data_f32", conv2d_backward_data_f32);
    bind_kernel(m, "conv2d_backward_data_f64", conv2d_backward_data_f64);
    bind_kernel(m, "conv2d_backward_data_tf32", conv2d_backward_data_tf32);
    bind_kernel(m, "conv2d_backward_weight_f32", conv2d_backward_weight_f32);
    bind_kernel(m, "conv2d_backward_weight_f64", conv2d_backward_weight_f64);
    bind_kernel(m, "conv2d_backward_weight_tf32", conv2d_backward_weight_tf32);
    bind_kernel(m, "conv2d_sum_splits_f32", conv2d_sum_splits_f32);
    bind_kernel(m, "conv2d_sum_splits_f64", conv2d_sum_splits_f64);
    bind_kernel(m, "batch_norm_act_stats_f32", batch_norm_act_stats_f32);
    bind_kernel(m, "batch_norm_act_stats_f64", batch_norm_act_stats_f64);
    bind_kernel(m, "batch_norm_act_forward_f32", batch_norm_act_forward_f32);
    bind_kernel(m, "batch_norm_act_forward_f64", batch_norm_act_forward_f64);
    bind_kernel(m, "batch_norm_act_backward_sums_f32", batch_norm_act_backward_sums_f32);
    bind_kernel(m, "batch_norm_act_backward_sums_f64", batch_norm_act_backward_sums_f64);
    bind_kernel(m, "batch_norm_act_backward_f32", batch_norm_act_backward_f32);
    bind_kernel(m, "batch_norm_act_backward_f64", batch_norm_act_backward_f64);
    bind_kernel(m, "adam_step_f32", adam_step_f32);
    bind_kernel(m, "adam_step_f64", adam_step_f64);
    bind_kernel(m, "rmsprop_step_f32", rmsprop_step_f32);
    bind_kernel(m, "rmsprop_step_f64", rmsprop_step_f64);
    bind_kernel(m, "sgd_momentum_step_f32", sgd_momentum_step_f32);
    bind_kernel(m, "sgd_momentum_step_f64", sgd_momentum_step_f64);
}

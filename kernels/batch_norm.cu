// Training-mode batch normalisation fused with a leaky ReLU, forward and backward: one block
// per channel, each pass over the channel's values a loop of the block's threads.
//
// x is (N, C, M), C-contiguous (M = H W for images, 1 for (N, C) inputs); the statistics of
// channel c are over its count = N M values, as in minigan/functional/norm.py:
//   mean = sum(x) / count,   var = sum((x - mean)^2) / count (biased),   invstd = 1 / sqrt(var + eps)
//   z = (x - mean) invstd weight + bias,   y = z if z > 0 else slope z
// slope = 1 is batch norm alone, slope = 0 batch norm then ReLU, 0 < slope < 1 then leaky ReLU.
//
// Backward from gy = dL/dy: g = gy where y > 0, slope gy elsewhere (for slope >= 0, y > 0
// exactly where z > 0), then the gradient through the batch statistics (norm.py's BatchNormGrad):
//   gb = sum(g),   gw = sum(g (x - mean)) invstd,
//   gx = scale g + k1 (x - mean) + k0   with scale = weight invstd, k1 = -scale invstd gw / count,
//                                            k0 = -scale gb / count
//
// Entry points (extern "C"), each for float (_f32) and double (_f64); launch with grid (C, 1, 1)
// and 256 threads:
//   batch_norm_act_forward_*(x, weight, bias, y, mean, var, invstd, n, c, m, eps, slope)
//   batch_norm_act_backward_*(x, y, gy, weight, mean, invstd, gx, gw, gb, n, c, m, slope)
// weight and bias are (C,) arrays (pass ones and zeros for none); mean, var, invstd, gw, gb are (C,).

constexpr int BN_THREADS = 256;

// The sum of v over the block's threads, returned to every thread (blockDim.x a multiple of 32).
template <typename T>
__device__ T block_sum(T v) {
    __shared__ T warp_sums[32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
    __syncthreads();                       // warp_sums may still be read by the previous call
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < blockDim.x / 32 ? warp_sums[lane] : T(0);
        for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
        if (lane == 0) warp_sums[0] = v;
    }
    __syncthreads();
    return warp_sums[0];
}

// Index of the e-th of channel ch's values in an (n, c, m) array.
__device__ int channel_at(int e, int ch, int c, int m) {
    return (e / m * c + ch) * m + e % m;
}

// y = leaky_relu((x - mean) invstd weight + bias, slope), with the batch statistics of each channel.
template <typename T>
__device__ void batch_norm_act_forward(const T *x, const T *weight, const T *bias, T *y, T *mean_out,
                                       T *var_out, T *invstd_out, int n, int c, int m, T eps, T slope) {
    const int ch = blockIdx.x, count = n * m;
    T sum = 0;
    for (int e = threadIdx.x; e < count; e += blockDim.x) sum += x[channel_at(e, ch, c, m)];
    const T mean = block_sum(sum) / count;
    T squares = 0;
    for (int e = threadIdx.x; e < count; e += blockDim.x) {
        const T d = x[channel_at(e, ch, c, m)] - mean;
        squares += d * d;
    }
    const T var = block_sum(squares) / count;
    const T invstd = T(1) / sqrt(var + eps);
    const T scale = invstd * weight[ch], shift = bias[ch];
    for (int e = threadIdx.x; e < count; e += blockDim.x) {
        const int at = channel_at(e, ch, c, m);
        const T z = (x[at] - mean) * scale + shift;
        y[at] = z > T(0) ? z : slope * z;
    }
    if (threadIdx.x == 0) {
        mean_out[ch] = mean;
        var_out[ch] = var;
        invstd_out[ch] = invstd;
    }
}

// (gx, gw, gb) of the forward above, from its input x, output y and the gradient gy of y.
template <typename T>
__device__ void batch_norm_act_backward(const T *x, const T *y, const T *gy, const T *weight, const T *mean,
                                        const T *invstd, T *gx, T *gw, T *gb, int n, int c, int m, T slope) {
    const int ch = blockIdx.x, count = n * m;
    const T mu = mean[ch], r = invstd[ch];
    T sum_g = 0, sum_gx = 0;
    for (int e = threadIdx.x; e < count; e += blockDim.x) {
        const int at = channel_at(e, ch, c, m);
        const T g = y[at] > T(0) ? gy[at] : slope * gy[at];
        sum_g += g;
        sum_gx += g * (x[at] - mu);
    }
    const T grad_bias = block_sum(sum_g), grad_weight = block_sum(sum_gx) * r;
    const T scale = weight[ch] * r;
    const T k1 = -scale * r * grad_weight / count, k0 = -scale * grad_bias / count;
    for (int e = threadIdx.x; e < count; e += blockDim.x) {
        const int at = channel_at(e, ch, c, m);
        const T g = y[at] > T(0) ? gy[at] : slope * gy[at];
        gx[at] = scale * g + k1 * (x[at] - mu) + k0;
    }
    if (threadIdx.x == 0) {
        gw[ch] = grad_weight;
        gb[ch] = grad_bias;
    }
}

// ---- entry points -------------------------------------------------------------------------------

// y = leaky_relu((x - mean) invstd weight + bias, slope); mean, biased var and invstd per channel
extern "C" __global__ void __launch_bounds__(BN_THREADS)
batch_norm_act_forward_f32(const float *x, const float *weight, const float *bias, float *y, float *mean,
                           float *var, float *invstd, int n, int c, int m, float eps, float slope) {
    batch_norm_act_forward(x, weight, bias, y, mean, var, invstd, n, c, m, eps, slope);
}
extern "C" __global__ void __launch_bounds__(BN_THREADS)
batch_norm_act_forward_f64(const double *x, const double *weight, const double *bias, double *y, double *mean,
                           double *var, double *invstd, int n, int c, int m, double eps, double slope) {
    batch_norm_act_forward(x, weight, bias, y, mean, var, invstd, n, c, m, eps, slope);
}

// gx = scale g + k1 (x - mean) + k0, gw = sum(g (x - mean)) invstd, gb = sum(g), g = gy masked by y > 0
extern "C" __global__ void __launch_bounds__(BN_THREADS)
batch_norm_act_backward_f32(const float *x, const float *y, const float *gy, const float *weight,
                            const float *mean, const float *invstd, float *gx, float *gw, float *gb,
                            int n, int c, int m, float slope) {
    batch_norm_act_backward(x, y, gy, weight, mean, invstd, gx, gw, gb, n, c, m, slope);
}
extern "C" __global__ void __launch_bounds__(BN_THREADS)
batch_norm_act_backward_f64(const double *x, const double *y, const double *gy, const double *weight,
                            const double *mean, const double *invstd, double *gx, double *gw, double *gb,
                            int n, int c, int m, double slope) {
    batch_norm_act_backward(x, y, gy, weight, mean, invstd, gx, gw, gb, n, c, m, slope);
}

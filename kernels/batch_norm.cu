// Training-mode batch normalisation fused with a leaky ReLU, forward and backward, over a grid
// of (channels, blocks per channel): block (ch, p) handles the p-th chunk of channel ch's values.
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
// Each direction is two launches, both over grid (C, P) with 256 threads, P = blocks per channel
// (minigan/cuda_launch.py). Block p's chunk is the values e in [p s, min(count, (p + 1) s)),
// s = ceil(count / P), where value e of channel ch is x[e / M, ch, e % M]; a thread walks its
// values 256 apart by stepping (n, e % M) with a carry, without dividing. The first launch writes
// each block's partial statistics to partial (C, P, 2); the second has every block combine its
// channel's P partials in the order p = 0, 1, ... (deterministic, no atomics), then write its chunk.
//   forward:  partial = (mean, M2) of the chunk (two passes over it); combined by Chan's rule
//             M2 = M2_a + M2_b + (mean_b - mean_a)^2 n_a n_b / (n_a + n_b)
//   backward: partial = (sum g, sum g (x - mean)) of the chunk; combined by adding
//
// Entry points (extern "C"), each for float (_f32) and double (_f64):
//   batch_norm_act_stats_*(x, partial, n, c, m)
//   batch_norm_act_forward_*(x, weight, bias, partial, y, mean, var, invstd, n, c, m, eps, slope)
//   batch_norm_act_backward_sums_*(x, y, gy, mean, partial, n, c, m, slope)
//   batch_norm_act_backward_*(x, y, gy, weight, mean, invstd, partial, gx, gw, gb, n, c, m, slope)
// weight and bias are (C,) arrays (pass ones and zeros for none); mean, var, invstd, gw, gb are (C,).
// Block (ch, 0) writes channel ch's mean, var, invstd (forward) and gw, gb (backward).

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

// This block's chunk [begin, end) of its channel's count values.
struct Chunk {
    int begin, end;
};
__device__ Chunk chunk_of(int p, int blocks, int count) {
    const int size = (count + blocks - 1) / blocks;
    return {min(count, p * size), min(count, (p + 1) * size)};
}

// A thread's walk over the values e = begin + tid, + blockDim.x, ... < end of channel ch:
// at = x's index of value e, s = e % m, stepped by (dn, ds) = divmod(blockDim.x, m) with a carry.
struct ChannelWalk {
    int e, at, s, ds, step_at, carry_at, m;
    __device__ ChannelWalk(int begin, int ch, int c, int m_) : m(m_) {
        e = begin + threadIdx.x;
        s = e % m;
        at = (e / m * c + ch) * m + s;
        ds = blockDim.x % m;
        step_at = blockDim.x / m * c * m + ds;
        carry_at = c * m - m;
    }
    __device__ void next() {
        e += blockDim.x;
        at += step_at;
        s += ds;
        if (s >= m) { s -= m; at += carry_at; }
    }
};

// The (mean, M2) of the values of x in this block's chunk of channel blockIdx.x.
template <typename T>
__device__ void batch_norm_stats(const T *x, T *partial, int n, int c, int m) {
    const int ch = blockIdx.x, p = blockIdx.y;
    const Chunk k = chunk_of(p, gridDim.y, n * m);
    T sum = 0;
    for (ChannelWalk w(k.begin, ch, c, m); w.e < k.end; w.next()) sum += x[w.at];
    const T mean = k.end > k.begin ? block_sum(sum) / T(k.end - k.begin) : T(0);
    T squares = 0;
    for (ChannelWalk w(k.begin, ch, c, m); w.e < k.end; w.next()) {
        const T d = x[w.at] - mean;
        squares += d * d;
    }
    const T m2 = block_sum(squares);
    if (threadIdx.x == 0) {
        partial[(ch * gridDim.y + p) * 2] = mean;
        partial[(ch * gridDim.y + p) * 2 + 1] = m2;
    }
}

// y = leaky_relu((x - mean) invstd weight + bias, slope) on this block's chunk, with the channel's
// statistics combined from the partials in block order.
template <typename T>
__device__ void batch_norm_act_forward(const T *x, const T *weight, const T *bias, const T *partial, T *y,
                                       T *mean_out, T *var_out, T *invstd_out, int n, int c, int m, T eps,
                                       T slope) {
    const int ch = blockIdx.x, count = n * m;
    T seen = 0, mean = 0, m2 = 0;
    for (int q = 0; q < gridDim.y; ++q) {
        const Chunk kq = chunk_of(q, gridDim.y, count);
        const T nq = T(kq.end - kq.begin), total = seen + nq;
        if (kq.end == kq.begin) continue;
        const T mean_q = partial[(ch * gridDim.y + q) * 2], delta = mean_q - mean;
        mean += delta * (nq / total);
        m2 += partial[(ch * gridDim.y + q) * 2 + 1] + delta * delta * (seen * nq / total);
        seen = total;
    }
    const T var = m2 * (T(1) / T(count)), invstd = T(1) / sqrt(var + eps);
    const T scale = invstd * weight[ch], shift = bias[ch];
    const Chunk k = chunk_of(blockIdx.y, gridDim.y, count);
    for (ChannelWalk w(k.begin, ch, c, m); w.e < k.end; w.next()) {
        const T z = (x[w.at] - mean) * scale + shift;
        y[w.at] = z > T(0) ? z : slope * z;
    }
    if (blockIdx.y == 0 && threadIdx.x == 0) {
        mean_out[ch] = mean;
        var_out[ch] = var;
        invstd_out[ch] = invstd;
    }
}

// (sum g, sum g (x - mean)) over this block's chunk, g = gy masked by y > 0 (slope elsewhere).
template <typename T>
__device__ void batch_norm_act_backward_sums(const T *x, const T *y, const T *gy, const T *mean, T *partial,
                                             int n, int c, int m, T slope) {
    const int ch = blockIdx.x, p = blockIdx.y;
    const T mu = mean[ch];
    const Chunk k = chunk_of(p, gridDim.y, n * m);
    T sum_g = 0, sum_gx = 0;
    for (ChannelWalk w(k.begin, ch, c, m); w.e < k.end; w.next()) {
        const T g = y[w.at] > T(0) ? gy[w.at] : slope * gy[w.at];
        sum_g += g;
        sum_gx += g * (x[w.at] - mu);
    }
    sum_g = block_sum(sum_g);
    sum_gx = block_sum(sum_gx);
    if (threadIdx.x == 0) {
        partial[(ch * gridDim.y + p) * 2] = sum_g;
        partial[(ch * gridDim.y + p) * 2 + 1] = sum_gx;
    }
}

// gx = scale g + k1 (x - mean) + k0 on this block's chunk, from the sums added in block order.
template <typename T>
__device__ void batch_norm_act_backward(const T *x, const T *y, const T *gy, const T *weight, const T *mean,
                                        const T *invstd, const T *partial, T *gx, T *gw, T *gb, int n, int c,
                                        int m, T slope) {
    const int ch = blockIdx.x, count = n * m;
    T grad_bias = 0, sum_gx = 0;
    for (int q = 0; q < gridDim.y; ++q) {
        grad_bias += partial[(ch * gridDim.y + q) * 2];
        sum_gx += partial[(ch * gridDim.y + q) * 2 + 1];
    }
    const T mu = mean[ch], r = invstd[ch], grad_weight = sum_gx * r, scale = weight[ch] * r;
    const T inv_count = T(1) / T(count);
    const T k1 = -scale * r * grad_weight * inv_count, k0 = -scale * grad_bias * inv_count;
    const Chunk k = chunk_of(blockIdx.y, gridDim.y, count);
    for (ChannelWalk w(k.begin, ch, c, m); w.e < k.end; w.next()) {
        const T g = y[w.at] > T(0) ? gy[w.at] : slope * gy[w.at];
        gx[w.at] = scale * g + k1 * (x[w.at] - mu) + k0;
    }
    if (blockIdx.y == 0 && threadIdx.x == 0) {
        gw[ch] = grad_weight;
        gb[ch] = grad_bias;
    }
}

// ---- entry points -------------------------------------------------------------------------------

// partial[ch, p] = (mean, M2) of block p's chunk of channel ch
extern "C" __global__ void __launch_bounds__(BN_THREADS)
batch_norm_act_stats_f32(const float *x, float *partial, int n, int c, int m) {
    batch_norm_stats(x, partial, n, c, m);
}
extern "C" __global__ void __launch_bounds__(BN_THREADS)
batch_norm_act_stats_f64(const double *x, double *partial, int n, int c, int m) {
    batch_norm_stats(x, partial, n, c, m);
}

// y = leaky_relu((x - mean) invstd weight + bias, slope); mean, biased var and invstd per channel
extern "C" __global__ void __launch_bounds__(BN_THREADS)
batch_norm_act_forward_f32(const float *x, const float *weight, const float *bias, const float *partial, float *y,
                           float *mean, float *var, float *invstd, int n, int c, int m, float eps, float slope) {
    batch_norm_act_forward(x, weight, bias, partial, y, mean, var, invstd, n, c, m, eps, slope);
}
extern "C" __global__ void __launch_bounds__(BN_THREADS)
batch_norm_act_forward_f64(const double *x, const double *weight, const double *bias, const double *partial,
                           double *y, double *mean, double *var, double *invstd, int n, int c, int m, double eps,
                           double slope) {
    batch_norm_act_forward(x, weight, bias, partial, y, mean, var, invstd, n, c, m, eps, slope);
}

// partial[ch, p] = (sum g, sum g (x - mean)) of block p's chunk, g = gy masked by y > 0
extern "C" __global__ void __launch_bounds__(BN_THREADS)
batch_norm_act_backward_sums_f32(const float *x, const float *y, const float *gy, const float *mean,
                                 float *partial, int n, int c, int m, float slope) {
    batch_norm_act_backward_sums(x, y, gy, mean, partial, n, c, m, slope);
}
extern "C" __global__ void __launch_bounds__(BN_THREADS)
batch_norm_act_backward_sums_f64(const double *x, const double *y, const double *gy, const double *mean,
                                 double *partial, int n, int c, int m, double slope) {
    batch_norm_act_backward_sums(x, y, gy, mean, partial, n, c, m, slope);
}

// gx = scale g + k1 (x - mean) + k0, gw = sum(g (x - mean)) invstd, gb = sum(g)
extern "C" __global__ void __launch_bounds__(BN_THREADS)
batch_norm_act_backward_f32(const float *x, const float *y, const float *gy, const float *weight,
                            const float *mean, const float *invstd, const float *partial, float *gx, float *gw,
                            float *gb, int n, int c, int m, float slope) {
    batch_norm_act_backward(x, y, gy, weight, mean, invstd, partial, gx, gw, gb, n, c, m, slope);
}
extern "C" __global__ void __launch_bounds__(BN_THREADS)
batch_norm_act_backward_f64(const double *x, const double *y, const double *gy, const double *weight,
                            const double *mean, const double *invstd, const double *partial, double *gx,
                            double *gw, double *gb, int n, int c, int m, double slope) {
    batch_norm_act_backward(x, y, gy, weight, mean, invstd, partial, gx, gw, gb, n, c, m, slope);
}

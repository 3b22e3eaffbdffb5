// The three conv2d primitives of minigan/functional/im2col.py as implicit GEMMs: the same
// matrix products, with the column matrix never written to memory.
//
// Each primitive is one product C = A B whose operands are read straight from the tensors:
// A(m, k) and B(k, n) are index maps into x, w or gy (zero where a window reaches into the
// padding), and C(m, n) is stored into the output tensor. Layouts are minigan's (PyTorch's):
// x (N, C, H, W), w (O, C, KH, KW), y and gy (N, O, OH, OW), all C-contiguous, with
// OH = (H + 2 PH - KH) / SH + 1 rounded down, and likewise OW.
//
//   forward          y[n, o, oy, ox] = sum_{c,i,j} x[n, c, oy SH + i - PH, ox SW + j - PW] w[o, c, i, j]
//                    rows m = (n, oy, ox), columns o, depth k = (c, i, j)
//   backward-data    gx[n, c, iy, ix] = sum_{o,i,j} gy[n, o, (iy + PH - i) / SH, (ix + PW - j) / SW] w[o, c, i, j]
//                    over the (o, i, j) whose divisions are exact and land inside gy;
//                    rows m = (n, iy, ix), columns c, depth k = (o, i, j)
//   backward-weight  gw[o, c, i, j] = sum_{n,oy,ox} x[n, c, oy SH + i - PH, ox SW + j - PW] gy[n, o, oy, ox]
//                    rows m = (c, i, j), columns o, depth k = (n, oy, ox)
//
// The rows of every product run along the axis its output is contiguous in, so that a warp's
// stores land side by side. conv_transpose2d's forward is backward-data (its weight
// (C_in, C_out, KH, KW) is the conv2d weight of the adjoint map) and needs no kernel of its own.
//
// Tiling. A block of 256 threads computes a 64 x 64 tile of C. For each 16-deep slice of the
// depth it stages A's 64 x 16 and B's 16 x 64 pieces in shared memory, then each thread adds
// their product into a 4 x 4 set of outputs held in registers (the rows tx + 16 i and columns
// ty + 16 j of the tile, for the thread (tx, ty) = (tid % 16, tid / 16)).
// backward-weight sums over the whole batch: a long depth and few outputs, so its blocks also
// split the depth (blockIdx.z), each writing its partial sums to its own slice of the output,
// which the caller adds up (deterministic, unlike atomics).
//
// TF32. The _tf32 entry points take and give float32 but multiply on tensor cores: each
// operand is rounded to TF32 (10-bit mantissa) as it enters shared memory, and each warp
// computes a 32 x 16 part of the tile with mma.sync m16n8k8 (compute capability 8.0 and
// newer; the caller checks). Sums stay in float32.
//
// Entry points (extern "C", so that NVRTC and nvcc give them the same names), each for float
// (_f32), double (_f64) and float32 on tensor cores (_tf32):
//   conv2d_forward_*(x, weight, y, geometry)
//   conv2d_backward_data_*(gy, weight, gx, geometry)
//   conv2d_backward_weight_*(x, gy, gw_partial, geometry)   gw_partial: (gridDim.z, O, C, KH, KW)
// where geometry is the 13 ints of ConvGeometry below, in that order. Launch with 256 threads
// and grid (ceil(rows / 64), ceil(columns / 64), splits); splits is 1 except for backward-weight.

constexpr int TILE_M = 64;    // rows of C per block
constexpr int TILE_N = 64;    // columns of C per block
constexpr int TILE_K = 16;    // depth staged in shared memory at a time
constexpr int THREADS = 256;  // threads per block: 16 x 16, each with 4 x 4 outputs
constexpr int PAD = 8;        // shared rows padded by 8 words: fragment reads hit distinct banks

// The sizes of one convolution x (n, c, h, w) * w (o, c, kh, kw) -> y (n, o, oh, ow).
struct ConvGeometry {
    int n, c, h, w, o, kh, kw, oh, ow, sh, sw, ph, pw;
};

#define CONV_GEOMETRY_PARAMS \
    int n, int c, int h, int w, int o, int kh, int kw, int oh, int ow, int sh, int sw, int ph, int pw
#define CONV_GEOMETRY ConvGeometry{n, c, h, w, o, kh, kw, oh, ow, sh, sw, ph, pw}

// x[nb, ch, oy SH + i - PH, ox SW + j - PW], or 0 in the padding: one element of the im2col matrix.
template <typename T>
__device__ T x_window(const T *x, const ConvGeometry &g, int nb, int ch, int oy, int ox, int i, int j) {
    const int iy = oy * g.sh - g.ph + i, ix = ox * g.sw - g.pw + j;
    if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) return T(0);
    return x[((nb * g.c + ch) * g.h + iy) * g.w + ix];
}

// forward: y = conv2d(x, w).
template <typename T>
struct Forward {
    const T *x, *weight;
    T *y;
    ConvGeometry g;

    __device__ int rows() const { return g.n * g.oh * g.ow; }
    __device__ int cols() const { return g.o; }
    __device__ int depth() const { return g.c * g.kh * g.kw; }
    __device__ T a(int m, int k) const {
        const int ox = m % g.ow, oy = m / g.ow % g.oh, nb = m / (g.ow * g.oh);
        const int j = k % g.kw, i = k / g.kw % g.kh, ch = k / (g.kw * g.kh);
        return x_window(x, g, nb, ch, oy, ox, i, j);
    }
    __device__ T b(int k, int o) const { return weight[o * depth() + k]; }
    __device__ void store(int m, int o, T v, int) const {
        const int ox = m % g.ow, oy = m / g.ow % g.oh, nb = m / (g.ow * g.oh);
        y[((nb * g.o + o) * g.oh + oy) * g.ow + ox] = v;
    }
};

// backward-data: gx = the adjoint of conv2d(., w) applied to gy.
template <typename T>
struct BackwardData {
    const T *gy, *weight;
    T *gx;
    ConvGeometry g;

    __device__ int rows() const { return g.n * g.h * g.w; }
    __device__ int cols() const { return g.c; }
    __device__ int depth() const { return g.o * g.kh * g.kw; }
    __device__ T a(int m, int k) const {
        const int ix = m % g.w, iy = m / g.w % g.h, nb = m / (g.w * g.h);
        const int j = k % g.kw, i = k / g.kw % g.kh, oc = k / (g.kw * g.kh);
        const int ty = iy + g.ph - i, tx = ix + g.pw - j;   // = oy SH and ox SW, when such outputs exist
        if (ty < 0 || tx < 0 || ty % g.sh != 0 || tx % g.sw != 0) return T(0);
        const int oy = ty / g.sh, ox = tx / g.sw;
        if (oy >= g.oh || ox >= g.ow) return T(0);
        return gy[((nb * g.o + oc) * g.oh + oy) * g.ow + ox];
    }
    __device__ T b(int k, int ch) const {
        const int j = k % g.kw, i = k / g.kw % g.kh, oc = k / (g.kw * g.kh);
        return weight[((oc * g.c + ch) * g.kh + i) * g.kw + j];
    }
    __device__ void store(int m, int ch, T v, int) const {
        const int ix = m % g.w, iy = m / g.w % g.h, nb = m / (g.w * g.h);
        gx[((nb * g.c + ch) * g.h + iy) * g.w + ix] = v;
    }
};

// backward-weight: gw = the gradient of <gy, conv2d(x, w)> in w, one partial sum per depth slice.
template <typename T>
struct BackwardWeight {
    const T *x, *gy;
    T *gw_partial;
    ConvGeometry g;

    __device__ int rows() const { return g.c * g.kh * g.kw; }
    __device__ int cols() const { return g.o; }
    __device__ int depth() const { return g.n * g.oh * g.ow; }
    __device__ T a(int m, int k) const {
        const int j = m % g.kw, i = m / g.kw % g.kh, ch = m / (g.kw * g.kh);
        const int ox = k % g.ow, oy = k / g.ow % g.oh, nb = k / (g.ow * g.oh);
        return x_window(x, g, nb, ch, oy, ox, i, j);
    }
    __device__ T b(int k, int o) const {
        const int ox = k % g.ow, oy = k / g.ow % g.oh, nb = k / (g.ow * g.oh);
        return gy[((nb * g.o + o) * g.oh + oy) * g.ow + ox];
    }
    __device__ void store(int m, int o, T v, int split) const {
        gw_partial[(split * g.o + o) * rows() + m] = v;
    }
};

// The float32 value rounded to TF32 (round to nearest, ties away), kept in a float's bits.
// Both TF32 helpers need compute capability 8.0; built for an older GPU they trap instead
// (cuda_kernels.py refuses tf32 there before launching anything).
__device__ float to_tf32(float v) {
#if __CUDA_ARCH__ >= 800
    unsigned bits;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(bits) : "f"(v));
    return __uint_as_float(bits);
#else
    __trap();
    return v;
#endif
}

// d += a b for one warp: a 16 x 8 tile d, a (16 x 8, rows of A) and b (8 x 8, columns of B) in TF32.
// Lane l holds a[r] = A(l/4 + 8 (r%2), l%4 + 4 (r/2)), b[r] = B(l%4 + 4 r, l/4) and
// d[r] = D(l/4 + 8 (r/2), 2 (l%4) + r%2), the fragment layouts of the PTX ISA.
__device__ void mma_tf32(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
#if __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    __trap();
#endif
}

// C = A B for the problem p (Forward, BackwardData or BackwardWeight): this block's 64 x 64 tile,
// over this block's slice of the depth. TensorCores: the TF32 path (T = float only).
template <typename T, bool TensorCores, typename Problem>
__device__ void implicit_gemm(const Problem &p) {
    __shared__ T a_tile[TILE_K][TILE_M + PAD];   // a_tile[kk][mm] = A(m0 + mm, k0 + kk)
    __shared__ T b_tile[TILE_K][TILE_N + PAD];   // b_tile[kk][nn] = B(k0 + kk, n0 + nn)
    const int rows = p.rows(), cols = p.cols(), depth = p.depth();
    const int tid = threadIdx.x;
    const int m0 = blockIdx.x * TILE_M, n0 = blockIdx.y * TILE_N;
    // this block's slice [k_begin, k_end) of the depth: gridDim.z slices, each a whole number of TILE_K
    const int slice = ((depth + gridDim.z - 1) / gridDim.z + TILE_K - 1) / TILE_K * TILE_K;
    const int k_begin = blockIdx.z * slice, k_end = min(depth, k_begin + slice);

    T acc[4][4] = {};
    for (int k0 = k_begin; k0 < k_end; k0 += TILE_K) {
        // stage the tiles, zero outside the matrices: A with consecutive threads on consecutive
        // rows, B on consecutive depths (the directions the tensors are contiguous in)
        for (int e = tid; e < TILE_M * TILE_K; e += THREADS) {
            const int mm = e % TILE_M, kk = e / TILE_M, m = m0 + mm, k = k0 + kk;
            const T v = m < rows && k < k_end ? p.a(m, k) : T(0);
            if constexpr (TensorCores) a_tile[kk][mm] = to_tf32(v);
            else a_tile[kk][mm] = v;
        }
        for (int e = tid; e < TILE_N * TILE_K; e += THREADS) {
            const int kk = e % TILE_K, nn = e / TILE_K, col = n0 + nn, k = k0 + kk;
            const T v = col < cols && k < k_end ? p.b(k, col) : T(0);
            if constexpr (TensorCores) b_tile[kk][nn] = to_tf32(v);
            else b_tile[kk][nn] = v;
        }
        __syncthreads();
        if constexpr (TensorCores) {
            // warp w computes rows wm..wm+31 and columns wn..wn+15 of the tile: 2 x 2 mma tiles
            const int lane = tid % 32, warp = tid / 32, g = lane / 4, t = lane % 4;
            const int wm = warp % 2 * 32, wn = warp / 2 * 16;
            for (int k8 = 0; k8 < TILE_K; k8 += 8) {
                unsigned a[2][4], b[2][2];
                for (int mt = 0; mt < 2; ++mt) {
                    const int r = wm + mt * 16 + g;
                    a[mt][0] = __float_as_uint(a_tile[k8 + t][r]);
                    a[mt][1] = __float_as_uint(a_tile[k8 + t][r + 8]);
                    a[mt][2] = __float_as_uint(a_tile[k8 + t + 4][r]);
                    a[mt][3] = __float_as_uint(a_tile[k8 + t + 4][r + 8]);
                }
                for (int nt = 0; nt < 2; ++nt) {
                    const int col = wn + nt * 8 + g;
                    b[nt][0] = __float_as_uint(b_tile[k8 + t][col]);
                    b[nt][1] = __float_as_uint(b_tile[k8 + t + 4][col]);
                }
                for (int mt = 0; mt < 2; ++mt)
                    for (int nt = 0; nt < 2; ++nt) mma_tf32(acc[mt * 2 + nt], a[mt], b[nt]);
            }
        } else {
            const int tx = tid % 16, ty = tid / 16;
            for (int kk = 0; kk < TILE_K; ++kk) {
                T a[4], b[4];
                for (int i = 0; i < 4; ++i) a[i] = a_tile[kk][tx + 16 * i];
                for (int j = 0; j < 4; ++j) b[j] = b_tile[kk][ty + 16 * j];
                for (int i = 0; i < 4; ++i)
                    for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
            }
        }
        __syncthreads();
    }

    if constexpr (TensorCores) {   // acc[mt * 2 + nt][r] is D(g + 8 (r/2), 2t + r%2) of mma tile (mt, nt)
        const int lane = tid % 32, warp = tid / 32, g = lane / 4, t = lane % 4;
        const int wm = warp % 2 * 32, wn = warp / 2 * 16;
        for (int mt = 0; mt < 2; ++mt)
            for (int nt = 0; nt < 2; ++nt)
                for (int r = 0; r < 4; ++r) {
                    const int m = m0 + wm + mt * 16 + g + 8 * (r / 2), col = n0 + wn + nt * 8 + 2 * t + r % 2;
                    if (m < rows && col < cols) p.store(m, col, acc[mt * 2 + nt][r], blockIdx.z);
                }
    } else {                       // acc[i][j] is C(m0 + tx + 16 i, n0 + ty + 16 j)
        const int tx = tid % 16, ty = tid / 16;
        for (int i = 0; i < 4; ++i)
            for (int j = 0; j < 4; ++j) {
                const int m = m0 + tx + 16 * i, col = n0 + ty + 16 * j;
                if (m < rows && col < cols) p.store(m, col, acc[i][j], blockIdx.z);
            }
    }
}

// ---- entry points -------------------------------------------------------------------------------

// y[n, o, oy, ox] = sum_{c,i,j} x[n, c, oy SH + i - PH, ox SW + j - PW] w[o, c, i, j]
extern "C" __global__ void __launch_bounds__(THREADS)
conv2d_forward_f32(const float *x, const float *weight, float *y, CONV_GEOMETRY_PARAMS) {
    implicit_gemm<float, false>(Forward<float>{x, weight, y, CONV_GEOMETRY});
}
extern "C" __global__ void __launch_bounds__(THREADS)
conv2d_forward_f64(const double *x, const double *weight, double *y, CONV_GEOMETRY_PARAMS) {
    implicit_gemm<double, false>(Forward<double>{x, weight, y, CONV_GEOMETRY});
}
extern "C" __global__ void __launch_bounds__(THREADS)
conv2d_forward_tf32(const float *x, const float *weight, float *y, CONV_GEOMETRY_PARAMS) {
    implicit_gemm<float, true>(Forward<float>{x, weight, y, CONV_GEOMETRY});
}

// gx[n, c, iy, ix] = sum_{o,i,j} gy[n, o, (iy + PH - i) / SH, (ix + PW - j) / SW] w[o, c, i, j], exact divisions only
extern "C" __global__ void __launch_bounds__(THREADS)
conv2d_backward_data_f32(const float *gy, const float *weight, float *gx, CONV_GEOMETRY_PARAMS) {
    implicit_gemm<float, false>(BackwardData<float>{gy, weight, gx, CONV_GEOMETRY});
}
extern "C" __global__ void __launch_bounds__(THREADS)
conv2d_backward_data_f64(const double *gy, const double *weight, double *gx, CONV_GEOMETRY_PARAMS) {
    implicit_gemm<double, false>(BackwardData<double>{gy, weight, gx, CONV_GEOMETRY});
}
extern "C" __global__ void __launch_bounds__(THREADS)
conv2d_backward_data_tf32(const float *gy, const float *weight, float *gx, CONV_GEOMETRY_PARAMS) {
    implicit_gemm<float, true>(BackwardData<float>{gy, weight, gx, CONV_GEOMETRY});
}

// gw_partial[z, o, c, i, j] = sum over depth slice z of (n, oy, ox) of x[n, c, oy SH + i - PH, ox SW + j - PW] gy[n, o, oy, ox]
extern "C" __global__ void __launch_bounds__(THREADS)
conv2d_backward_weight_f32(const float *x, const float *gy, float *gw_partial, CONV_GEOMETRY_PARAMS) {
    implicit_gemm<float, false>(BackwardWeight<float>{x, gy, gw_partial, CONV_GEOMETRY});
}
extern "C" __global__ void __launch_bounds__(THREADS)
conv2d_backward_weight_f64(const double *x, const double *gy, double *gw_partial, CONV_GEOMETRY_PARAMS) {
    implicit_gemm<double, false>(BackwardWeight<double>{x, gy, gw_partial, CONV_GEOMETRY});
}
extern "C" __global__ void __launch_bounds__(THREADS)
conv2d_backward_weight_tf32(const float *x, const float *gy, float *gw_partial, CONV_GEOMETRY_PARAMS) {
    implicit_gemm<float, true>(BackwardWeight<float>{x, gy, gw_partial, CONV_GEOMETRY});
}

// The three conv2d primitives of minigan/functional/im2col.py as implicit GEMMs: the same
// matrix products, with the column matrix never written to memory.
//
// Each primitive is one product C = A B whose operands are read straight from the tensors:
// A(m, k) and B(k, n) are index maps into x, w or gy (zero where a window reaches into the
// padding), and C(m, n) is stored into the output tensor. Layouts are minigan's (PyTorch's):
// x (N, C, H, W), w (O, C, KH, KW), y and gy (N, O, OH, OW), all C-contiguous. OH and OW are
// given, not derived: any OH <= (H + 2 PH - KH) / SH + 1 is a conv whose bottom padding is
// smaller than its top one (likewise OW), and the kernels never read x outside [0, H) x [0, W).
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
// stores land side by side. conv_transpose2d's forward is backward-data.
//
// Index maps without division in the loop. Every A address splits into a part fixed by the row
// (worked out once per block, with divisions, into a RowMap) and a part fixed by the depth
// (a DepthMap). The depth part of the TILE_K depths of the next step is written to shared memory
// by the block's first TILE_K threads, each holding the digits of one depth k (a Cursor, e.g.
// (c, i, j)) and stepping them by TILE_K with carries, never dividing. Digits that a stride
// divides (backward-data's i and j by SH and SW) are held with their quotient and remainder.
// Past the matrix edges the maps hold OUTSIDE (or phase -1 / -2), which fails every bounds test,
// so the staging loads need no other guard.
//
// Tiling. A block of 256 threads computes a BM x BN tile of C (TileShape: 64 x 64, 64 x 32, or
// 128 x 8 for layers with few columns; the launcher picks, minigan/cuda_launch.py). For each
// TILE_K-deep step it stages A's TILE_K x BM and B's TILE_K x BN pieces in shared memory, two
// stages deep: the loads of step s + 1 (cp.async on compute capability 8.0+, plain loads before)
// fly while step s is multiplied. Each thread of the float path adds into RM x RN outputs (rows
// tx + TX i, columns ty + TY j); each warp of the TF32 path computes a WM x WN part with
// mma.sync m16n8k8, its operands rounded to TF32 as they leave shared memory.
//
// Split-K. gridDim.z > 1 cuts the depth into slices of whole steps; block z writes its partial
// sums to slice z of `out` (gridDim.z copies of the output), and conv2d_sum_splits adds them in
// the order z = 0, 1, ... (deterministic, unlike atomics). A slice may be empty: it writes zeros.
//
// Entry points (extern "C", so that NVRTC and nvcc give them the same names), each for float
// (_f32), double (_f64) and float32 on tensor cores (_tf32, compute capability 8.0+):
//   conv2d_forward_*(x, weight, out, geometry, tile)
//   conv2d_backward_data_*(gy, weight, out, geometry, tile)
//   conv2d_backward_weight_*(x, gy, out, geometry, tile)
//   conv2d_sum_splits_f32 / _f64(partial, out, size, splits)
// geometry: the 13 ints of ConvGeometry below, in order; tile: 0, 1, 2 for the TileShapes below.
// Launch with 256 threads and grid (ceil(rows / BM), ceil(columns / BN), splits).

constexpr int THREADS = 256;          // threads per block
constexpr int TILE_K = 16;            // depth staged in shared memory per step
constexpr int OUTSIDE = -(1 << 29);   // a window position that fails every bounds test

// The sizes of one convolution x (n, c, h, w) * w (o, c, kh, kw) -> y (n, o, oh, ow).
struct ConvGeometry {
    int n, c, h, w, o, kh, kw, oh, ow, sh, sw, ph, pw;
};

#define CONV_GEOMETRY_PARAMS \
    int n, int c, int h, int w, int o, int kh, int kw, int oh, int ow, int sh, int sw, int ph, int pw
#define CONV_GEOMETRY ConvGeometry{n, c, h, w, o, kh, kw, oh, ow, sh, sw, ph, pw}

// A block's tile of C, BM x BN, and how its 256 threads share the work.
template <int BM_, int BN_, int WARPS_M_>
struct TileShape {
    static constexpr int BM = BM_, BN = BN_;
    // shared rows padded so that a row is 8 words past a multiple of 32: the fragment reads of
    // lanes (g, t) = (lane / 4, lane % 4) at [t][g] land in 32 distinct banks
    static constexpr int A_LD = BM + 8, B_LD = BN % 32 == 8 ? BN : BN + 8;
    // float path: thread (tx, ty) = (tid % TX, tid / TX) holds rows tx + TX i, columns ty + TY j
    static constexpr int RM = 4, TX = BM / RM, TY = THREADS / TX, RN = BN / TY;
    // TF32 path: warp w computes rows (w % WARPS_M) WM + [0, WM), columns (w / WARPS_M) WN + [0, WN)
    static constexpr int WARPS_M = WARPS_M_, WARPS_N = THREADS / 32 / WARPS_M;
    static constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N, MT = WM / 16, NT = WN / 8;
    // staging: a thread loads A at row tid % BM, depths tid / BM + A_STEP r; B at depth tid % TILE_K,
    // columns tid / TILE_K + (THREADS / TILE_K) r (only threads below B_ELEMS when B is smaller)
    static constexpr int A_STEP = THREADS / BM, A_PER_THREAD = BM * TILE_K / THREADS;
    static constexpr int B_ELEMS = BN * TILE_K, B_PER_THREAD = (B_ELEMS + THREADS - 1) / THREADS;
    static_assert(RN * TY == BN && MT * 16 == WM && NT * 8 == WN && A_STEP * BM == THREADS, "tile shape");
};
using WideTile = TileShape<64, 64, 2>;     // tile 0
using HalfTile = TileShape<64, 32, 2>;     // tile 1: 17 to 32 columns
using NarrowTile = TileShape<128, 8, 8>;   // tile 2: up to 8 columns (1 or 3 output channels)

// Shared memory of one block: the depth maps and the A and B tiles, two stages of each.
template <typename T, typename S>
struct Stages {
    int4 a_map[2][TILE_K];     // the DepthMap of depth k0 + kk, as (off, y, x, phase)
    int b_map[2][TILE_K];      // B's offset of that depth, -1 past the slice
    T a[2][TILE_K][S::A_LD];   // a[st][kk][mm] = A(m0 + mm, k0 + kk)
    T b[2][TILE_K][S::B_LD];   // b[st][kk][nn] = B(k0 + kk, n0 + nn)
};
template <typename T>
struct StageBytes {   // the largest of the three, for one shared buffer
    static constexpr int w = sizeof(Stages<T, WideTile>), h = sizeof(Stages<T, HalfTile>);
    static constexpr int value = (w > h ? w : h) > sizeof(Stages<T, NarrowTile>) ? (w > h ? w : h)
                                                                                 : sizeof(Stages<T, NarrowTile>);
};

// One digit v of a depth position with its quotient and remainder by a stride s: v = q s + r.
struct Phased {
    int v, q, r;
};
__device__ Phased phased(int v, int s) { return {v, v / s, v % s}; }

// p += d + carry_in, wrapped at n (one subtraction suffices: p, d < n); returns the carry out.
__device__ int step_digit(Phased &p, const Phased &d, const Phased &n, int s, int carry_in) {
    p.v += d.v + carry_in;
    p.q += d.q;
    p.r += d.r + carry_in;
    if (p.r >= s) { p.r -= s; p.q += 1; }
    if (p.v < n.v) return 0;
    p.v -= n.v;
    p.q -= n.q;
    p.r -= n.r;
    if (p.r < 0) { p.r += s; p.q -= 1; }
    return 1;
}

// Depth position k = (d0, d1, d2) in radices (-, n1, n2), digits 1 and 2 phased by strides s1, s2,
// and the step TILE_K in the same digits.
struct Cursor {
    int k, d0, e0;
    Phased d1, d2, e1, e2, n1, n2;
    int s1, s2;
};
__device__ Cursor cursor_at(int k, int n1, int n2, int s1, int s2) {
    return {k, k / n2 / n1, TILE_K / n2 / n1, phased(k / n2 % n1, s1), phased(k % n2, s2),
            phased(TILE_K / n2 % n1, s1), phased(TILE_K % n2, s2), phased(n1, s1), phased(n2, s2), s1, s2};
}
__device__ void advance(Cursor &c) {
    c.k += TILE_K;
    const int carry = step_digit(c.d2, c.e2, c.n2, c.s2, 0);
    c.d0 += c.e0 + step_digit(c.d1, c.e1, c.n1, c.s1, carry);
}

// The window test of forward and backward-weight: x[row.off + t.off] is inside [0, H) x [0, W).
__device__ bool in_window(const ConvGeometry &g, int4 row, int4 t) {
    return unsigned(row.y + t.y) < unsigned(g.h) && unsigned(row.z + t.z) < unsigned(g.w);
}

// forward: y = conv2d(x, w). RowMap (off, y, x, -) of row (nb, oy, ox): off = x's offset of the
// window's corner, (y, x) = (oy SH - PH, ox SW - PW); DepthMap of (c, i, j): (c H W + i W + j, i, j, -).
template <typename T>
struct Forward {
    const T *a_src, *b_src;
    T *out;
    ConvGeometry g;

    __device__ int rows() const { return g.n * g.oh * g.ow; }
    __device__ int cols() const { return g.o; }
    __device__ int depth() const { return g.c * g.kh * g.kw; }
    __device__ int b_stride() const { return depth(); }   // B(k, o) = weight[k + o depth]
    __device__ int4 row(int m) const {
        if (m >= rows()) return {0, OUTSIDE, 0, 0};
        const int ox = m % g.ow, oy = m / g.ow % g.oh, nb = m / (g.ow * g.oh);
        const int y = oy * g.sh - g.ph, x = ox * g.sw - g.pw;
        return {(nb * g.c * g.h + y) * g.w + x, y, x, 0};
    }
    __device__ Cursor cursor(int k) const { return cursor_at(k, g.kh, g.kw, 1, 1); }
    __device__ void maps(const Cursor &c, int k_end, int4 &a, int &b) const {
        a = c.k < k_end ? int4{(c.d0 * g.h + c.d1.v) * g.w + c.d2.v, c.d1.v, c.d2.v, 0} : int4{0, OUTSIDE, 0, 0};
        b = c.k < k_end ? c.k : -1;
    }
    __device__ bool a_valid(int4 row, int4 t) const { return in_window(g, row, t); }
    __device__ int out_row(int m) const { return m + m / (g.oh * g.ow) * (g.o - 1) * g.oh * g.ow; }
    __device__ int out_stride() const { return g.oh * g.ow; }
};

// backward-data: gx = the adjoint of conv2d(., w) applied to gy. Row (nb, iy, ix) with
// iy + PH = qy SH + ry (likewise x): RowMap (gy's offset of (nb, 0, qy, qx), qy, qx, ry << 16 | rx).
// Depth (o, i, j) with i = iq SH + ir: DepthMap (o OH OW - iq OW - jq, iq, jq, ir << 16 | jr); the
// pair reads gy[nb, o, qy - iq, qx - jq] when the phases agree and that lies inside gy.
template <typename T>
struct BackwardData {
    const T *a_src, *b_src;
    T *out;
    ConvGeometry g;

    __device__ int rows() const { return g.n * g.h * g.w; }
    __device__ int cols() const { return g.c; }
    __device__ int depth() const { return g.o * g.kh * g.kw; }
    __device__ int b_stride() const { return g.kh * g.kw; }   // B(k, c) = weight[b_map(k) + c KH KW]
    __device__ int4 row(int m) const {
        if (m >= rows()) return {0, 0, 0, -1};
        const int ix = m % g.w, iy = m / g.w % g.h, nb = m / (g.w * g.h);
        const int qy = (iy + g.ph) / g.sh, ry = (iy + g.ph) % g.sh, qx = (ix + g.pw) / g.sw, rx = (ix + g.pw) % g.sw;
        return {(nb * g.o * g.oh + qy) * g.ow + qx, qy, qx, ry << 16 | rx};
    }
    __device__ Cursor cursor(int k) const { return cursor_at(k, g.kh, g.kw, g.sh, g.sw); }
    __device__ void maps(const Cursor &c, int k_end, int4 &a, int &b) const {
        a = c.k < k_end ? int4{c.d0 * g.oh * g.ow - c.d1.q * g.ow - c.d2.q, c.d1.q, c.d2.q, c.d1.r << 16 | c.d2.r}
                        : int4{0, 0, 0, -2};
        b = c.k < k_end ? (c.d0 * g.c * g.kh + c.d1.v) * g.kw + c.d2.v : -1;
    }
    __device__ bool a_valid(int4 row, int4 t) const {
        return row.w == t.w && unsigned(row.y - t.y) < unsigned(g.oh) && unsigned(row.z - t.z) < unsigned(g.ow);
    }
    __device__ int out_row(int m) const { return m + m / (g.h * g.w) * (g.c - 1) * g.h * g.w; }
    __device__ int out_stride() const { return g.h * g.w; }
};

// backward-weight: gw = the gradient of <gy, conv2d(x, w)> in w. RowMap of (c, i, j): (x's offset
// of (0, c, i - PH, j - PW), i - PH, j - PW, -); DepthMap of (nb, oy, ox): (nb C H W + oy SH W + ox SW,
// oy SH, ox SW, -); B's offset of the depth: gy's offset of (nb, 0, oy, ox).
template <typename T>
struct BackwardWeight {
    const T *a_src, *b_src;
    T *out;
    ConvGeometry g;

    __device__ int rows() const { return g.c * g.kh * g.kw; }
    __device__ int cols() const { return g.o; }
    __device__ int depth() const { return g.n * g.oh * g.ow; }
    __device__ int b_stride() const { return g.oh * g.ow; }   // B(k, o) = gy[b_map(k) + o OH OW]
    __device__ int4 row(int m) const {
        if (m >= rows()) return {0, OUTSIDE, 0, 0};
        const int j = m % g.kw, i = m / g.kw % g.kh, ch = m / (g.kw * g.kh);
        const int y = i - g.ph, x = j - g.pw;
        return {(ch * g.h + y) * g.w + x, y, x, 0};
    }
    __device__ Cursor cursor(int k) const { return cursor_at(k, g.oh, g.ow, 1, 1); }
    __device__ void maps(const Cursor &c, int k_end, int4 &a, int &b) const {
        const int y = c.d1.v * g.sh, x = c.d2.v * g.sw;
        a = c.k < k_end ? int4{(c.d0 * g.c * g.h + y) * g.w + x, y, x, 0} : int4{0, OUTSIDE, 0, 0};
        b = c.k < k_end ? (c.d0 * g.o * g.oh + c.d1.v) * g.ow + c.d2.v : -1;
    }
    __device__ bool a_valid(int4 row, int4 t) const { return in_window(g, row, t); }
    __device__ int out_row(int m) const { return m; }
    __device__ int out_stride() const { return rows(); }
};

// *dst = ok ? *src : 0, asynchronously on compute capability 8.0+ (cp.async with a source size
// of 0 fills zeros), a plain load and store before. (__cvta_generic_to_shared: NVRTC 11.2+.)
template <typename T>
__device__ void copy_async(T *dst, const T *src, bool ok) {
#if __CUDA_ARCH__ >= 800
    const unsigned to = static_cast<unsigned>(__cvta_generic_to_shared(dst));
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n"
                 :: "r"(to), "l"(src), "n"(int(sizeof(T))), "r"(ok ? int(sizeof(T)) : 0) : "memory");
#else
    *dst = ok ? *src : T(0);
#endif
}
__device__ void commit_copies() {
#if __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
__device__ void wait_all_but_last_copies() {   // the copies of every group but the newest have landed
#if __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group 1;\n" ::: "memory");
#endif
}

// The float32 value rounded to TF32 (round to nearest, ties away), kept in a float's bits.
// Both TF32 helpers need compute capability 8.0; built for an older GPU they trap instead
// (cuda_kernels.py refuses tf32 there before launching anything).
__device__ unsigned to_tf32(float v) {
#if __CUDA_ARCH__ >= 800
    unsigned bits;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(bits) : "f"(v));
    return bits;
#else
    __trap();
    return 0;
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

// C = A B for the problem p (Forward, BackwardData or BackwardWeight): this block's BM x BN tile
// of C, over this block's slice of the depth, stored to slice blockIdx.z of p.out.
// TensorCores: the TF32 path (T = float only).
template <typename T, bool TensorCores, typename S, typename Problem>
__device__ void gemm_tile(const Problem &p, Stages<T, S> &st) {
    const int rows = p.rows(), cols = p.cols(), depth = p.depth(), tid = threadIdx.x;
    const int m0 = blockIdx.x * S::BM, n0 = blockIdx.y * S::BN;
    // this block's slice [k_begin, k_end) of the depth: gridDim.z slices of equal whole steps
    const int slice = (depth + gridDim.z * TILE_K - 1) / (gridDim.z * TILE_K) * TILE_K;
    const int k_begin = blockIdx.z * slice, k_end = min(depth, k_begin + slice);
    const int steps = k_end > k_begin ? (k_end - k_begin + TILE_K - 1) / TILE_K : 0;

    const int a_mm = tid % S::BM, a_kk = tid / S::BM;     // this thread's row of A, first depth
    const int4 row = p.row(m0 + a_mm);
    const int b_kk = tid % TILE_K, b_nn = tid / TILE_K;   // this thread's depth of B, first column
    const int b_stride = p.b_stride();
    Cursor cursor;
    if (tid < TILE_K) cursor = p.cursor(k_begin + tid);

    // the depth maps of the next unmapped step into stage `to`, by the first TILE_K threads
    auto map_depths = [&](int to) {
        if (tid < TILE_K) {
            p.maps(cursor, k_end, st.a_map[to][tid], st.b_map[to][tid]);
            advance(cursor);
        }
    };
    // stage `to` of A and B from the depth maps there
    auto load = [&](int to) {
#pragma unroll
        for (int r = 0; r < S::A_PER_THREAD; ++r) {
            const int kk = a_kk + S::A_STEP * r;
            const int4 t = st.a_map[to][kk];
            const bool ok = p.a_valid(row, t);
            copy_async(&st.a[to][kk][a_mm], p.a_src + (ok ? row.x + t.x : 0), ok);
        }
        const int kb = st.b_map[to][b_kk];
#pragma unroll
        for (int r = 0; r < S::B_PER_THREAD; ++r) {
            const int nn = b_nn + THREADS / TILE_K * r;
            if (S::B_ELEMS % THREADS == 0 || nn < S::BN) {
                const bool ok = kb >= 0 && n0 + nn < cols;
                copy_async(&st.b[to][b_kk][nn], p.b_src + (ok ? kb + (n0 + nn) * b_stride : 0), ok);
            }
        }
    };

    float tc[S::MT * S::NT][4] = {};   // TF32: tc[mt NT + nt][r] = D(r) of mma tile (mt, nt)
    T acc[S::RM][S::RN] = {};          // float: acc[i][j] = C(m0 + tx + TX i, n0 + ty + TY j)
    const int lane = tid % 32, warp = tid / 32, g = lane / 4, t4 = lane % 4;
    const int wm = warp % S::WARPS_M * S::WM, wn = warp / S::WARPS_M * S::WN;
    const int tx = tid % S::TX, ty = tid / S::TX;

    map_depths(0);
    __syncthreads();
    if (steps > 0) load(0);
    commit_copies();
    map_depths(1);
    for (int s = 0; s < steps; ++s) {
        const int cur = s & 1, next = cur ^ 1;
        __syncthreads();                  // maps of step s + 1 written; stage `next` no longer read
        if (s + 1 < steps) load(next);
        commit_copies();
        map_depths(cur);                  // step s + 2's maps: stage `cur`'s were read by load(cur)
        wait_all_but_last_copies();       // this thread's copies of step s have landed
        __syncthreads();                  // and everyone's
        if constexpr (TensorCores) {
#pragma unroll
            for (int k8 = 0; k8 < TILE_K; k8 += 8) {
                unsigned a[S::MT][4], b[S::NT][2];
#pragma unroll
                for (int mt = 0; mt < S::MT; ++mt) {
                    const int r = wm + mt * 16 + g;
                    a[mt][0] = to_tf32(st.a[cur][k8 + t4][r]);
                    a[mt][1] = to_tf32(st.a[cur][k8 + t4][r + 8]);
                    a[mt][2] = to_tf32(st.a[cur][k8 + t4 + 4][r]);
                    a[mt][3] = to_tf32(st.a[cur][k8 + t4 + 4][r + 8]);
                }
#pragma unroll
                for (int nt = 0; nt < S::NT; ++nt) {
                    const int col = wn + nt * 8 + g;
                    b[nt][0] = to_tf32(st.b[cur][k8 + t4][col]);
                    b[nt][1] = to_tf32(st.b[cur][k8 + t4 + 4][col]);
                }
#pragma unroll
                for (int mt = 0; mt < S::MT; ++mt)
#pragma unroll
                    for (int nt = 0; nt < S::NT; ++nt) mma_tf32(tc[mt * S::NT + nt], a[mt], b[nt]);
            }
        } else {
#pragma unroll
            for (int kk = 0; kk < TILE_K; ++kk) {
                T a[S::RM], b[S::RN];
#pragma unroll
                for (int i = 0; i < S::RM; ++i) a[i] = st.a[cur][kk][tx + S::TX * i];
#pragma unroll
                for (int j = 0; j < S::RN; ++j) b[j] = st.b[cur][kk][ty + S::TY * j];
#pragma unroll
                for (int i = 0; i < S::RM; ++i)
#pragma unroll
                    for (int j = 0; j < S::RN; ++j) acc[i][j] += a[i] * b[j];
            }
        }
    }

    T *out = p.out + blockIdx.z * rows * cols;   // this slice's copy of the output
    const int out_stride = p.out_stride();
    if constexpr (TensorCores) {   // tc[mt NT + nt][r] is D(g + 8 (r/2), 2 t4 + r%2) of mma tile (mt, nt)
#pragma unroll
        for (int mt = 0; mt < S::MT; ++mt)
#pragma unroll
            for (int half = 0; half < 2; ++half) {
                const int m = m0 + wm + mt * 16 + g + 8 * half;
                if (m >= rows) continue;
                const int at = p.out_row(m);
#pragma unroll
                for (int nt = 0; nt < S::NT; ++nt)
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        const int col = n0 + wn + nt * 8 + 2 * t4 + e;
                        if (col < cols) out[at + col * out_stride] = tc[mt * S::NT + nt][2 * half + e];
                    }
            }
    } else {
#pragma unroll
        for (int i = 0; i < S::RM; ++i) {
            const int m = m0 + tx + S::TX * i;
            if (m >= rows) continue;
            const int at = p.out_row(m);
#pragma unroll
            for (int j = 0; j < S::RN; ++j) {
                const int col = n0 + ty + S::TY * j;
                if (col < cols) out[at + col * out_stride] = acc[i][j];
            }
        }
    }
}

// The tile shape `tile` (0 wide, 1 half, 2 narrow) of the product p, in one shared buffer.
template <typename T, bool TensorCores, typename Problem>
__device__ void implicit_gemm(const Problem &p, int tile) {
    __shared__ alignas(16) unsigned char shared[StageBytes<T>::value];
    if (tile == 2) gemm_tile<T, TensorCores>(p, *reinterpret_cast<Stages<T, NarrowTile> *>(shared));
    else if (tile == 1) gemm_tile<T, TensorCores>(p, *reinterpret_cast<Stages<T, HalfTile> *>(shared));
    else gemm_tile<T, TensorCores>(p, *reinterpret_cast<Stages<T, WideTile> *>(shared));
}

// out[i] = partial[i] + partial[size + i] + ... + partial[(splits - 1) size + i], in that order.
template <typename T>
__device__ void sum_splits(const T *partial, T *out, long long size, int splits) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < size;
         i += (long long)gridDim.x * blockDim.x) {
        T s = partial[i];
        for (int z = 1; z < splits; ++z) s += partial[z * size + i];
        out[i] = s;
    }
}

// ---- entry points -------------------------------------------------------------------------------

// y[n, o, oy, ox] = sum_{c,i,j} x[n, c, oy SH + i - PH, ox SW + j - PW] w[o, c, i, j]
extern "C" __global__ void __launch_bounds__(THREADS)
conv2d_forward_f32(const float *x, const float *weight, float *out, CONV_GEOMETRY_PARAMS, int tile) {
    implicit_gemm<float, false>(Forward<float>{x, weight, out, CONV_GEOMETRY}, tile);
}
extern "C" __global__ void __launch_bounds__(THREADS)
conv2d_forward_f64(const double *x, const double *weight, double *out, CONV_GEOMETRY_PARAMS, int tile) {
    implicit_gemm<double, false>(Forward<double>{x, weight, out, CONV_GEOMETRY}, tile);
}
extern "C" __global__ void __launch_bounds__(THREADS)
conv2d_forward_tf32(const float *x, const float *weight, float *out, CONV_GEOMETRY_PARAMS, int tile) {
    implicit_gemm<float, true>(Forward<float>{x, weight, out, CONV_GEOMETRY}, tile);
}

// gx[n, c, iy, ix] = sum_{o,i,j} gy[n, o, (iy + PH - i) / SH, (ix + PW - j) / SW] w[o, c, i, j], exact divisions only
extern "C" __global__ void __launch_bounds__(THREADS)
conv2d_backward_data_f32(const float *gy, const float *weight, float *out, CONV_GEOMETRY_PARAMS, int tile) {
    implicit_gemm<float, false>(BackwardData<float>{gy, weight, out, CONV_GEOMETRY}, tile);
}
extern "C" __global__ void __launch_bounds__(THREADS)
conv2d_backward_data_f64(const double *gy, const double *weight, double *out, CONV_GEOMETRY_PARAMS, int tile) {
    implicit_gemm<double, false>(BackwardData<double>{gy, weight, out, CONV_GEOMETRY}, tile);
}
extern "C" __global__ void __launch_bounds__(THREADS)
conv2d_backward_data_tf32(const float *gy, const float *weight, float *out, CONV_GEOMETRY_PARAMS, int tile) {
    implicit_gemm<float, true>(BackwardData<float>{gy, weight, out, CONV_GEOMETRY}, tile);
}

// gw[o, c, i, j] = sum_{n,oy,ox} x[n, c, oy SH + i - PH, ox SW + j - PW] gy[n, o, oy, ox]
extern "C" __global__ void __launch_bounds__(THREADS)
conv2d_backward_weight_f32(const float *x, const float *gy, float *out, CONV_GEOMETRY_PARAMS, int tile) {
    implicit_gemm<float, false>(BackwardWeight<float>{x, gy, out, CONV_GEOMETRY}, tile);
}
extern "C" __global__ void __launch_bounds__(THREADS)
conv2d_backward_weight_f64(const double *x, const double *gy, double *out, CONV_GEOMETRY_PARAMS, int tile) {
    implicit_gemm<double, false>(BackwardWeight<double>{x, gy, out, CONV_GEOMETRY}, tile);
}
extern "C" __global__ void __launch_bounds__(THREADS)
conv2d_backward_weight_tf32(const float *x, const float *gy, float *out, CONV_GEOMETRY_PARAMS, int tile) {
    implicit_gemm<float, true>(BackwardWeight<float>{x, gy, out, CONV_GEOMETRY}, tile);
}

// out = the sum of the split partials (splits, size), slice by slice in order
extern "C" __global__ void conv2d_sum_splits_f32(const float *partial, float *out, long long size, int splits) {
    sum_splits(partial, out, size, splits);
}
extern "C" __global__ void conv2d_sum_splits_f64(const double *partial, double *out, long long size, int splits) {
    sum_splits(partial, out, size, splits);
}

// The three conv2d primitives, by im2col + GEMM over chunks of the batch.
//
//   forward          y[n]  = W  @ col(x[n])          W: (M, K), K = C*kh*kw, col: (K, P), P = OH*OW
//   backward-data    gx[n] = col2im(W^T @ gy[n])
//   backward-weight  gW    = sum_n gy[n] @ col(x[n])^T
//
// The column matrix of a chunk of nb samples is (K, nb*P) (row k = (c, i, j), columns
// sample-major), sized to stay in cache (set_chunk_bytes), so each GEMM is one BLAS call
// over the chunk; im2col/col2im and the NCHW gathers run on OpenMP threads, the GEMM on
// the BLAS's. conv_transpose2d is the adjoint: its forward is backward-data. Where it
// measured faster (narrow float32 layers, an AVX-512 build: direct_for below), the
// primitives run the direct conv of direct.cpp instead, with no column matrix.
#include <algorithm>
#include <ctime>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "minigan.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mg {

namespace {

int64_t g_chunk_bytes = 2 << 20;  // measured: 1-2 MiB beat 256 KiB and 4 MiB+ (bench/RESULTS.md)

struct Geom : ConvShape {
    int64_t K() const { return c * kh * kw; }
    int64_t P() const { return oh * ow; }
    int64_t chunk(size_t elem) const {  // samples per chunk: the column buffer fits g_chunk_bytes
        const int64_t per = std::max<int64_t>(1, K() * P() * int64_t(elem));
        return std::max<int64_t>(1, std::min<int64_t>(n, g_chunk_bytes / per));
    }
};

int64_t ceil_div(int64_t a, int64_t b) { return a <= 0 ? 0 : (a + b - 1) / b; }

Geom make_geom(int64_t n, int64_t c, int64_t h, int64_t w, int64_t m, int64_t wc, int64_t kh,
               int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw) {
    if (c != wc)
        throw std::invalid_argument("conv2d: input has " + std::to_string(c) +
                                    " channels but the weight expects " + std::to_string(wc));
    if (sh < 1 || sw < 1 || ph < 0 || pw < 0)
        throw std::invalid_argument("conv2d: stride must be >= 1 and padding >= 0");
    Geom g{{n, c, h, w, m, kh, kw, sh, sw, ph, pw, 0, 0}};
    g.oh = (h + 2 * ph - kh) / sh + 1;
    g.ow = (w + 2 * pw - kw) / sw + 1;
    if (h + 2 * ph < kh || w + 2 * pw < kw || g.oh < 1 || g.ow < 1)
        throw std::invalid_argument("conv2d: the kernel is larger than the padded input");
    return g;
}

// Valid output columns [lo, hi) for kernel column j: 0 <= ow*sw - pw + j < w.
inline void col_range(const Geom &g, int64_t j, int64_t &lo, int64_t &hi) {
    lo = std::min(g.ow, ceil_div(g.pw - j, g.sw));
    hi = std::max(lo, std::min(g.ow, ceil_div(g.w + g.pw - j, g.sw)));
}

// ---- layout changes ------------------------------------------------------------
// Rows [r0, r1) of dst (cols x rows) = src (rows x cols)^T.
template <typename T>
void transpose_rows(const T *__restrict src, int64_t rows, int64_t cols, T *__restrict dst, int64_t r0,
                    int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * cols + c];
}

#if defined(__AVX2__)
// 8x8 float block: d[j * ld + i] = s[i * ls + j], in registers (unpack, shuffle, lane swap).
inline void transpose8x8(const float *s, int64_t ls, float *d, int64_t ld) {
    __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + ls), r2 = _mm256_loadu_ps(s + 2 * ls),
           r3 = _mm256_loadu_ps(s + 3 * ls), r4 = _mm256_loadu_ps(s + 4 * ls),
           r5 = _mm256_loadu_ps(s + 5 * ls), r6 = _mm256_loadu_ps(s + 6 * ls),
           r7 = _mm256_loadu_ps(s + 7 * ls);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1),
           t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3),
           t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
           t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
           u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
           u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
           u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(d + ld, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(d + 2 * ld, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(d + 3 * ld, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(d + 4 * ld, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(d + 5 * ld, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(d + 6 * ld, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(d + 7 * ld, _mm256_permute2f128_ps(u3, u7, 0x31));
}

template <>
void transpose_rows<float>(const float *__restrict src, int64_t rows, int64_t cols, float *__restrict dst,
                           int64_t r0, int64_t r1) {
    int64_t r = r0;
    for (; r + 8 <= r1; r += 8) {
        int64_t c = 0;
        for (; c + 8 <= cols; c += 8) transpose8x8(src + r * cols + c, cols, dst + c * rows + r, rows);
        for (; c < cols; ++c)
            for (int64_t i = r; i < r + 8; ++i) dst[c * rows + i] = src[i * cols + c];
    }
    for (; r < r1; ++r)
        for (int64_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * cols + c];
}
#endif

// dst (cols x rows) = src (rows x cols)^T, for each of nb matrices, in blocks of 32 rows.
template <typename T>
void transpose_batch(const T *src, int64_t nb, int64_t rows, int64_t cols, T *dst) {
    constexpr int64_t B = 32;
    const int64_t blocks = (rows + B - 1) / B;
#pragma omp parallel for collapse(2) schedule(static) num_threads(team_for(nb * rows * cols))
    for (int64_t nl = 0; nl < nb; ++nl)
        for (int64_t b = 0; b < blocks; ++b)
            transpose_rows(src + nl * rows * cols, rows, cols, dst + nl * rows * cols, b * B,
                           std::min(rows, (b + 1) * B));
}

// ---- im2col / col2im, channels last ---------------------------------------------
// xt: nb samples NHWC. col[(nl, oh, ow)][(i, j, c)], row length K = kh*kw*C, one
// im2col_row (minigan.h) per output pixel.
template <typename T>
void im2col_cl(const T *xt, const Geom &g, int64_t nb, T *col) {
    const int64_t K = g.K();
#pragma omp parallel for collapse(2) schedule(static) num_threads(team_for(nb * g.P() * K))
    for (int64_t nl = 0; nl < nb; ++nl) {
        for (int64_t oh = 0; oh < g.oh; ++oh) {
            const T *xn = xt + nl * g.h * g.w * g.c;
            T *row = col + (nl * g.oh + oh) * g.ow * K;
            for (int64_t ow = 0; ow < g.ow; ++ow, row += K) im2col_row(xn, g, oh, ow, row);
        }
    }
}

// For each input row ih (or column), the kernel taps t and output rows o that read it:
// ih = o * stride - pad + t. At most ceil(k / stride) pairs per input row.
struct Taps {
    std::vector<int32_t> count, tap, out;  // count[ih]; tap/out[ih * k + q] for q < count[ih]
    Taps(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t out_size)
        : count(in, 0), tap(in * k), out(in * k) {
        for (int64_t o = 0; o < out_size; ++o)
            for (int64_t t = 0; t < k; ++t) {
                const int64_t i = o * stride - pad + t;
                if (i < 0 || i >= in) continue;
                const int64_t q = count[i]++;
                tap[i * k + q] = int32_t(t);
                out[i * k + q] = int32_t(o);
            }
    }
};

// Adjoint of im2col_cl, as a gather: gxt[nl, ih, iw, :] = sum of the col runs that
// read that pixel, so each output row belongs to one thread and needs no zeroing pass.
// CC > 0 fixes the channel count at compile time: the C = 1 and 3 layers (images) then
// add in registers instead of calling memcpy for 4 or 12 bytes (2.5x on those layers).
template <typename T, int CC>
void col2im_cl_c(const T *col, const Geom &g, int64_t nb, T *gxt) {
    const int64_t K = g.K(), C = CC > 0 ? CC : g.c;
    const Taps th(g.h, g.kh, g.sh, g.ph, g.oh), tw(g.w, g.kw, g.sw, g.pw, g.ow);
#pragma omp parallel for collapse(2) schedule(static) num_threads(team_for(nb * g.P() * K))
    for (int64_t nl = 0; nl < nb; ++nl) {
        for (int64_t ih = 0; ih < g.h; ++ih) {
            const T *cn = col + nl * g.P() * K;
            for (int64_t iw = 0; iw < g.w; ++iw) {
                T *__restrict d = gxt + ((nl * g.h + ih) * g.w + iw) * C;
                bool first = true;
                for (int32_t a = 0; a < th.count[ih]; ++a) {
                    const int64_t i = th.tap[ih * g.kh + a], oh = th.out[ih * g.kh + a];
                    for (int32_t b = 0; b < tw.count[iw]; ++b) {
                        const int64_t j = tw.tap[iw * g.kw + b], ow = tw.out[iw * g.kw + b];
                        const T *__restrict s = cn + (oh * g.ow + ow) * K + (i * g.kw + j) * C;
                        if (first) for (int64_t c = 0; c < C; ++c) d[c] = s[c];
                        else for (int64_t c = 0; c < C; ++c) d[c] += s[c];
                        first = false;
                    }
                }
                if (first) for (int64_t c = 0; c < C; ++c) d[c] = T(0);
            }
        }
    }
}

template <typename T>
void col2im_cl(const T *col, const Geom &g, int64_t nb, T *gxt) {
    if (g.c == 1) col2im_cl_c<T, 1>(col, g, nb, gxt);
    else if (g.c == 3) col2im_cl_c<T, 3>(col, g, nb, gxt);
    else col2im_cl_c<T, 0>(col, g, nb, gxt);
}

template <typename T>
std::unique_ptr<T[]> buffer(int64_t n) {
    return std::unique_ptr<T[]>(new T[std::max<int64_t>(n, 1)]);
}

// Scratch memory that outlives a call: one arena per calling thread, grown on demand, so
// the column buffers of every conv reuse pages already mapped (a fresh multi-MB buffer
// per call costs a page fault per 4 KiB, which showed up as ~20% of im2col's time).
template <typename T>
T *scratch(int64_t n) {
    thread_local std::unique_ptr<char[]> arena;
    thread_local size_t capacity = 0;
    const size_t bytes = sizeof(T) * size_t(std::max<int64_t>(n, 1)) + 64;
    if (bytes > capacity) {
        arena.reset(new char[bytes]);
        capacity = bytes;
    }
    return reinterpret_cast<T *>((reinterpret_cast<uintptr_t>(arena.get()) + 63) & ~uintptr_t(63));
}

// Optional time per phase (set_profile(True); profile() -> {phase: seconds}), to see where
// a primitive spends its time; off by default, and then it costs one branch per phase.
bool g_profile = false;
double g_phase[6] = {0, 0, 0, 0, 0, 0};
const char *g_phase_name[6] = {"to_nhwc", "im2col", "gemm", "to_nchw", "col2im", "other"};
inline double thread_seconds() {  // CPU time of this thread: steady on a shared machine
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}
struct Phase {
    int id;
    double t0 = 0;
    explicit Phase(int i) : id(i) {
        if (g_profile) t0 = thread_seconds();
    }
    ~Phase() {
        if (g_profile) {
            const double dt = thread_seconds() - t0;
#pragma omp atomic
            g_phase[id] += dt;
        }
    }
};

void check4(const py::array &a, const char *what) {
    if (a.ndim() != 4) throw std::invalid_argument(std::string("conv2d: ") + what + " must be 4-D");
}

// (M, C, kh, kw) <-> (M, kh, kw, C): the weight in the column order of im2col_cl
template <typename T>
void weight_to_cl(const T *w, const Geom &g, T *wp) {
    transpose_batch(w, g.m, g.c, g.kh * g.kw, wp);
}

template <typename T>
void weight_from_cl(const T *wp, const Geom &g, T *w) {
    transpose_batch(wp, g.m, g.kh * g.kw, g.c, w);
}

// How a primitive walks the batch: chunks of nb samples, either one after another (each
// step's loops on OpenMP threads, the GEMM on the BLAS's threads) or, when the BLAS can
// be made serial per thread, chunks spread over the threads (one parallel region, no
// two thread pools taking turns). `slots` sets of per-thread buffers are needed.
struct Plan {
    int64_t nb, chunks;
    int slots;
    bool parallel;
};

Plan plan_of(const Geom &g, size_t elem) {
    const int nt = num_threads();
    int64_t nb = g.chunk(elem);
    const bool split = nt > 1 && blas_splits() && g.n > 1 && g.n * g.P() * g.K() >= (int64_t(1) << 16);
    if (split) nb = std::min<int64_t>(nb, std::max<int64_t>(1, (g.n + 2 * nt - 1) / (2 * nt)));
    const int64_t chunks = (g.n + nb - 1) / nb;
    const bool parallel = split && chunks > 1;
    return {nb, chunks, parallel ? nt : 1, parallel};
}

// body(n0, count, slot) for every chunk. Chunks go to threads as they free up: fine where
// each chunk writes its own outputs (forward, backward-data).
template <typename F>
void run_chunks(const Geom &g, const Plan &p, F &&body) {
    if (!p.parallel) {
        for (int64_t c = 0; c < p.chunks; ++c) body(c * p.nb, std::min(p.nb, g.n - c * p.nb), 0);
        return;
    }
    const int prev = blas_local(1);  // see blas_local (minigan.h)
#pragma omp parallel num_threads(p.slots)
    {
        blas_local(1);
        const int slot = thread_num();
#pragma omp for schedule(dynamic, 1)
        for (int64_t c = 0; c < p.chunks; ++c) body(c * p.nb, std::min(p.nb, g.n - c * p.nb), slot);
    }
    if (prev > 0) blas_local(prev);
}

// run_chunks for a sum over the batch (backward-weight): slot s always gets the same
// contiguous chunks, in order, whichever thread runs it, so that its partial sum, and the
// slot-order sum of the partials, are the same on every run (at a given thread count).
template <typename F>
void run_chunks_in_order(const Geom &g, const Plan &p, F &&body) {
    if (!p.parallel) {
        run_chunks(g, p, body);
        return;
    }
    const int prev = blas_local(1);  // see blas_local (minigan.h)
#pragma omp parallel num_threads(p.slots)
    {
        blas_local(1);
        for (int s = thread_num(); s < p.slots; s += team_size())
            for (int64_t c = p.chunks * s / p.slots; c < p.chunks * (s + 1) / p.slots; ++c)
                body(c * p.nb, std::min(p.nb, g.n - c * p.nb), s);
    }
    if (prev > 0) blas_local(prev);
}

// Activations may arrive, and leave, in either memory order: NCHW (C-contiguous) or
// NHWC (a channels-last buffer that Python shows as an NCHW-shaped view). The primitives
// compute in NHWC, so with NHWC in and out they skip every layout change: the GEMM writes
// its output rows straight into y. `*_nhwc` flags say that the array passed holds
// (N, H, W, C) memory; `nhwc_out` asks for the result in that order too.
struct Dims {
    int64_t n, c, h, w;
};

Dims dims_of(const py::array &a, bool nhwc) {
    return nhwc ? Dims{a.shape(0), a.shape(3), a.shape(1), a.shape(2)}
                : Dims{a.shape(0), a.shape(1), a.shape(2), a.shape(3)};
}

template <typename T>
Arr<T> new_act(int64_t n, int64_t c, int64_t h, int64_t w, bool nhwc) {
    return nhwc ? Arr<T>({n, h, w, c}) : Arr<T>({n, c, h, w});
}

// The direct conv (direct.cpp) instead of im2col + GEMM where it measured faster (bench/
// RESULTS.md): float32, an AVX-512 build, at least 16 input channels (the image layers
// have 1-3), and the narrow GEMMs OpenBLAS is weakest on: 16-64 output channels for the
// forward (0.76-0.93x of im2col + GEMM on the classifier; 1.0-1.6x with 128-256, where
// the BLAS is at its best), a weight gradient of under 128K values (0.70-0.90x; 1.03x
// on DCGAN-32's D2 at 128K). set_direct(False) turns it off (tests, A/B).
bool g_direct = true;

template <typename T>
bool direct_for(const Geom &g, bool weight_grad = false) {
    return std::is_same<T, float>::value && g_direct && direct_conv_available() && g.c >= 16 && g.m >= 16 &&
           (weight_grad ? g.K() * g.m < (int64_t(1) << 17) : g.m <= 64);
}

// y = conv(x) with the weight wt already as (kh, kw, C, M): x NHWC or NCHW in, y NHWC or NCHW out.
template <typename T>
void conv_direct(const T *xd, const T *wt, const Geom &g, bool x_nhwc, bool nhwc_out, T *yd) {
    if constexpr (std::is_same<T, float>::value) {
        const int64_t P = g.P(), HWC = g.h * g.w * g.c;
        // whole-batch layout changes (rare: the conv results, batch norm and pooling keep channels
        // last) in a buffer of this call, so that the scratch arena does not keep batch-sized memory
        const auto tmp = buffer<T>((x_nhwc ? 0 : g.n * HWC) + (nhwc_out ? 0 : g.n * P * g.m));
        T *xt = tmp.get(), *out = xt + (x_nhwc ? 0 : g.n * HWC);
        const T *xs = xd;
        if (!x_nhwc) {
            transpose_batch(xd, g.n, g.c, g.h * g.w, xt);
            xs = xt;
        }
        if (nhwc_out) out = yd;
        { Phase ph(2); direct_conv_forward(xs, g, wt, out); }
        if (!nhwc_out) transpose_batch(out, g.n, P, g.m, yd);
    }
}

// wt[i, j, c, m] = w[m, c, i, j] (forward), or, for the adjoint of a stride-1 conv, the
// flipped kernel with the channel roles swapped: wt[i, j, m, c] = w[m, c, kh-1-i, kw-1-j].
template <typename T>
std::vector<T> direct_weight(const T *w, int64_t M, int64_t C, int64_t kh, int64_t kw, bool adjoint) {
    std::vector<T> wt(size_t(M * C * kh * kw));
    for (int64_t m = 0; m < M; ++m)
        for (int64_t c = 0; c < C; ++c)
            for (int64_t i = 0; i < kh; ++i)
                for (int64_t j = 0; j < kw; ++j) {
                    const T v = w[((m * C + c) * kh + i) * kw + j];
                    if (adjoint) wt[size_t((((kh - 1 - i) * kw + (kw - 1 - j)) * M + m) * C + c)] = v;
                    else wt[size_t(((i * kw + j) * C + c) * M + m)] = v;
                }
    return wt;
}

template <typename T>
Arr<T> forward(Arr<T> x, Arr<T> w, int64_t sh, int64_t sw, int64_t ph, int64_t pw, bool x_nhwc,
               bool nhwc_out) {
    check4(x, "x");
    check4(w, "w");
    const Dims dx = dims_of(x, x_nhwc);
    const Geom g = make_geom(dx.n, dx.c, dx.h, dx.w, w.shape(0), w.shape(1), w.shape(2), w.shape(3), sh, sw,
                             ph, pw);
    Arr<T> y = new_act<T>(g.n, g.m, g.oh, g.ow, nhwc_out);
    const T *xd = x.data(), *wd = w.data();
    T *yd = y.mutable_data();
    if (direct_for<T>(g)) {
        py::gil_scoped_release nogil;
        const std::vector<T> wt = direct_weight(wd, g.m, g.c, g.kh, g.kw, false);
        conv_direct(xd, wt.data(), g, x_nhwc, nhwc_out, yd);
        return y;
    }
    {
        py::gil_scoped_release nogil;
        const int64_t K = g.K(), P = g.P(), HWC = g.h * g.w * g.c;
        const Plan p = plan_of(g, sizeof(T));
        const int64_t per = p.nb * ((x_nhwc ? 0 : HWC) + P * K + (nhwc_out ? 0 : P * g.m));
        T *wp = scratch<T>(g.m * K + p.slots * per), *work = wp + g.m * K;
        weight_to_cl(wd, g, wp);
        run_chunks(g, p, [&](int64_t n0, int64_t cur, int slot) {
            T *buf = work + slot * per, *xt = const_cast<T *>(xd) + n0 * HWC;
            if (!x_nhwc) {
                xt = buf;
                buf += p.nb * HWC;
                Phase ph(0);
                transpose_batch(xd + n0 * HWC, cur, g.c, g.h * g.w, xt);
            }
            T *col = buf, *out = nhwc_out ? yd + n0 * P * g.m : col + p.nb * P * K;
            { Phase ph(1); im2col_cl(xt, g, cur, col); }
            { Phase ph(2); gemm_team<T>(false, true, cur * P, g.m, K, T(1), col, K, wp, K, T(0), out, g.m); }
            if (!nhwc_out) {
                Phase ph(3);
                transpose_batch(out, cur, P, g.m, yd + n0 * g.m * P);
            }
        });
    }
    return y;
}

template <typename T>
Arr<T> backward_data(Arr<T> gy, Arr<T> w, int64_t h, int64_t wi, int64_t sh, int64_t sw, int64_t ph,
                     int64_t pw, bool gy_nhwc, bool nhwc_out) {
    check4(gy, "gy");
    check4(w, "w");
    const Dims dy = dims_of(gy, gy_nhwc);
    const Geom g = make_geom(dy.n, w.shape(1), h, wi, w.shape(0), w.shape(1), w.shape(2), w.shape(3), sh, sw,
                             ph, pw);
    if (dy.c != g.m || dy.h != g.oh || dy.w != g.ow)
        throw std::invalid_argument("conv2d_backward_data: gy's shape does not match the conv's output");
    Arr<T> gx = new_act<T>(g.n, g.c, g.h, g.w, nhwc_out);
    const T *gyd = gy.data(), *wd = w.data();
    T *gxd = gx.mutable_data();
    if (g.sh == 1 && g.sw == 1 && g.ph < g.kh && g.pw < g.kw) {
        // stride 1: gx = conv(gy, flipped w^T) with padding k - 1 - p, a direct conv where it applies
        const Geom a{{g.n, g.m, g.oh, g.ow, g.c, g.kh, g.kw, 1, 1, g.kh - 1 - g.ph, g.kw - 1 - g.pw, g.h, g.w}};
        if (direct_for<T>(a)) {
            py::gil_scoped_release nogil;
            const std::vector<T> wt = direct_weight(wd, g.m, g.c, g.kh, g.kw, true);
            conv_direct(gyd, wt.data(), a, gy_nhwc, nhwc_out, gxd);
            return gx;
        }
    }
    {
        py::gil_scoped_release nogil;
        const int64_t K = g.K(), P = g.P(), HWC = g.h * g.w * g.c;
        const Plan p = plan_of(g, sizeof(T));
        const int64_t per = p.nb * ((gy_nhwc ? 0 : P * g.m) + P * K + (nhwc_out ? 0 : HWC));
        T *wp = scratch<T>(g.m * K + p.slots * per), *work = wp + g.m * K;
        weight_to_cl(wd, g, wp);
        run_chunks(g, p, [&](int64_t n0, int64_t cur, int slot) {
            T *buf = work + slot * per, *gyt = const_cast<T *>(gyd) + n0 * P * g.m;
            if (!gy_nhwc) {
                gyt = buf;
                buf += p.nb * P * g.m;
                Phase ph(0);
                transpose_batch(gyd + n0 * g.m * P, cur, g.m, P, gyt);
            }
            T *gcol = buf, *gxt = nhwc_out ? gxd + n0 * HWC : gcol + p.nb * P * K;
            { Phase ph(2); gemm_team<T>(false, false, cur * P, K, g.m, T(1), gyt, g.m, wp, K, T(0), gcol, K); }
            { Phase ph(4); col2im_cl(gcol, g, cur, gxt); }
            if (!nhwc_out) {
                Phase ph(3);
                transpose_batch(gxt, cur, g.h * g.w, g.c, gxd + n0 * HWC);
            }
        });
    }
    return gx;
}

template <typename T>
Arr<T> backward_weight(Arr<T> x, Arr<T> gy, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                       int64_t ph, int64_t pw, bool x_nhwc, bool gy_nhwc) {
    check4(x, "x");
    check4(gy, "gy");
    const Dims dx = dims_of(x, x_nhwc), dy = dims_of(gy, gy_nhwc);
    const Geom g = make_geom(dx.n, dx.c, dx.h, dx.w, dy.c, dx.c, kh, kw, sh, sw, ph, pw);
    if (dy.n != g.n || dy.h != g.oh || dy.w != g.ow)
        throw std::invalid_argument("conv2d_backward_weight: gy's shape does not match the conv's output");
    Arr<T> gw({g.m, g.c, g.kh, g.kw});
    const T *xd = x.data(), *gyd = gy.data();
    T *gwd = gw.mutable_data();
    if constexpr (std::is_same<T, float>::value) {
        if (direct_for<T>(g, true)) {
            py::gil_scoped_release nogil;
            const int64_t K = g.K(), P = g.P(), HWC = g.h * g.w * g.c;
            T *gkm = scratch<T>(2 * K * g.m), *wp = gkm + K * g.m;
            const auto tmp = buffer<T>((x_nhwc ? 0 : g.n * HWC) + (gy_nhwc ? 0 : g.n * P * g.m));
            T *xt = tmp.get(), *gyt = xt + (x_nhwc ? 0 : g.n * HWC);
            if (!x_nhwc) transpose_batch(xd, g.n, g.c, g.h * g.w, xt);
            if (!gy_nhwc) transpose_batch(gyd, g.n, g.m, P, gyt);
            { Phase ph(2); direct_conv_backward_weight(x_nhwc ? xd : xt, g, gy_nhwc ? gyd : gyt, gkm); }
            transpose_batch(gkm, 1, K, g.m, wp);    // (kh, kw, C, M) -> (M, kh, kw, C)
            weight_from_cl(wp, g, gwd);
            return gw;
        }
    }
    {
        py::gil_scoped_release nogil;
        const int64_t K = g.K(), P = g.P(), HWC = g.h * g.w * g.c, MK = g.m * K;
        const Plan p = plan_of(g, sizeof(T));
        const int64_t per = MK + p.nb * ((x_nhwc ? 0 : HWC) + P * K + (gy_nhwc ? 0 : P * g.m));
        T *work = scratch<T>(p.slots * per);
        for (int s = 0; s < p.slots; ++s) std::fill(work + s * per, work + s * per + MK, T(0));
        run_chunks_in_order(g, p, [&](int64_t n0, int64_t cur, int slot) {
            T *gwp = work + slot * per, *buf = gwp + MK;
            T *xt = const_cast<T *>(xd) + n0 * HWC, *gyt = const_cast<T *>(gyd) + n0 * P * g.m;
            if (!x_nhwc) {
                xt = buf;
                buf += p.nb * HWC;
                Phase ph(0);
                transpose_batch(xd + n0 * HWC, cur, g.c, g.h * g.w, xt);
            }
            T *col = buf;
            buf += p.nb * P * K;
            { Phase ph(1); im2col_cl(xt, g, cur, col); }
            if (!gy_nhwc) {
                gyt = buf;
                Phase ph(0);
                transpose_batch(gyd + n0 * g.m * P, cur, g.m, P, gyt);
            }
            { Phase ph(2); gemm_team<T>(true, false, g.m, K, cur * P, T(1), gyt, g.m, col, K, T(1), gwp, K); }
        });
        T *sum = work;
        for (int s = 1; s < p.slots; ++s) {
            const T *part = work + s * per;
#pragma omp parallel for schedule(static) num_threads(team_for(MK))
            for (int64_t t = 0; t < MK; ++t) sum[t] += part[t];
        }
        weight_from_cl(sum, g, gwd);
    }
    return gw;
}

// The column matrix of the whole batch, (N*OH*OW, kh*kw*C) (the reference's layout).
template <typename T>
Arr<T> im2col(Arr<T> x, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw) {
    check4(x, "x");
    const Geom g = make_geom(x.shape(0), x.shape(1), x.shape(2), x.shape(3), 1, x.shape(1), kh, kw,
                             sh, sw, ph, pw);
    Arr<T> col({g.n * g.P(), g.K()});
    const T *xd = x.data();
    T *cd = col.mutable_data();
    py::gil_scoped_release nogil;
    auto xt = buffer<T>(g.n * g.h * g.w * g.c);
    transpose_batch(xd, g.n, g.c, g.h * g.w, xt.get());
    im2col_cl(xt.get(), g, g.n, cd);
    return col;
}

template <typename T>
Arr<T> col2im(Arr<T> col, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
              int64_t sh, int64_t sw, int64_t ph, int64_t pw) {
    const Geom g = make_geom(n, c, h, w, 1, c, kh, kw, sh, sw, ph, pw);
    if (col.ndim() != 2 || col.shape(0) != g.n * g.P() || col.shape(1) != g.K())
        throw std::invalid_argument("col2im: col must have shape (N*OH*OW, kh*kw*C)");
    Arr<T> x({n, c, h, w});
    const T *cd = col.data();
    T *xd = x.mutable_data();
    py::gil_scoped_release nogil;
    auto xt = buffer<T>(g.n * g.h * g.w * g.c);
    col2im_cl(cd, g, g.n, xt.get());
    transpose_batch(xt.get(), g.n, g.h * g.w, g.c, xd);
    return x;
}

// a (nb, rows, cols) -> (nb, cols, rows): the layout change the primitives use (tests, benchmarks)
template <typename T>
Arr<T> transpose(Arr<T> a) {
    if (a.ndim() != 3) throw std::invalid_argument("transpose: needs a (nb, rows, cols) array");
    Arr<T> out({a.shape(0), a.shape(2), a.shape(1)});
    const T *ad = a.data();
    T *od = out.mutable_data();
    py::gil_scoped_release nogil;
    transpose_batch(ad, a.shape(0), a.shape(1), a.shape(2), od);
    return out;
}

template <typename T>
void bind_dtype(py::module_ &m) {
    using namespace pybind11::literals;
    m.def("transpose", &transpose<T>);
    m.def("conv2d_forward", &forward<T>, "x"_a, "w"_a, "sh"_a, "sw"_a, "ph"_a, "pw"_a, "x_nhwc"_a = false,
          "nhwc_out"_a = false);
    m.def("conv2d_backward_data", &backward_data<T>, "gy"_a, "w"_a, "h"_a, "w_"_a, "sh"_a, "sw"_a,
          "ph"_a, "pw"_a, "gy_nhwc"_a = false, "nhwc_out"_a = false);
    m.def("conv2d_backward_weight", &backward_weight<T>, "x"_a, "gy"_a, "kh"_a, "kw"_a, "sh"_a,
          "sw"_a, "ph"_a, "pw"_a, "x_nhwc"_a = false, "gy_nhwc"_a = false);
    m.def("im2col", &im2col<T>);
    m.def("col2im", &col2im<T>);
}

}  // namespace

void bind_conv(py::module_ &m) {
    bind_dtype<float>(m);
    bind_dtype<double>(m);
    m.def("set_chunk_bytes", [](int64_t b) { g_chunk_bytes = std::max<int64_t>(b, 1); });
    m.def("set_profile", [](bool on) {
        g_profile = on;
        std::fill(g_phase, g_phase + 6, 0.0);
    });
    m.def("profile", [] {
        py::dict d;
        for (int i = 0; i < 6; ++i) d[g_phase_name[i]] = g_phase[i];
        return d;
    });
    m.def("get_chunk_bytes", [] { return g_chunk_bytes; });
    m.def("set_direct", [](bool on) { g_direct = on; },
          "float32 convs with >= 16 channels by the direct kernel (True, where built) or im2col + GEMM");
    m.def("direct_available", [] { return direct_conv_available(); });
}

}  // namespace mg

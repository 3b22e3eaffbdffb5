// Direct float32 convolution on channels-last activations (AVX-512): the implicit GEMM.
//
//   y[r, m] = sum_k col[r, k] * wt[k, m]     r = (n, oh, ow), k = (i, j, c), wt = W as (kh, kw, C, M)
//
// im2col + BLAS writes the whole column matrix and then the BLAS packs it again; here each
// thread gathers only RT = 12 rows of it (12 x K values, in L1/L2) and a register-blocked
// micro-kernel multiplies them by the weight as it lies in memory: 12 x 32 outputs in 24
// zmm accumulators, one broadcast of col and two loads of wt per 24 FMAs. That pays off
// where the BLAS is weakest, on narrow GEMMs (16 to 64 output channels): measured in
// bench/RESULTS.md. Rows are spread over the OpenMP threads; no BLAS call is made.
#include <algorithm>
#include <cstring>
#include <memory>

#include "minigan.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace mg {

#if defined(__AVX512F__)

namespace {

constexpr int RT = 12;  // output pixels per tile

inline __mmask16 lanes(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1); }

float *panel_scratch(int64_t n) {  // one per thread: the 12 gathered rows of col
    thread_local std::unique_ptr<float[]> arena;
    thread_local int64_t capacity = 0;
    if (n + 16 > capacity) {
        arena.reset(new float[n + 16]);
        capacity = n + 16;
    }
    return reinterpret_cast<float *>((reinterpret_cast<uintptr_t>(arena.get()) + 63) & ~uintptr_t(63));
}

// y[0:RT, m0:m0+32] = a (RT x K, row-major, lda K) @ wt[:, m0:m0+32]; rows >= `rows` not stored.
void micro_kernel(const float *a, int64_t K, const float *wt, int64_t M, int64_t m0, int64_t rows, float *y) {
    const __mmask16 k0 = lanes(M - m0), k1 = lanes(M - m0 - 16);
    __m512 acc[RT][2];
#pragma GCC unroll 12
    for (int r = 0; r < RT; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    const float *w = wt + m0;
    for (int64_t k = 0; k < K; ++k, w += M) {
        const __m512 w0 = _mm512_maskz_loadu_ps(k0, w), w1 = _mm512_maskz_loadu_ps(k1, w + 16);
#pragma GCC unroll 12
        for (int r = 0; r < RT; ++r) {
            const __m512 b = _mm512_set1_ps(a[r * K + k]);
            acc[r][0] = _mm512_fmadd_ps(b, w0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(b, w1, acc[r][1]);
        }
    }
#pragma GCC unroll 12
    for (int r = 0; r < RT; ++r) {  // unrolled with constant r, so that acc stays in registers
        if (r < rows) {
            _mm512_mask_storeu_ps(y + r * M + m0, k0, acc[r][0]);
            _mm512_mask_storeu_ps(y + r * M + m0 + 16, k1, acc[r][1]);
        }
    }
}

// acc[k0:k0+12, m0:m0+32] += sum over rows r < rb of a[r, k0:k0+12] gy[r, m0:m0+32], with acc
// the (K x M) partial sums of this thread; only k < K (kn valid of the 12) are stored.
void micro_kernel_weight(const float *a, int64_t K, int64_t k0, int64_t kn, const float *gy, int64_t M,
                         int64_t m0, int64_t rb, float *acc_km) {
    const __mmask16 k0m = lanes(M - m0), k1m = lanes(M - m0 - 16);
    __m512 acc[RT][2];
#pragma GCC unroll 12
    for (int q = 0; q < RT; ++q) {
        if (q < kn) {
            acc[q][0] = _mm512_maskz_loadu_ps(k0m, acc_km + (k0 + q) * M + m0);
            acc[q][1] = _mm512_maskz_loadu_ps(k1m, acc_km + (k0 + q) * M + m0 + 16);
        } else {
            acc[q][0] = acc[q][1] = _mm512_setzero_ps();
        }
    }
    const float *ar = a + k0, *g = gy + m0;
    for (int64_t r = 0; r < rb; ++r, ar += K, g += M) {
        const __m512 g0 = _mm512_maskz_loadu_ps(k0m, g), g1 = _mm512_maskz_loadu_ps(k1m, g + 16);
#pragma GCC unroll 12
        for (int q = 0; q < RT; ++q) {
            const __m512 b = _mm512_set1_ps(ar[q]);
            acc[q][0] = _mm512_fmadd_ps(b, g0, acc[q][0]);
            acc[q][1] = _mm512_fmadd_ps(b, g1, acc[q][1]);
        }
    }
#pragma GCC unroll 12
    for (int q = 0; q < RT; ++q) {
        if (q < kn) {
            _mm512_mask_storeu_ps(acc_km + (k0 + q) * M + m0, k0m, acc[q][0]);
            _mm512_mask_storeu_ps(acc_km + (k0 + q) * M + m0 + 16, k1m, acc[q][1]);
        }
    }
}

}  // namespace

bool direct_conv_available() { return true; }

void direct_conv_forward(const float *x, const ConvShape &s, const float *wt, float *y) {
    const int64_t K = s.kh * s.kw * s.c, P = s.oh * s.ow, rows = s.n * P, tiles = (rows + RT - 1) / RT;
#pragma omp parallel for schedule(dynamic, 4) num_threads(team_for(rows * K))
    for (int64_t t = 0; t < tiles; ++t) {
        float *a = panel_scratch(RT * K);
        const int64_t r0 = t * RT, cnt = std::min<int64_t>(RT, rows - r0);
        for (int64_t q = 0; q < RT; ++q) {
            if (q >= cnt) {
                std::memset(a + q * K, 0, sizeof(float) * K);
                continue;
            }
            const int64_t r = r0 + q, n = r / P, p = r % P;
            im2col_row(x + n * s.h * s.w * s.c, s, p / s.ow, p % s.ow, a + q * K);
        }
        for (int64_t m0 = 0; m0 < s.m; m0 += 32) micro_kernel(a, K, wt, s.m, m0, cnt, y + r0 * s.m);
    }
}

// gw[k, m] = sum over output pixels r of col[r, k] gy[r, m]: blocks of rows (about 256 KiB of
// gathered col each), split into nt contiguous runs, one per (K x M) partial, added in run
// order at the end. A run always holds the same blocks, summed in order, whichever thread
// takes it, so the result is the same on every call at a given thread count.
// gw: (kh, kw, C, M), overwritten.
void direct_conv_backward_weight(const float *x, const ConvShape &s, const float *gy, float *gw) {
    const int64_t K = s.kh * s.kw * s.c, M = s.m, P = s.oh * s.ow, rows = s.n * P;
    const int64_t rb = std::max<int64_t>(RT, (int64_t(1) << 16) / K), blocks = (rows + rb - 1) / rb;
    const int nt = std::max<int64_t>(1, std::min<int64_t>(team_for(rows * K), blocks));
    std::unique_ptr<float[]> parts(new float[size_t(nt) * K * M]());
#pragma omp parallel num_threads(nt)
    for (int run = thread_num(); run < nt; run += team_size()) {
        float *acc = parts.get() + run * K * M;
        float *a = panel_scratch(rb * K + RT);
        std::fill(a + rb * K, a + rb * K + RT, 0.f);  // the last k tile may read past its row
        for (int64_t b = blocks * run / nt; b < blocks * (run + 1) / nt; ++b) {
            const int64_t r0 = b * rb, cnt = std::min<int64_t>(rb, rows - r0);
            for (int64_t q = 0; q < cnt; ++q) {
                const int64_t r = r0 + q, n = r / P, p = r % P;
                im2col_row(x + n * s.h * s.w * s.c, s, p / s.ow, p % s.ow, a + q * K);
            }
            for (int64_t k0 = 0; k0 < K; k0 += RT)
                for (int64_t m0 = 0; m0 < M; m0 += 32)
                    micro_kernel_weight(a, K, k0, std::min<int64_t>(RT, K - k0), gy + r0 * M, M, m0, cnt, acc);
        }
    }
    for (int t = 1; t < nt; ++t) {
        const float *part = parts.get() + t * K * M;
        for (int64_t i = 0; i < K * M; ++i) parts[size_t(i)] += part[i];
    }
    std::memcpy(gw, parts.get(), sizeof(float) * size_t(K * M));
}

#else

bool direct_conv_available() { return false; }
void direct_conv_forward(const float *, const ConvShape &, const float *, float *) {}
void direct_conv_backward_weight(const float *, const ConvShape &, const float *, float *) {}

#endif

}  // namespace mg

// minigan's own float32 GEMM: packed panels and an AVX-512 (or AVX2) register-blocked
// micro-kernel, in the BLIS scheme. It serves the conv primitives, whose GEMMs are
// tall and skinny (rows = pixels of a chunk, 48 <= K <= 4096, 64 <= M <= 512):
//
//   for each kc-slice of K:            pack B (kc x n) into NR-wide panels   (L3/L2)
//     for each mc-block of rows:       pack A (mc x kc) into MR-tall panels  (L2)
//       for each NR panel of B:        the B panel stays in L1
//         for each MR panel of A:      C tile (MR x NR) += A panel * B panel
//
// A(i, k) = a[i * ars + k * acs] and B(k, j) = b[k * brs + j * bcs] take any strides,
// so transposed operands cost nothing but the packing. Measured on the conv shapes at one
// thread it reaches 85-95 GFLOP/s, 90-95% of OpenBLAS 0.3.31 (bench/RESULTS.md), so the
// conv primitives use NumPy's BLAS when one was found and this kernel otherwise (or when
// set_own_sgemm(True) asks for it). MR and KC were tuned over 8/12/14 and 128/256/384.
#include <algorithm>
#include <cstring>
#include <memory>

#include "minigan.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#define MG_SGEMM 1
#ifndef MG_MR
#define MG_MR 12
#endif
constexpr int MR = MG_MR, NR = 32;  // 2 * MR zmm accumulators
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define MG_SGEMM 1
constexpr int MR = 6, NR = 16;  // 12 ymm accumulators
#else
#define MG_SGEMM 0
constexpr int MR = 4, NR = 4;
#endif

namespace mg {

namespace {

#ifndef MG_KC
#define MG_KC 128
#endif
constexpr int64_t KC = MG_KC, MC = 12 * MR;

float *aligned_scratch(int64_t n, int which) {  // two per-thread arenas: packed A and packed B
    thread_local std::unique_ptr<float[]> arena[2];
    thread_local int64_t capacity[2] = {0, 0};
    if (n + 16 > capacity[which]) {
        arena[which].reset(new float[n + 16]);
        capacity[which] = n + 16;
    }
    return reinterpret_cast<float *>((reinterpret_cast<uintptr_t>(arena[which].get()) + 63) & ~uintptr_t(63));
}

// pa[panel][k][r] = A(i0 + panel*MR + r, p0 + k), zero past row m
void pack_a(const float *a, int64_t ars, int64_t acs, int64_t i0, int64_t mc, int64_t p0, int64_t kc,
            int64_t m, float *pa) {
    for (int64_t ip = 0; ip < mc; ip += MR, pa += MR * kc) {
        const int64_t rows = std::min<int64_t>(MR, m - i0 - ip);
        for (int64_t r = 0; r < rows; ++r) {
            const float *src = a + (i0 + ip + r) * ars + p0 * acs;
            if (acs == 1)
                for (int64_t k = 0; k < kc; ++k) pa[k * MR + r] = src[k];
            else
                for (int64_t k = 0; k < kc; ++k) pa[k * MR + r] = src[k * acs];
        }
        for (int64_t r = rows; r < MR; ++r)
            for (int64_t k = 0; k < kc; ++k) pa[k * MR + r] = 0.f;
    }
}

// pb[panel][k][c] = B(p0 + k, panel*NR + c), zero past column n
void pack_b(const float *b, int64_t brs, int64_t bcs, int64_t p0, int64_t kc, int64_t n, float *pb) {
    for (int64_t jp = 0; jp < n; jp += NR, pb += NR * kc) {
        const int64_t cols = std::min<int64_t>(NR, n - jp);
        if (bcs == 1) {
            for (int64_t k = 0; k < kc; ++k) {
                const float *src = b + (p0 + k) * brs + jp;
                float *dst = pb + k * NR;
                for (int64_t c = 0; c < cols; ++c) dst[c] = src[c];
                for (int64_t c = cols; c < NR; ++c) dst[c] = 0.f;
            }
        } else {
            for (int64_t c = 0; c < cols; ++c) {
                const float *src = b + p0 * brs + (jp + c) * bcs;
                for (int64_t k = 0; k < kc; ++k) pb[k * NR + c] = src[k * brs];
            }
            for (int64_t c = cols; c < NR; ++c)
                for (int64_t k = 0; k < kc; ++k) pb[k * NR + c] = 0.f;
        }
    }
}

#if MG_SGEMM
#if defined(__AVX512F__)
using vec = __m512;
constexpr int VW = 16;
inline vec vzero() { return _mm512_setzero_ps(); }
inline vec vload(const float *p) { return _mm512_load_ps(p); }
inline vec vloadu(const float *p) { return _mm512_loadu_ps(p); }
inline void vstoreu(float *p, vec v) { _mm512_storeu_ps(p, v); }
inline vec vbcast(const float *p) { return _mm512_set1_ps(*p); }
inline vec vfma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
inline vec vadd(vec a, vec b) { return _mm512_add_ps(a, b); }
#else
using vec = __m256;
constexpr int VW = 8;
inline vec vzero() { return _mm256_setzero_ps(); }
inline vec vload(const float *p) { return _mm256_load_ps(p); }
inline vec vloadu(const float *p) { return _mm256_loadu_ps(p); }
inline void vstoreu(float *p, vec v) { _mm256_storeu_ps(p, v); }
inline vec vbcast(const float *p) { return _mm256_broadcast_ss(p); }
inline vec vfma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
inline vec vadd(vec a, vec b) { return _mm256_add_ps(a, b); }
#endif
static_assert(NR == 2 * VW, "the micro-kernel holds two vectors per row");

// C tile (rows x cols of MR x NR) (+)= pa (kc x MR) * pb (kc x NR)
inline void micro_kernel(int64_t kc, const float *__restrict pa, const float *__restrict pb, float *c,
                         int64_t ldc, int64_t rows, int64_t cols, bool accumulate) {
    vec c0[MR], c1[MR];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) c0[r] = vzero(), c1[r] = vzero();
    for (int64_t k = 0; k < kc; ++k) {
        const vec b0 = vload(pb), b1 = vload(pb + VW);
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) {
            const vec a = vbcast(pa + r);
            c0[r] = vfma(a, b0, c0[r]);
            c1[r] = vfma(a, b1, c1[r]);
        }
        pa += MR;
        pb += NR;
    }
    if (rows == MR && cols == NR) {
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) {
            float *cr = c + r * ldc;
            if (accumulate) {
                c0[r] = vadd(c0[r], vloadu(cr));
                c1[r] = vadd(c1[r], vloadu(cr + VW));
            }
            vstoreu(cr, c0[r]);
            vstoreu(cr + VW, c1[r]);
        }
        return;
    }
    alignas(64) float tile[MR * NR];
    for (int r = 0; r < MR; ++r) vstoreu(tile + r * NR, c0[r]), vstoreu(tile + r * NR + VW, c1[r]);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < cols; ++j)
            c[r * ldc + j] = accumulate ? c[r * ldc + j] + tile[r * NR + j] : tile[r * NR + j];
}
#endif

}  // namespace

bool sgemm_available() { return MG_SGEMM; }

// C (m x n, row stride ldc) = A B  (accumulate: C += A B). Single-threaded unless team() > 1,
// then the row blocks of C are shared among the threads.
bool sgemm(int64_t m, int64_t n, int64_t k, const float *a, int64_t ars, int64_t acs, const float *b,
           int64_t brs, int64_t bcs, float *c, int64_t ldc, bool accumulate) {
#if MG_SGEMM
    if (m <= 0 || n <= 0) return true;
    if (k <= 0) {
        if (!accumulate)
            for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.f);
        return true;
    }
    const int64_t npanels = (n + NR - 1) / NR, nblocks = (m + MC - 1) / MC;
    float *pb = aligned_scratch(npanels * NR * KC, 1);
    for (int64_t p0 = 0; p0 < k; p0 += KC) {
        const int64_t kc = std::min(KC, k - p0);
        const bool acc = accumulate || p0 > 0;
        pack_b(b, brs, bcs, p0, kc, n, pb);
        const int nt = int(std::min<int64_t>(team(), nblocks));
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
        for (int64_t blk = 0; blk < nblocks; ++blk) {
            const int64_t i0 = blk * MC, mc = std::min(MC, m - i0);
            float *pa = aligned_scratch(((mc + MR - 1) / MR) * MR * kc, 0);
            pack_a(a, ars, acs, i0, mc, p0, kc, m, pa);
            for (int64_t jp = 0; jp < npanels; ++jp) {
                const int64_t j0 = jp * NR, cols = std::min<int64_t>(NR, n - j0);
                const float *bp = pb + jp * NR * kc;
                for (int64_t ip = 0; ip < mc; ip += MR)
                    micro_kernel(kc, pa + ip * kc, bp, c + (i0 + ip) * ldc + j0, ldc,
                                 std::min<int64_t>(MR, mc - ip), cols, acc);
            }
        }
    }
    return true;
#else
    (void)m, (void)n, (void)k, (void)a, (void)ars, (void)acs, (void)b, (void)brs, (void)bcs, (void)c,
        (void)ldc, (void)accumulate;
    return false;
#endif
}

}  // namespace mg

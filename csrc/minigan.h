// Shared declarations of minigan's C++ kernels (one extension module, minigan._cpu).
#pragma once
#include <cstdint>
#include <cstring>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

namespace py = pybind11;

namespace mg {

// A C-contiguous array of exactly dtype T (the Python side makes inputs contiguous).
template <typename T>
using Arr = py::array_t<T, py::array::c_style>;

// Row-major C(M x N) = alpha op(A) op(B) + beta C through the BLAS chosen by set_blas,
// or a plain OpenMP loop when none was given.
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T *a,
          int64_t lda, const T *b, int64_t ldb, T beta, T *c, int64_t ldc);

// gemm on minigan's threads: blocks of C split over OpenMP, one serial BLAS call each (blas.cpp).
template <typename T>
void gemm_team(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T *a,
               int64_t lda, const T *b, int64_t ldb, T beta, T *c, int64_t ldc);

// minigan's own float32 GEMM (sgemm.cpp): A(i, k) = a[i*ars + k*acs], B(k, j) = b[k*brs + j*bcs];
// returns false when it was not compiled in (no AVX2/AVX-512), and then the caller uses the BLAS.
bool sgemm(int64_t m, int64_t n, int64_t k, const float *a, int64_t ars, int64_t acs, const float *b,
           int64_t brs, int64_t bcs, float *c, int64_t ldc, bool accumulate);
bool sgemm_available();

// A conv's geometry: input (n, c, h, w), m output channels, kernel kh x kw, stride, padding,
// output oh x ow.
struct ConvShape {
    int64_t n, c, h, w, m, kh, kw, sh, sw, ph, pw, oh, ow;
};

// dst[0:n] = src[0:n]: short runs (the C = 3 layers) inline, long ones through memcpy.
template <typename T>
inline void copy_run(T *__restrict d, const T *__restrict s, int64_t n) {
    if (n * int64_t(sizeof(T)) <= 128) for (int64_t i = 0; i < n; ++i) d[i] = s[i];
    else std::memcpy(d, s, sizeof(T) * size_t(n));
}

// Row (oh, ow) of one sample's channels-last column matrix, d[(i, j, c)], K = kh*kw*C
// values, from xn (H, W, C): the taps j of a kernel row read neighbouring pixels, so each
// kernel row is one contiguous run of (valid taps) x C values, zeros where it hangs over
// the padding. Shared by im2col (conv.cpp) and the direct conv's gathers (direct.cpp).
template <typename T>
inline void im2col_row(const T *xn, const ConvShape &s, int64_t oh, int64_t ow, T *d) {
    const int64_t C = s.c, RC = s.kw * C, iw0 = ow * s.sw - s.pw;  // iw0: input column of tap 0
    const int64_t j0 = iw0 < 0 ? -iw0 : 0, j1 = s.w - iw0 < s.kw ? s.w - iw0 : s.kw;
    for (int64_t i = 0; i < s.kh; ++i, d += RC) {
        const int64_t ih = oh * s.sh - s.ph + i;
        if (ih < 0 || ih >= s.h || j1 <= j0) {
            std::memset(d, 0, sizeof(T) * RC);
            continue;
        }
        if (j0 > 0) std::memset(d, 0, sizeof(T) * j0 * C);
        copy_run(d + j0 * C, xn + (ih * s.w + iw0 + j0) * C, (j1 - j0) * C);
        if (j1 < s.kw) std::memset(d + j1 * C, 0, sizeof(T) * (s.kw - j1) * C);
    }
}

// The direct (implicit-GEMM) float32 conv forward of direct.cpp: x (n, h, w, c) and
// y (n, oh, ow, m) channels last, wt the weight as (kh, kw, c, m). Available where the
// build has AVX-512; direct_conv_forward must not be called otherwise.
bool direct_conv_available();
void direct_conv_forward(const float *x, const ConvShape &s, const float *wt, float *y);
// gw as (kh, kw, c, m) = the weight gradient, from x (n, h, w, c) and gy (n, oh, ow, m).
void direct_conv_backward_weight(const float *x, const ConvShape &s, const float *gy, float *gw);

int thread_num();   // this thread's index in its OpenMP team (0 outside one, or without OpenMP)
int team_size();    // the threads of the current OpenMP team (1 outside one): split work by this
int num_threads();  // the thread count that minigan.set_num_threads chose
int team();         // threads for a loop here: num_threads(), or 1 inside a parallel region
// team() for a loop over `work` elements, or 1 below a grain of 32K: a parallel region costs
// microseconds on an idle machine and milliseconds on a busy one (the other thread must be
// scheduled), which small problems (gradchecks, batch 1) cannot repay.
inline int team_for(int64_t work) { return work < (int64_t(1) << 15) ? 1 : team(); }

// Batch-parallel mode: when the BLAS lets each thread run its own single-threaded GEMM
// (OpenBLAS's openblas_set_num_threads_local), the conv primitives split the batch over
// OpenMP threads and call the GEMM serially from each; blas_local(n) sets this thread's
// BLAS thread count and returns the previous one (or -1 when the BLAS has no such call).
// NumPy's OpenBLAS applies it to every thread, not just the caller: threads that each set 1
// and then restore what they found race, leaving 1 or 2 behind, and NumPy's next products
// then round differently from run to run. So only the thread that opens a parallel region
// saves and restores the count, around the region; inside it, threads only ever set 1.
int blas_local(int n);
bool blas_splits();  // can each thread run its own serial GEMM?

void bind_blas(py::module_ &m);
void bind_conv(py::module_ &m);
void bind_fused(py::module_ &m);

}  // namespace mg

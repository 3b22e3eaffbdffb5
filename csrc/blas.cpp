// The GEMM behind the conv primitives. minigan does not link a BLAS at build time:
// the Python side hands over, at import, the address of the sgemm/dgemm that NumPy
// itself uses (OpenBLAS's ILP64 CBLAS interface), or SciPy's Fortran ones
// (scipy.linalg.cython_blas), so the conv GEMMs run in NumPy's BLAS and its thread
// pool. Without either, a plain OpenMP loop computes the product (slow, but right).
#include <algorithm>
#include <cstring>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "minigan.h"

namespace mg {

namespace {

enum Kind { NONE = 0, CBLAS_ILP64 = 1, FORTRAN_LP64 = 2 };

using cblas_s = void (*)(int, int, int, int64_t, int64_t, int64_t, float, const float *, int64_t,
                         const float *, int64_t, float, float *, int64_t);
using cblas_d = void (*)(int, int, int, int64_t, int64_t, int64_t, double, const double *, int64_t,
                         const double *, int64_t, double, double *, int64_t);
using fort_s = void (*)(const char *, const char *, const int *, const int *, const int *,
                        const float *, const float *, const int *, const float *, const int *,
                        const float *, float *, const int *);
using fort_d = void (*)(const char *, const char *, const int *, const int *, const int *,
                        const double *, const double *, const int *, const double *, const int *,
                        const double *, double *, const int *);

Kind g_kind = NONE;
bool g_own_sgemm = false;  // float32 GEMMs through sgemm.cpp even when a BLAS was found (set_own_sgemm)
void *g_sgemm = nullptr, *g_dgemm = nullptr;
using local_fn = int (*)(int);
local_fn g_local = nullptr;

constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

template <typename T>
void gemm_loops(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T *a,
                int64_t lda, const T *b, int64_t ldb, T beta, T *c, int64_t ldc) {
#pragma omp parallel for schedule(static) num_threads(team_for(m * n * k))
    for (int64_t i = 0; i < m; ++i) {
        T *ci = c + i * ldc;
        for (int64_t j = 0; j < n; ++j) ci[j] = beta == T(0) ? T(0) : beta * ci[j];
        for (int64_t p = 0; p < k; ++p) {
            const T aip = alpha * (ta ? a[p * lda + i] : a[i * lda + p]);
            if (!tb) {
                const T *bp = b + p * ldb;
                for (int64_t j = 0; j < n; ++j) ci[j] += aip * bp[j];
            } else {
                for (int64_t j = 0; j < n; ++j) ci[j] += aip * b[j * ldb + p];
            }
        }
    }
}

template <typename T, typename Cblas, typename Fort>
void gemm_any(void *fn, bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T *a,
              int64_t lda, const T *b, int64_t ldb, T beta, T *c, int64_t ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0) {  // BLAS would scale C by beta; do the same
        for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
        return;
    }
    if (g_kind == CBLAS_ILP64 && fn) {
        reinterpret_cast<Cblas>(fn)(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, m, n,
                                    k, alpha, a, lda, b, ldb, beta, c, ldc);
    } else if (g_kind == FORTRAN_LP64 && fn && m < INT32_MAX && n < INT32_MAX && k < INT32_MAX) {
        // column-major: C^T (n x m) = op(B)^T op(A)^T
        const char tra = ta ? 'T' : 'N', trb = tb ? 'T' : 'N';
        const int im = int(m), in = int(n), ik = int(k), ila = int(lda), ilb = int(ldb), ilc = int(ldc);
        reinterpret_cast<Fort>(fn)(&trb, &tra, &in, &im, &ik, &alpha, b, &ilb, a, &ila, &beta, c, &ilc);
    } else {
        gemm_loops<T>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
}

void set_blas(int kind, uintptr_t sgemm, uintptr_t dgemm, uintptr_t local) {
    g_kind = Kind(kind);
    g_sgemm = reinterpret_cast<void *>(sgemm);
    g_dgemm = reinterpret_cast<void *>(dgemm);
    g_local = reinterpret_cast<local_fn>(local);
}

// C = op(A) op(B), op(X) = X or X^T (trans_a, trans_b: the arrays hold the transposes).
// The rows of C are split over the OpenMP threads, each running a serial GEMM, so that
// NumPy's BLAS thread pool is never woken: its workers spin for ~0.1 s after each call,
// and on two cores that stalls every OpenMP loop that follows (measured: a 0.1 ms conv
// took 15-25 ms right after a 2-thread NumPy matmul).
template <typename T>
Arr<T> matmul(Arr<T> a, Arr<T> b, bool ta, bool tb) {
    if (a.ndim() != 2 || b.ndim() != 2) throw std::invalid_argument("matmul: needs 2-D matrices");
    const int64_t m = ta ? a.shape(1) : a.shape(0), k = ta ? a.shape(0) : a.shape(1);
    const int64_t kb = tb ? b.shape(1) : b.shape(0), n = tb ? b.shape(0) : b.shape(1);
    if (k != kb) throw std::invalid_argument("matmul: inner dimensions differ");
    const int64_t lda = a.shape(1), ldb = b.shape(1);
    Arr<T> c({m, n});
    const T *ad = a.data(), *bd = b.data();
    T *cd = c.mutable_data();
    py::gil_scoped_release nogil;
    gemm_team<T>(ta, tb, m, n, k, T(1), ad, lda, bd, ldb, T(0), cd, n);
    return c;
}

}  // namespace

bool blas_splits() { return g_kind == NONE || g_local != nullptr || g_own_sgemm; }

int blas_local(int n) {
    if (g_kind == NONE) return 1;  // the built-in loops follow team()
    return g_local ? g_local(n) : -1;
}

template <>
void gemm<float>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                 int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if ((g_own_sgemm || g_kind == NONE) && alpha == 1.f && (beta == 0.f || beta == 1.f) &&
        sgemm(m, n, k, a, ta ? 1 : lda, ta ? lda : 1, b, tb ? 1 : ldb, tb ? ldb : 1, c, ldc, beta == 1.f))
        return;
    gemm_any<float, cblas_s, fort_s>(g_sgemm, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template <>
void gemm<double>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double *a,
                  int64_t lda, const double *b, int64_t ldb, double beta, double *c, int64_t ldc) {
    gemm_any<double, cblas_d, fort_d>(g_dgemm, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// Row blocks of C (or column blocks, when C is wider than tall) on minigan's OpenMP
// threads, each one serial BLAS call: OpenBLAS's own thread pool never wakes beside
// OpenMP's (two pools taking turns cost 5-10x at batch 1). Serial inside a parallel
// region, under 1M multiply-adds (about 10 us of work: less than a parallel region can
// cost on a busy machine), or when the BLAS cannot be made serial per thread.
template <typename T>
void gemm_team(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T *a, int64_t lda,
               const T *b, int64_t ldb, T beta, T *c, int64_t ldc) {
    const int nt = double(m) * double(n) * double(k) >= double(1 << 20) && std::max(m, n) >= 2 ? team() : 1;
    if (nt <= 1 || !blas_splits()) {
        const int prev = blas_local(1);
        gemm<T>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        if (prev > 0) blas_local(prev);
        return;
    }
    const int prev = blas_local(1);  // see blas_local (minigan.h)
#pragma omp parallel num_threads(nt)
    {
        blas_local(1);
        // nt parts, fixed by the thread count asked for: part t always gets the same rows, even
        // if OpenMP gave fewer threads (which then take several parts each)
        for (int t = thread_num(); t < nt; t += team_size()) {
            if (m >= n) {
                const int64_t r0 = m * t / nt, r1 = m * (t + 1) / nt;
                if (r1 > r0)
                    gemm<T>(ta, tb, r1 - r0, n, k, alpha, ta ? a + r0 : a + r0 * lda, lda, b, ldb, beta,
                            c + r0 * ldc, ldc);
            } else {
                const int64_t c0 = n * t / nt, c1 = n * (t + 1) / nt;
                if (c1 > c0)
                    gemm<T>(ta, tb, m, c1 - c0, k, alpha, a, lda, tb ? b + c0 * ldb : b + c0, ldb, beta,
                            c + c0, ldc);
            }
        }
    }
    if (prev > 0) blas_local(prev);
}

template void gemm_team<float>(bool, bool, int64_t, int64_t, int64_t, float, const float *, int64_t,
                               const float *, int64_t, float, float *, int64_t);
template void gemm_team<double>(bool, bool, int64_t, int64_t, int64_t, double, const double *, int64_t,
                                const double *, int64_t, double, double *, int64_t);

void bind_blas(py::module_ &m) {
    m.def("set_blas", &set_blas, py::arg("kind"), py::arg("sgemm"), py::arg("dgemm"), py::arg("local") = 0,
          "kind 0: built-in loops, 1: CBLAS ILP64 addresses, 2: Fortran LP64 addresses; local: the "
          "address of openblas_set_num_threads_local, or 0");
    m.def("blas_kind", [] { return int(g_kind); });
    m.def("set_own_sgemm", [](bool on) { g_own_sgemm = on && sgemm_available(); },
          "float32 GEMMs through minigan's own kernel (True) or the BLAS (False)");
    m.def("own_sgemm", [] { return g_own_sgemm && sgemm_available(); });
    m.def("matmul", &matmul<float>, py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false);
    m.def("matmul", &matmul<double>, py::arg("a"), py::arg("b"), py::arg("trans_a") = false,
          py::arg("trans_b") = false);
}

}  // namespace mg

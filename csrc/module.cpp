// The module minigan._cpu: the thread setting, then each file's bindings.
#include "minigan.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mg {

static int g_threads = 1;

int num_threads() { return g_threads; }

int thread_num() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

int team_size() {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

int team() {
#ifdef _OPENMP
    return omp_in_parallel() ? 1 : g_threads;
#else
    return 1;
#endif
}

static void set_num_threads(int n) {
    g_threads = n < 1 ? 1 : n;
#ifdef _OPENMP
    omp_set_num_threads(g_threads);
#endif
}

}  // namespace mg

PYBIND11_MODULE(_cpu, m) {
    m.doc() = "minigan's C++ CPU kernels (conv primitives, fused element-wise ops)";
    m.def("set_num_threads", &mg::set_num_threads, "Threads for the OpenMP loops");
    m.def("get_num_threads", &mg::num_threads);
#ifdef _OPENMP
    m.attr("openmp") = true;
    // a team of exactly the threads asked for (OMP_DYNAMIC could shrink it under load): the
    // kernels' work splits are set by the thread count, and so are their results' roundings
    omp_set_dynamic(0);
    mg::set_num_threads(omp_get_max_threads());
#else
    m.attr("openmp") = false;
#endif
    mg::bind_blas(m);
    mg::bind_conv(m);
    mg::bind_fused(m);
}

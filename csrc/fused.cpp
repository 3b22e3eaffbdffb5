// Fused element-wise kernels: one pass over memory where NumPy needs several passes
// and temporaries. Sums run in double with `omp simd` reductions (vectorised; the order
// of additions differs from NumPy's pairwise sums only in rounding). Each mirrors, operation for operation, the NumPy reference it
// replaces (functional/activation.py, functional/norm.py, optim/*.py).
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "minigan.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mg {

namespace {

int threads_for(int64_t n) { return team_for(n); }

void same_size(const py::array &a, const py::array &b, const char *what) {
    if (a.size() != b.size()) throw std::invalid_argument(std::string(what) + ": arrays differ in size");
}

// y = x if x > 0 else slope * x  (slope 0: relu)
template <typename T>
Arr<T> leaky_relu(Arr<T> x, double slope) {
    Arr<T> y(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
    const T *xd = x.data();
    T *yd = y.mutable_data();
    const int64_t n = x.size();
    const T s = T(slope);
    py::gil_scoped_release nogil;
    if (s == T(0)) {  // relu as NumPy's maximum(x, 0): NaN stays NaN, -inf and -0 give +0
#pragma omp parallel for schedule(static) num_threads(threads_for(n))
        for (int64_t i = 0; i < n; ++i) yd[i] = (xd[i] > T(0) || xd[i] != xd[i]) ? xd[i] : T(0);
        return y;
    }
#pragma omp parallel for schedule(static) num_threads(threads_for(n))
    for (int64_t i = 0; i < n; ++i) yd[i] = xd[i] > T(0) ? xd[i] : xd[i] * s;
    return y;
}

// gx = gy * (1 if x > 0 else slope): the gradient of leaky_relu (and relu) at x
template <typename T>
Arr<T> leaky_relu_grad(Arr<T> gy, Arr<T> x, double slope) {
    same_size(gy, x, "leaky_relu_grad");
    Arr<T> gx(std::vector<py::ssize_t>(gy.shape(), gy.shape() + gy.ndim()));
    const T *gd = gy.data(), *xd = x.data();
    T *od = gx.mutable_data();
    const int64_t n = x.size();
    const T s = T(slope);
    py::gil_scoped_release nogil;
#pragma omp parallel for schedule(static) num_threads(threads_for(n))
    for (int64_t i = 0; i < n; ++i) od[i] = gd[i] * (xd[i] > T(0) ? T(1) : s);
    return gx;
}

// A sum over rows in a fixed order: the rows split into `count` contiguous blocks (32, or
// one per row when there are fewer), each summed in row order into its own partial by
// whichever thread takes it, the partials then added in block order. The split does not
// depend on the thread count or the scheduling, so neither does the sum.
struct RowBlocks {
    int64_t rows, count;
    explicit RowBlocks(int64_t r) : rows(r), count(std::max<int64_t>(1, std::min<int64_t>(r, 32))) {}
    int64_t begin(int64_t b) const { return rows * b / count; }
};

// Per-channel sums over N, H, W (bias gradients): x as (N, C, S) when `rows` is false, as
// (R, C) channels-last rows when true. In double, partials over RowBlocks of N or R.
template <typename T>
Arr<T> channel_sum(Arr<T> x, bool rows) {
    if (x.ndim() != (rows ? 2 : 3))
        throw std::invalid_argument("channel_sum: x must be (N, C, S), or (R, C) with rows=True");
    const int64_t n = x.shape(0), C = x.shape(1), S = rows ? 1 : x.shape(2);
    Arr<T> out(C);
    const T *xd = x.data();
    T *od = out.mutable_data();
    py::gil_scoped_release nogil;
    const RowBlocks rb(n);
    std::vector<double> part(size_t(rb.count * C), 0.0);
#pragma omp parallel for schedule(static) num_threads(threads_for(n * C * S))
    for (int64_t b = 0; b < rb.count; ++b) {
        double *acc = part.data() + b * C;
        for (int64_t r = rb.begin(b); r < rb.begin(b + 1); ++r) {
            const T *xr = xd + r * C * S;
            if (rows) {
#pragma omp simd
                for (int64_t c = 0; c < C; ++c) acc[c] += double(xr[c]);
            } else {
                for (int64_t c = 0; c < C; ++c) {
                    double sum = 0;
#pragma omp simd reduction(+ : sum)
                    for (int64_t i = 0; i < S; ++i) sum += double(xr[c * S + i]);
                    acc[c] += sum;
                }
            }
        }
    }
    for (int64_t c = 0; c < C; ++c) {
        double sum = 0;
        for (int64_t b = 0; b < rb.count; ++b) sum += part[b * C + c];
        od[c] = T(sum);
    }
    return out;
}

// y[n, c, s] += b[c] in place (a conv's bias), y as (N, C, S) or as (R, C) rows.
template <typename T>
void add_channel_bias(Arr<T> y, Arr<T> b, bool rows) {
    if (y.ndim() != (rows ? 2 : 3)) throw std::invalid_argument("add_channel_bias: y must be (N, C, S) or (R, C)");
    const int64_t n = y.shape(0), C = y.shape(1), S = rows ? 1 : y.shape(2);
    if (b.size() != C) throw std::invalid_argument("add_channel_bias: the bias needs one entry per channel");
    T *yd = y.mutable_data();
    const T *bd = b.data();
    py::gil_scoped_release nogil;
#pragma omp parallel for schedule(static) num_threads(threads_for(n * C * S))
    for (int64_t r = 0; r < n; ++r) {
        T *yr = yd + r * C * S;
        if (rows) {
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) yr[c] += bd[c];
        } else {
            for (int64_t c = 0; c < C; ++c)
                for (int64_t i = 0; i < S; ++i) yr[c * S + i] += bd[c];
        }
    }
}

// x viewed as (N, C, S): sizes and a check that per-channel vectors have C entries.
struct NCS {
    int64_t n, c, s;
};

NCS ncs_of(const py::array &x) {
    if (x.ndim() < 2) throw std::invalid_argument("batch_norm: input needs at least 2 dimensions (N, C, ...)");
    NCS d{x.shape(0), x.shape(1), 1};
    for (py::ssize_t i = 2; i < x.ndim(); ++i) d.s *= x.shape(i);
    return d;
}

template <typename T>
const T *vec_or_null(const std::optional<Arr<T>> &v, int64_t c, const char *what) {
    if (!v) return nullptr;
    if (v->size() != c) throw std::invalid_argument(std::string("batch_norm: ") + what + " needs one value per channel");
    return v->data();
}

// Training-mode batch norm: per channel mean, biased variance, invstd = 1/sqrt(var + eps),
// y = (x - mean) * invstd * weight + bias. Returns (y, mean, var, invstd).
template <typename T>
std::tuple<Arr<T>, Arr<T>, Arr<T>, Arr<T>> bn_forward(Arr<T> x, std::optional<Arr<T>> weight,
                                                      std::optional<Arr<T>> bias, double eps) {
    const NCS d = ncs_of(x);
    const T *wd = vec_or_null(weight, d.c, "weight"), *bd = vec_or_null(bias, d.c, "bias");
    Arr<T> y(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim())), mean(d.c), var(d.c), invstd(d.c);
    const T *xd = x.data();
    T *yd = y.mutable_data(), *md = mean.mutable_data(), *vd = var.mutable_data(), *rd = invstd.mutable_data();
    const double count = double(d.n * d.s);
    {  // no Python object is touched while the GIL is released
        py::gil_scoped_release nogil;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_for(d.n * d.c * d.s))
        for (int64_t c = 0; c < d.c; ++c) {
            // one pass for both moments, shifted by the channel's first value so that
            // var = E[(x-k)^2] - E[x-k]^2 does not cancel; the sums are in double
            const double k = double(xd[c * d.s]);
            double sum = 0, sq = 0;
            for (int64_t n = 0; n < d.n; ++n) {
                const T *xc = xd + (n * d.c + c) * d.s;
#pragma omp simd reduction(+ : sum, sq)
                for (int64_t i = 0; i < d.s; ++i) {
                    const double t = double(xc[i]) - k;
                    sum += t;
                    sq += t * t;
                }
            }
            const double shifted_mean = sum / count;
            const T mu = T(k + shifted_mean);
            sq = std::max(0.0, sq / count - shifted_mean * shifted_mean) * count;
            const T v = T(sq / count);
            const T r = T(1) / std::sqrt(v + T(eps));
            const T scale = wd ? r * wd[c] : r, shift = bd ? bd[c] : T(0);
            for (int64_t n = 0; n < d.n; ++n) {
                const T *xc = xd + (n * d.c + c) * d.s;
                T *yc = yd + (n * d.c + c) * d.s;
                for (int64_t i = 0; i < d.s; ++i) yc[i] = (xc[i] - mu) * scale + shift;
            }
            md[c] = mu;
            vd[c] = v;
            rd[c] = r;
        }
    }
    return {y, mean, var, invstd};
}

// The same two kernels for channels-last activations, x as (R, C) rows of C channels:
// the rows are summed by RowBlocks into per-channel partials, then one pass writes.

template <typename T>
std::tuple<Arr<T>, Arr<T>, Arr<T>, Arr<T>> bn_forward_nhwc(Arr<T> x, std::optional<Arr<T>> weight,
                                                           std::optional<Arr<T>> bias, double eps) {
    if (x.ndim() != 2) throw std::invalid_argument("batch_norm (channels last): x must be (rows, C)");
    const int64_t R = x.shape(0), C = x.shape(1);
    const T *wd = vec_or_null(weight, C, "weight"), *bd = vec_or_null(bias, C, "bias");
    Arr<T> y({R, C}), mean(C), var(C), invstd(C);
    const T *xd = x.data();
    T *yd = y.mutable_data(), *md = mean.mutable_data(), *vd = var.mutable_data(), *rd = invstd.mutable_data();
    {  // no Python object is touched while the GIL is released
        py::gil_scoped_release nogil;
        const int nt = threads_for(R * C);
        const RowBlocks rb(R);
        std::vector<double> part(size_t(2 * rb.count * C), 0.0), shift(C);
        for (int64_t c = 0; c < C; ++c) shift[c] = R ? double(xd[c]) : 0.0;
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t b = 0; b < rb.count; ++b) {
            double *sum = part.data() + 2 * b * C, *sq = sum + C;
            const double *k = shift.data();
            for (int64_t r = rb.begin(b); r < rb.begin(b + 1); ++r) {
                const T *xr = xd + r * C;
#pragma omp simd
                for (int64_t c = 0; c < C; ++c) {
                    const double d = double(xr[c]) - k[c];
                    sum[c] += d;
                    sq[c] += d * d;
                }
            }
        }
        std::vector<T> scale(C), offset(C);
        for (int64_t c = 0; c < C; ++c) {
            double sum = 0, sq = 0;
            for (int64_t b = 0; b < rb.count; ++b) sum += part[2 * b * C + c], sq += part[2 * b * C + C + c];
            const double sm = sum / double(R);
            md[c] = T(shift[c] + sm);
            vd[c] = T(std::max(0.0, sq / double(R) - sm * sm));
            rd[c] = T(1) / std::sqrt(vd[c] + T(eps));
            scale[c] = wd ? rd[c] * wd[c] : rd[c];
            offset[c] = bd ? bd[c] : T(0);
        }
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t r = 0; r < R; ++r) {
            const T *xr = xd + r * C;
            T *yr = yd + r * C;
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) yr[c] = (xr[c] - md[c]) * scale[c] + offset[c];
        }
    }
    return {y, mean, var, invstd};
}

template <typename T>
std::tuple<Arr<T>, Arr<T>, Arr<T>> bn_backward_nhwc(Arr<T> x, std::optional<Arr<T>> weight, Arr<T> g,
                                                    Arr<T> mean, Arr<T> invstd) {
    if (x.ndim() != 2 || g.ndim() != 2 || x.size() != g.size())
        throw std::invalid_argument("batch_norm_backward (channels last): x and g must be (rows, C)");
    const int64_t R = x.shape(0), C = x.shape(1);
    if (mean.size() != C || invstd.size() != C)
        throw std::invalid_argument("batch_norm_backward: mean and invstd need one value per channel");
    const T *wd = vec_or_null(weight, C, "weight");
    Arr<T> gx({R, C}), gw(C), gb(C);
    const T *xd = x.data(), *gd = g.data(), *md = mean.data(), *rd = invstd.data();
    T *gxd = gx.mutable_data(), *gwd = gw.mutable_data(), *gbd = gb.mutable_data();
    {  // no Python object is touched while the GIL is released
        py::gil_scoped_release nogil;
        const int nt = threads_for(R * C);
        const RowBlocks rb(R);
        std::vector<double> part(size_t(2 * rb.count * C), 0.0);
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t b = 0; b < rb.count; ++b) {
            double *sg = part.data() + 2 * b * C, *sgx = sg + C;
            for (int64_t r = rb.begin(b); r < rb.begin(b + 1); ++r) {
                const T *xr = xd + r * C, *gr = gd + r * C;
#pragma omp simd
                for (int64_t c = 0; c < C; ++c) {
                    sg[c] += double(gr[c]);
                    sgx[c] += double(gr[c]) * double((xr[c] - md[c]) * rd[c]);
                }
            }
        }
        std::vector<T> mg(C), mgx(C), scale(C);
        for (int64_t c = 0; c < C; ++c) {
            double a = 0, b = 0;
            for (int64_t q = 0; q < rb.count; ++q) a += part[2 * q * C + c], b += part[2 * q * C + C + c];
            gbd[c] = T(a);
            gwd[c] = T(b);
            mg[c] = T(a / double(R));
            mgx[c] = T(b / double(R));
            scale[c] = wd ? wd[c] * rd[c] : rd[c];
        }
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t r = 0; r < R; ++r) {
            const T *xr = xd + r * C, *gr = gd + r * C;
            T *o = gxd + r * C;
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) o[c] = scale[c] * (gr[c] - mg[c] - (xr[c] - md[c]) * rd[c] * mgx[c]);
        }
    }
    return {gx, gw, gb};
}

// Max pooling on channels-last planes: x (N, H, W, C) -> y, arg (N, OH, OW, C), arg as in
// maxpool_forward; the loops run along C, so they vectorise.
template <typename T>
std::tuple<Arr<T>, py::array_t<uint8_t>> maxpool_forward_nhwc(Arr<T> x, int64_t kh, int64_t kw, int64_t sh,
                                                              int64_t sw, int64_t ph, int64_t pw) {
    if (x.ndim() != 4) throw std::invalid_argument("max_pool2d: x must be 4-D");
    if (kh * kw > 255) throw std::invalid_argument("max_pool2d: the fused kernel takes windows of < 256 values");
    const int64_t n = x.shape(0), h = x.shape(1), w = x.shape(2), C = x.shape(3);
    const int64_t oh = (h + 2 * ph - kh) / sh + 1, ow = (w + 2 * pw - kw) / sw + 1;
    if (oh < 1 || ow < 1) throw std::invalid_argument("max_pool2d: the window is larger than the padded input");
    Arr<T> y({n, oh, ow, C});
    py::array_t<uint8_t> arg({n, oh, ow, C});
    const T *xd = x.data();
    T *yd = y.mutable_data();
    uint8_t *ad = arg.mutable_data();
    {  // no Python object is touched while the GIL is released
        py::gil_scoped_release nogil;
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads_for(n * h * w * C))
        for (int64_t b = 0; b < n; ++b)
            for (int64_t r = 0; r < oh; ++r)
                for (int64_t q = 0; q < ow; ++q) {
                    T *yo = yd + ((b * oh + r) * ow + q) * C;
                    uint8_t *ao = ad + ((b * oh + r) * ow + q) * C;
                    bool first = true;
                    for (int64_t i = 0; i < kh; ++i)
                        for (int64_t j = 0; j < kw; ++j) {
                            const int64_t ih = r * sh - ph + i, iw = q * sw - pw + j;
                            if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
                            const T *xi = xd + ((b * h + ih) * w + iw) * C;
                            const uint8_t k = uint8_t(i * kw + j);
                            if (first) {
                                for (int64_t c = 0; c < C; ++c) yo[c] = xi[c], ao[c] = k;
                                first = false;
                                continue;
                            }
                            for (int64_t c = 0; c < C; ++c) {  // a NaN, once taken, is never replaced
                                const T v = xi[c];
                                const bool take = v > yo[c] || (v != v && yo[c] == yo[c]);
                                yo[c] = take ? v : yo[c];
                                ao[c] = take ? k : ao[c];
                            }
                        }
                    for (int64_t c = 0; c < C; ++c) ao[c] = yo[c] != yo[c] ? 0 : ao[c];
                }
    }
    return {y, arg};
}

template <typename T>
Arr<T> maxpool_scatter_nhwc(Arr<T> gy, py::array_t<uint8_t, py::array::c_style> arg, int64_t h, int64_t w,
                            int64_t /*kh: the window's row is arg / kw*/, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw) {
    if (gy.ndim() != 4 || arg.ndim() != 4 || gy.size() != arg.size())
        throw std::invalid_argument("max_pool2d backward: gy and arg must be 4-D arrays of one shape");
    const int64_t n = gy.shape(0), oh = gy.shape(1), ow = gy.shape(2), C = gy.shape(3);
    Arr<T> gx({n, h, w, C});
    const T *gd = gy.data();
    const uint8_t *ad = arg.data();
    T *xd = gx.mutable_data();
    py::gil_scoped_release nogil;
#pragma omp parallel for schedule(static) num_threads(threads_for(n * h * w * C))
    for (int64_t b = 0; b < n; ++b) {  // one sample per task: overlapping windows stay in one thread
        T *xb = xd + b * h * w * C;
        std::fill(xb, xb + h * w * C, T(0));
        for (int64_t r = 0; r < oh; ++r)
            for (int64_t q = 0; q < ow; ++q) {
                const T *go = gd + ((b * oh + r) * ow + q) * C;
                const uint8_t *ao = ad + ((b * oh + r) * ow + q) * C;
                for (int64_t c = 0; c < C; ++c) {
                    const int64_t k = ao[c], ih = r * sh - ph + k / kw, iw = q * sw - pw + k % kw;
                    if (ih >= 0 && ih < h && iw >= 0 && iw < w) xb[(ih * w + iw) * C + c] += go[c];
                }
            }
    }
    return gx;
}

// Training-mode batch-norm gradients (the reference's BatchNormGrad.forward):
//   x̂ = (x - mean) invstd, gb = sum g, gw = sum g x̂, gx = w invstd (g - gb/M - x̂ gw/M).
template <typename T>
std::tuple<Arr<T>, Arr<T>, Arr<T>> bn_backward(Arr<T> x, std::optional<Arr<T>> weight, Arr<T> g,
                                               Arr<T> mean, Arr<T> invstd) {
    const NCS d = ncs_of(x);
    same_size(x, g, "batch_norm_backward");
    if (mean.size() != d.c || invstd.size() != d.c)
        throw std::invalid_argument("batch_norm_backward: mean and invstd need one value per channel");
    const T *wd = vec_or_null(weight, d.c, "weight");
    Arr<T> gx(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim())), gw(d.c), gb(d.c);
    const T *xd = x.data(), *gd = g.data(), *md = mean.data(), *rd = invstd.data();
    T *gxd = gx.mutable_data(), *gwd = gw.mutable_data(), *gbd = gb.mutable_data();
    const double count = double(d.n * d.s);
    {  // no Python object is touched while the GIL is released
        py::gil_scoped_release nogil;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_for(d.n * d.c * d.s))
        for (int64_t c = 0; c < d.c; ++c) {
            const T mu = md[c], r = rd[c];
            double sg = 0, sgx = 0;
            for (int64_t n = 0; n < d.n; ++n) {
                const T *xc = xd + (n * d.c + c) * d.s, *gc = gd + (n * d.c + c) * d.s;
#pragma omp simd reduction(+ : sg, sgx)
                for (int64_t i = 0; i < d.s; ++i) {
                    sg += double(gc[i]);
                    sgx += double(gc[i]) * double((xc[i] - mu) * r);
                }
            }
            const T mg = T(sg / count), mgx = T(sgx / count), scale = wd ? wd[c] * r : r;
            for (int64_t n = 0; n < d.n; ++n) {
                const T *xc = xd + (n * d.c + c) * d.s, *gc = gd + (n * d.c + c) * d.s;
                T *oc = gxd + (n * d.c + c) * d.s;
                for (int64_t i = 0; i < d.s; ++i) oc[i] = scale * (gc[i] - mg - (xc[i] - mu) * r * mgx);
            }
            gbd[c] = T(sg);
            gwd[c] = T(sgx);
        }
    }
    return {gx, gw, gb};
}

// Adam / AdamW in place (PyTorch's formulas; see optim/adam.py):
//   decoupled: p *= 1 - lr wd   else: g += wd p
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g²
//   p -= step_size m / (sqrt(v) / bc2_sqrt + eps),  step_size = lr / (1 - b1^t), bc2_sqrt = sqrt(1 - b2^t)
template <typename T>
void adam_step(Arr<T> p, Arr<T> g, Arr<T> m, Arr<T> v, double lr, double beta1, double beta2, double eps,
               double weight_decay, bool decoupled, double step_size, double bc2_sqrt) {
    same_size(p, g, "adam_step");
    same_size(p, m, "adam_step");
    same_size(p, v, "adam_step");
    T *pd = p.mutable_data(), *md = m.mutable_data(), *vd = v.mutable_data();
    const T *gd = g.data();
    const int64_t n = p.size();
    const T b1 = T(beta1), b2 = T(beta2), c1 = T(1 - beta1), c2 = T(1 - beta2), e = T(eps),
            ss = T(step_size), bc = T(bc2_sqrt), wd = T(weight_decay), decay = T(1 - lr * weight_decay);
    const bool l2 = weight_decay != 0 && !decoupled, dec = weight_decay != 0 && decoupled;
    py::gil_scoped_release nogil;
#pragma omp parallel for schedule(static) num_threads(threads_for(n))
    for (int64_t i = 0; i < n; ++i) {
        T gi = gd[i];
        if (dec) pd[i] *= decay;
        if (l2) gi = gi + wd * pd[i];
        const T mi = md[i] * b1 + c1 * gi, vi = vd[i] * b2 + c2 * (gi * gi);
        md[i] = mi;
        vd[i] = vi;
        pd[i] -= ss * (mi / (std::sqrt(vi) / bc + e));
    }
}

// RMSprop in place, not centred, no momentum (optim/rmsprop.py):
//   g += wd p;  s = alpha s + (1 - alpha) g²;  p -= lr g / (sqrt(s) + eps)
template <typename T>
void rmsprop_step(Arr<T> p, Arr<T> g, Arr<T> s, double lr, double alpha, double eps, double weight_decay) {
    same_size(p, g, "rmsprop_step");
    same_size(p, s, "rmsprop_step");
    T *pd = p.mutable_data(), *sd = s.mutable_data();
    const T *gd = g.data();
    const int64_t n = p.size();
    const T a = T(alpha), ca = T(1 - alpha), e = T(eps), l = T(lr), wd = T(weight_decay);
    const bool l2 = weight_decay != 0;
    py::gil_scoped_release nogil;
#pragma omp parallel for schedule(static) num_threads(threads_for(n))
    for (int64_t i = 0; i < n; ++i) {
        T gi = gd[i];
        if (l2) gi = gi + wd * pd[i];
        const T si = sd[i] * a + ca * (gi * gi);
        sd[i] = si;
        pd[i] -= l * (gi / (std::sqrt(si) + e));
    }
}

// SGD with momentum in place (dampening 0, not Nesterov): buf = mu buf + g (+ wd p); p -= lr buf
template <typename T>
void sgd_momentum_step(Arr<T> p, Arr<T> g, Arr<T> buf, double lr, double momentum, double weight_decay) {
    same_size(p, g, "sgd_step");
    same_size(p, buf, "sgd_step");
    T *pd = p.mutable_data(), *bd = buf.mutable_data();
    const T *gd = g.data();
    const int64_t n = p.size();
    const T mu = T(momentum), l = T(lr), wd = T(weight_decay);
    const bool l2 = weight_decay != 0;
    py::gil_scoped_release nogil;
#pragma omp parallel for schedule(static) num_threads(threads_for(n))
    for (int64_t i = 0; i < n; ++i) {
        T gi = gd[i];
        if (l2) gi = gi + wd * pd[i];
        const T b = bd[i] * mu + gi;
        bd[i] = b;
        pd[i] -= l * b;
    }
}

// Max pooling (NCHW): y = max over each window, arg = the window offset (i * kw + j) of the
// first maximum; NaN propagates (as np.maximum does) and then arg is 0, as in pool.py.
template <typename T>
std::tuple<Arr<T>, py::array_t<uint8_t>> maxpool_forward(Arr<T> x, int64_t kh, int64_t kw, int64_t sh,
                                                         int64_t sw, int64_t ph, int64_t pw) {
    if (x.ndim() != 4) throw std::invalid_argument("max_pool2d: x must be 4-D");
    if (kh * kw > 255) throw std::invalid_argument("max_pool2d: the fused kernel takes windows of < 256 values");
    const int64_t n = x.shape(0) * x.shape(1), h = x.shape(2), w = x.shape(3);
    const int64_t oh = (h + 2 * ph - kh) / sh + 1, ow = (w + 2 * pw - kw) / sw + 1;
    if (oh < 1 || ow < 1) throw std::invalid_argument("max_pool2d: the window is larger than the padded input");
    Arr<T> y({x.shape(0), x.shape(1), oh, ow});
    py::array_t<uint8_t> arg({x.shape(0), x.shape(1), oh, ow});
    const T *xd = x.data();
    T *yd = y.mutable_data();
    uint8_t *ad = arg.mutable_data();
    {  // no Python object is touched while the GIL is released
        py::gil_scoped_release nogil;
#pragma omp parallel for schedule(static) num_threads(threads_for(n * h * w))
        for (int64_t p = 0; p < n; ++p) {
            const T *xp = xd + p * h * w;
            if (ph == 0 && pw == 0) {  // every window inside the plane: no bounds checks, no branches
                for (int64_t r = 0; r < oh; ++r)
                    for (int64_t q = 0; q < ow; ++q) {
                        const T *win = xp + r * sh * w + q * sw;
                        T best = win[0];
                        int bk = 0;
                        bool nan = best != best;
                        for (int64_t i = 0; i < kh; ++i)
                            for (int64_t j = 0; j < kw; ++j) {
                                const T v = win[i * w + j];
                                nan |= v != v;
                                const bool take = v > best;
                                best = take ? v : best;
                                bk = take ? int(i * kw + j) : bk;
                            }
                        const int64_t o = (p * oh + r) * ow + q;
                        yd[o] = nan ? std::numeric_limits<T>::quiet_NaN() : best;
                        ad[o] = uint8_t(nan ? 0 : bk);
                    }
                continue;
            }
            for (int64_t r = 0; r < oh; ++r)
                for (int64_t q = 0; q < ow; ++q) {
                    T best = -std::numeric_limits<T>::infinity();
                    int k = 0, bk = 0;
                    bool nan = false;
                    for (int64_t i = 0; i < kh; ++i)
                        for (int64_t j = 0; j < kw; ++j, ++k) {
                            const int64_t ih = r * sh - ph + i, iw = q * sw - pw + j;
                            if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
                            const T v = xp[ih * w + iw];
                            if (std::isnan(v)) nan = true;
                            else if (v > best) best = v, bk = k;
                        }
                    const int64_t o = (p * oh + r) * ow + q;
                    yd[o] = nan ? std::numeric_limits<T>::quiet_NaN() : best;
                    ad[o] = uint8_t(nan ? 0 : bk);
                }
        }
    }
    return {y, arg};
}

// The gradient of max pooling: gx = each gy added at its window's argmax (zeros elsewhere).
template <typename T>
Arr<T> maxpool_scatter(Arr<T> gy, py::array_t<uint8_t, py::array::c_style> arg, int64_t h, int64_t w,
                       int64_t /*kh: the window's row is arg / kw*/, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw) {
    if (gy.ndim() != 4 || arg.ndim() != 4 || gy.size() != arg.size())
        throw std::invalid_argument("max_pool2d backward: gy and arg must be 4-D arrays of one shape");
    const int64_t n = gy.shape(0) * gy.shape(1), oh = gy.shape(2), ow = gy.shape(3);
    Arr<T> gx({gy.shape(0), gy.shape(1), h, w});
    const T *gd = gy.data();
    const uint8_t *ad = arg.data();
    T *xd = gx.mutable_data();
    py::gil_scoped_release nogil;
#pragma omp parallel for schedule(static) num_threads(threads_for(n * h * w))
    for (int64_t p = 0; p < n; ++p) {
        T *xp = xd + p * h * w;
        std::fill(xp, xp + h * w, T(0));
        for (int64_t r = 0; r < oh; ++r)
            for (int64_t q = 0; q < ow; ++q) {
                const int64_t o = (p * oh + r) * ow + q, k = ad[o];
                const int64_t ih = r * sh - ph + k / kw, iw = q * sw - pw + k % kw;
                if (ih >= 0 && ih < h && iw >= 0 && iw < w) xp[ih * w + iw] += gd[o];
            }
    }
    return gx;
}

template <typename T>
void bind_dtype(py::module_ &m) {
    using namespace pybind11::literals;
    m.def("leaky_relu", &leaky_relu<T>, "x"_a, "slope"_a);
    m.def("leaky_relu_grad", &leaky_relu_grad<T>, "gy"_a, "x"_a, "slope"_a);
    m.def("channel_sum", &channel_sum<T>, "x"_a, "rows"_a);
    m.def("add_channel_bias", &add_channel_bias<T>, "y"_a.noconvert(), "b"_a, "rows"_a);
    m.def("batch_norm_forward", &bn_forward<T>, "x"_a, "weight"_a.none(true), "bias"_a.none(true), "eps"_a);
    m.def("batch_norm_backward", &bn_backward<T>, "x"_a, "weight"_a.none(true), "g"_a, "mean"_a, "invstd"_a);
    m.def("adam_step", &adam_step<T>, "p"_a.noconvert(), "g"_a, "m"_a.noconvert(), "v"_a.noconvert(), "lr"_a, "beta1"_a, "beta2"_a, "eps"_a,
          "weight_decay"_a, "decoupled"_a, "step_size"_a, "bc2_sqrt"_a);
    m.def("rmsprop_step", &rmsprop_step<T>, "p"_a.noconvert(), "g"_a, "s"_a.noconvert(), "lr"_a, "alpha"_a, "eps"_a, "weight_decay"_a);
    m.def("maxpool_forward", &maxpool_forward<T>);
    m.def("maxpool_forward_nhwc", &maxpool_forward_nhwc<T>);
    m.def("maxpool_scatter_nhwc", &maxpool_scatter_nhwc<T>);
    m.def("batch_norm_forward_nhwc", &bn_forward_nhwc<T>, "x"_a, "weight"_a.none(true), "bias"_a.none(true),
          "eps"_a);
    m.def("batch_norm_backward_nhwc", &bn_backward_nhwc<T>, "x"_a, "weight"_a.none(true), "g"_a, "mean"_a,
          "invstd"_a);
    m.def("maxpool_scatter", &maxpool_scatter<T>);
    m.def("sgd_momentum_step", &sgd_momentum_step<T>, "p"_a.noconvert(), "g"_a, "buf"_a.noconvert(), "lr"_a, "momentum"_a,
          "weight_decay"_a);
}

}  // namespace

void bind_fused(py::module_ &m) {
    bind_dtype<float>(m);
    bind_dtype<double>(m);
}

}  // namespace mg

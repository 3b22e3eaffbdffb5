"""The numba column of kernel_table.py's table: im2col / col2im and the fused ops as JIT-compiled loops.

Each function takes the arguments of its NumPy reference (functional/im2col.py, reference.py)
and gives the same result. Same layout as the reference: the column matrix is channels
last, (N, OH, OW, kh, kw, C), so every kernel tap copies a run of C contiguous values of
the NHWC input; the GEMM stays in NumPy's BLAS. col2im is written as a gather (each input
pixel sums the taps that read it), so the parallel loop has no write conflicts.

numba itself is imported, and each loop compiled (cached on disk), on the loop's first
call: importing numba takes longer than importing minigan, and most runs never call it.
"""
import functools

import numpy as np

from . import cpu_ext

prange = range              # numba.prange once the first loop compiles (a parallel range)


def _jit(loop):
    """`loop` compiled by numba (parallel, cached on disk) on its first call."""
    compiled = []

    @functools.wraps(loop)
    def run(*args):
        if not compiled:
            compiled.append(_compile(loop))
        return compiled[0](*args)
    return run


def _compile(loop):
    """numba's parallel compile of `loop`, with numba's threads set as minigan's (set_num_threads)."""
    global prange
    import numba
    prange = numba.prange
    numba.set_num_threads(min(cpu_ext.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    return numba.njit(parallel=True, cache=True, fastmath=False)(loop)


@_jit
def _im2col_nhwc(xt, kh, kw, sh, sw, ph, pw, oh, ow, col):
    n, h, w, c = xt.shape
    for t in prange(n * oh):
        b, r = t // oh, t % oh
        for q in range(ow):
            for i in range(kh):
                ih = r * sh - ph + i
                for j in range(kw):
                    iw = q * sw - pw + j
                    if 0 <= ih < h and 0 <= iw < w:
                        for ch in range(c):
                            col[b, r, q, i, j, ch] = xt[b, ih, iw, ch]
                    else:
                        for ch in range(c):
                            col[b, r, q, i, j, ch] = 0


@_jit
def _col2im_nhwc(col, sh, sw, ph, pw, gxt):
    n, oh, ow, kh, kw, c = col.shape
    h, w = gxt.shape[1], gxt.shape[2]
    for t in prange(n * h):
        b, ih = t // h, t % h
        for iw in range(w):
            for ch in range(c):
                gxt[b, ih, iw, ch] = 0
            for i in range(kh):
                th = ih + ph - i                     # = r * sh
                if th < 0 or th % sh != 0 or th // sh >= oh:
                    continue
                r = th // sh
                for j in range(kw):
                    tw = iw + pw - j
                    if tw < 0 or tw % sw != 0 or tw // sw >= ow:
                        continue
                    q = tw // sw
                    for ch in range(c):
                        gxt[b, ih, iw, ch] += col[b, r, q, i, j, ch]


def _out_hw(h, w, kh, kw, s, p):
    return (h + 2 * p[0] - kh) // s[0] + 1, (w + 2 * p[1] - kw) // s[1] + 1


def im2col(x, kh, kw, stride, padding):
    """(N, C, H, W) -> (N, OH, OW, kh, kw, C), as the reference's im2col."""
    n, c, h, w = x.shape
    oh, ow = _out_hw(h, w, kh, kw, stride, padding)
    xt = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    col = np.empty((n, oh, ow, kh, kw, c), dtype=x.dtype)
    _im2col_nhwc(xt, kh, kw, stride[0], stride[1], padding[0], padding[1], oh, ow, col)
    return col


def col2im(col, x_shape, stride, padding):
    n, c, h, w = x_shape
    gxt = np.empty((n, h, w, c), dtype=col.dtype)
    _col2im_nhwc(np.ascontiguousarray(col), stride[0], stride[1], padding[0], padding[1], gxt)
    return np.ascontiguousarray(gxt.transpose(0, 3, 1, 2))


def _wmat(w):
    return w.transpose(0, 2, 3, 1).reshape(w.shape[0], -1)     # (M, kh*kw*C)


def conv2d_forward(x, w, stride, padding):
    n, m = x.shape[0], w.shape[0]
    col = im2col(x, w.shape[2], w.shape[3], stride, padding)
    oh, ow = col.shape[1:3]
    y = col.reshape(n * oh * ow, -1) @ _wmat(w).T
    return np.ascontiguousarray(y.reshape(n, oh, ow, m).transpose(0, 3, 1, 2))


def conv2d_backward_data(gy, w, x_shape, stride, padding):
    n, m, oh, ow = gy.shape
    _, c, kh, kw = w.shape
    gcol = gy.transpose(0, 2, 3, 1).reshape(n * oh * ow, m) @ _wmat(w)
    return col2im(gcol.reshape(n, oh, ow, kh, kw, c), x_shape, stride, padding)


def conv2d_backward_weight(x, gy, w_shape, stride, padding):
    m, c, kh, kw = w_shape
    n, _, oh, ow = gy.shape
    col = im2col(x, kh, kw, stride, padding)
    gw = gy.transpose(1, 0, 2, 3).reshape(m, n * oh * ow) @ col.reshape(n * oh * ow, -1)
    return np.ascontiguousarray(gw.reshape(m, kh, kw, c).transpose(0, 3, 1, 2))


# ---- fused element-wise kernels (flat loops over contiguous arrays) --------------------------------

@_jit
def _leaky(x, slope, y):                         # slope 0 is relu as maximum(x, 0): NaN stays, -inf gives 0
    for i in prange(x.size):
        y[i] = x[i] if x[i] > 0 or x[i] != x[i] else (x[i] * slope if slope != 0 else 0)


@_jit
def _leaky_grad(gy, x, slope, gx):
    for i in prange(x.size):
        gx[i] = gy[i] if x[i] > 0 else gy[i] * slope


def leaky_relu(x, slope):
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    _leaky(x.reshape(-1), x.dtype.type(slope), y.reshape(-1))
    return y


def leaky_relu_grad(gy, x, slope):
    x = np.ascontiguousarray(x)
    gx = np.empty_like(x)
    _leaky_grad(np.ascontiguousarray(gy, dtype=x.dtype).reshape(-1), x.reshape(-1), x.dtype.type(slope),
                gx.reshape(-1))
    return gx


@_jit
def _bn_forward(x, w, b, eps, y, mean, var, invstd):
    n, c, s = x.shape
    for ch in prange(c):
        acc = 0.0
        for i in range(n):
            for j in range(s):
                acc += x[i, ch, j]
        mu = x.dtype.type(acc / (n * s))
        sq = 0.0
        for i in range(n):
            for j in range(s):
                t = x[i, ch, j] - mu
                sq += t * t
        v = x.dtype.type(sq / (n * s))
        r = x.dtype.type(1.0) / np.sqrt(v + eps)
        scale, shift = r * w[ch], b[ch]
        for i in range(n):
            for j in range(s):
                y[i, ch, j] = (x[i, ch, j] - mu) * scale + shift
        mean[ch], var[ch], invstd[ch] = mu, v, r


@_jit
def _bn_backward(x, w, g, mean, invstd, gx, gw, gb):
    n, c, s = x.shape
    for ch in prange(c):
        mu, r = mean[ch], invstd[ch]
        sg, sgx = 0.0, 0.0
        for i in range(n):
            for j in range(s):
                sg += g[i, ch, j]
                sgx += g[i, ch, j] * ((x[i, ch, j] - mu) * r)
        mg, mgx = x.dtype.type(sg / (n * s)), x.dtype.type(sgx / (n * s))
        scale = w[ch] * r
        for i in range(n):
            for j in range(s):
                gx[i, ch, j] = scale * (g[i, ch, j] - mg - (x[i, ch, j] - mu) * r * mgx)
        gb[ch], gw[ch] = sg, sgx


def _ncs(a):
    return np.ascontiguousarray(a).reshape(a.shape[0], a.shape[1], -1)


def batch_norm_forward(x, weight, bias, eps):
    c, dt = x.shape[1], x.dtype
    w = np.ones(c, dt) if weight is None else np.ascontiguousarray(weight, dtype=dt)
    b = np.zeros(c, dt) if bias is None else np.ascontiguousarray(bias, dtype=dt)
    y = np.empty(x.shape, dt)
    mean, var, invstd = np.empty(c, dt), np.empty(c, dt), np.empty(c, dt)
    _bn_forward(_ncs(x), w, b, dt.type(eps), y.reshape(_ncs(x).shape), mean, var, invstd)
    return y, mean, var, invstd


def batch_norm_backward(x, weight, g, mean, invstd):
    c, dt = x.shape[1], x.dtype
    w = np.ones(c, dt) if weight is None else np.ascontiguousarray(weight, dtype=dt)
    gx = np.empty(x.shape, dt)
    gw, gb = np.empty(c, dt), np.empty(c, dt)
    _bn_backward(_ncs(x), w, _ncs(np.asarray(g, dtype=dt)), mean, invstd, gx.reshape(_ncs(x).shape), gw, gb)
    return gx, gw, gb


@_jit
def _adam(p, g, m, v, b1, b2, c1, c2, eps, step_size, bc2, wd, decay, l2, dec):
    for i in prange(p.size):
        gi = g[i]
        if dec:
            p[i] *= decay
        if l2:
            gi = gi + wd * p[i]
        mi = m[i] * b1 + c1 * gi
        vi = v[i] * b2 + c2 * (gi * gi)
        m[i], v[i] = mi, vi
        p[i] -= step_size * (mi / (np.sqrt(vi) / bc2 + eps))


@_jit
def _rmsprop(p, g, s, a, ca, eps, lr, wd, l2):
    for i in prange(p.size):
        gi = g[i]
        if l2:
            gi = gi + wd * p[i]
        si = s[i] * a + ca * (gi * gi)
        s[i] = si
        p[i] -= lr * (gi / (np.sqrt(si) + eps))


@_jit
def _sgd(p, g, buf, mu, lr, wd, l2):
    for i in prange(p.size):
        gi = g[i]
        if l2:
            gi = gi + wd * p[i]
        b = buf[i] * mu + gi
        buf[i] = b
        p[i] -= lr * b


def _flat_ok(*arrays):
    dt = arrays[0].dtype
    return dt in (np.float32, np.float64) and all(
        a.dtype == dt and a.flags.c_contiguous and a.flags.writeable for a in arrays)


def adam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    if not _flat_ok(p, m, v):
        return False
    t = p.dtype.type
    _adam(p.reshape(-1), np.ascontiguousarray(g, dtype=p.dtype).reshape(-1), m.reshape(-1), v.reshape(-1),
          t(beta1), t(beta2), t(1 - beta1), t(1 - beta2), t(eps), t(lr / (1 - beta1 ** step)),
          t((1 - beta2 ** step) ** 0.5), t(weight_decay), t(1 - lr * weight_decay),
          weight_decay != 0 and not decoupled, weight_decay != 0 and bool(decoupled))
    return True


def rmsprop_step(p, g, s, lr, alpha, eps, weight_decay):
    if not _flat_ok(p, s):
        return False
    t = p.dtype.type
    _rmsprop(p.reshape(-1), np.ascontiguousarray(g, dtype=p.dtype).reshape(-1), s.reshape(-1), t(alpha),
             t(1 - alpha), t(eps), t(lr), t(weight_decay), weight_decay != 0)
    return True


def sgd_momentum_step(p, g, buf, lr, momentum, weight_decay):
    if not _flat_ok(p, buf):
        return False
    t = p.dtype.type
    _sgd(p.reshape(-1), np.ascontiguousarray(g, dtype=p.dtype).reshape(-1), buf.reshape(-1), t(momentum), t(lr),
         t(weight_decay), weight_decay != 0)
    return True

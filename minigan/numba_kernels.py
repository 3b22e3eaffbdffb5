"""The numba backend of the dispatcher: im2col / col2im as JIT-compiled parallel loops.

Same layout as the reference (functional/im2col.py): the column matrix is channels
last, (N, OH, OW, kh, kw, C), so every kernel tap copies a run of C contiguous
values of the NHWC input; the GEMM stays in NumPy's BLAS. col2im is written as a
gather (each input pixel sums the taps that read it), so the parallel loop has no
write conflicts. Kernels compile on first use and are cached on disk (cache=True).
Importing this module raises ImportError when numba is missing.
"""
import numba
import numpy as np

_jit = numba.njit(parallel=True, cache=True, fastmath=False)


@_jit
def _im2col_nhwc(xt, kh, kw, sh, sw, ph, pw, oh, ow, col):
    n, h, w, c = xt.shape
    for t in numba.prange(n * oh):
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
    for t in numba.prange(n * h):
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

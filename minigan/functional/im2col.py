"""The plain reference convolution: im2col / col2im and one GEMM per primitive.

Everything here works on raw arrays (NumPy or CuPy, picked from the input). It is the last
column of minigan/kernel_table.py, the reference every faster kernel (C++, numba, CUDA) of the
three primitives is tested against; conv.py's autograd code calls them through the table:

    conv2d_forward(x, w, stride, padding)                  -> y   (N, O, OH, OW)
    conv2d_backward_data(gy, w, x_shape, stride, padding)  -> gx  (N, C, H, W)
    conv2d_backward_weight(x, gy, w_shape, stride, padding) -> gw (O, C, kH, kW)

Layouts. Tensors are NCHW and weights (O, C, kH, kW), as in PyTorch. The column
matrix is channels-last: `col[n, oh, ow, i, j, c] = x_pad[n, c, s*oh + i, s*ow + j]`,
shape (N, OH, OW, kH, kW, C), which reshapes for free into the GEMM operand
(N*OH*OW, kH*kW*C); the weight is permuted to match, (O, kH, kW, C) -> (O, K).
The rule: one big GEMM whose reduction axis K is contiguous. A batched GEMM per image
would hand BLAS matrices of only OH*OW = 16 or 64 rows on the small layers and starve
it (the layouts compared are in bench/RESULTS.md).

im2col copies the kH*kW strided slices of the padded input (one strided view
holding all of them, then one copy); col2im, its adjoint, scatter-adds the same
slices back (a Python loop over the kernel offsets only).
"""
from ..backend import get_array_module


def pair(v, name='value'):
    """An int or an (h, w) pair -> a tuple of two ints."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f'{name} must be an int or an (h, w) pair, got {v!r}')
        return int(v[0]), int(v[1])
    return int(v), int(v)


def conv_output_size(size, k, s, p):
    """Output length of a convolution along one axis: floor((size + 2p - k) / s) + 1."""
    return (size + 2 * p - k) // s + 1


def _out_hw(h, w, kh, kw, stride, padding):
    (sh, sw), (ph, pw) = stride, padding
    return conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)


def im2col(x, kh, kw, stride, padding):
    """Column matrix of x (N, C, H, W): an array (N, OH, OW, kh, kw, C), contiguous.

    `col.reshape(N*OH*OW, kh*kw*C)` is the left GEMM operand of a convolution.
    """
    xp = get_array_module(x)
    stride, padding = pair(stride), pair(padding)
    (sh, sw), (ph, pw) = stride, padding
    n, c, h, w = x.shape
    oh, ow = _out_hw(h, w, kh, kw, stride, padding)
    # channels-last padded copy; rows/columns past the last window are never read
    hp, wp = (oh - 1) * sh + kh, (ow - 1) * sw + kw
    xpad = xp.zeros((n, hp, wp, c), dtype=x.dtype)
    hi, wi = max(0, min(h, hp - ph)), max(0, min(w, wp - pw))
    xpad[:, ph:ph + hi, pw:pw + wi, :] = x[:, :, :hi, :wi].transpose(0, 2, 3, 1)
    # the kh*kw strided slices xpad[:, i::sh, j::sw, :] as one view, then one copy: (kw, C) is then a
    # single contiguous run of the source, which copies twice as fast as a loop of per-offset slices
    sn, sr, sc, sch = xpad.strides
    windows = xp.lib.stride_tricks.as_strided(xpad, (n, oh, ow, kh, kw, c), (sn, sr * sh, sc * sw, sr, sc, sch))
    col = xp.ascontiguousarray(windows)
    return col


def col2im(col, x_shape, stride, padding):
    """Adjoint of im2col: scatter-add col (N, OH, OW, kh, kw, C) into an array of x_shape (NCHW).

    x_shape is needed because several input sizes give the same output size when
    (H + 2p - k) is not divisible by the stride; the rows no window reads get 0.
    """
    xp = get_array_module(col)
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    n, oh, ow, kh, kw, c = col.shape
    _, _, h, w = x_shape
    hp, wp = (oh - 1) * sh + kh, (ow - 1) * sw + kw
    gpad = xp.zeros((n, max(hp, h + ph), max(wp, w + pw), c), dtype=col.dtype)
    for i in range(kh):
        for j in range(kw):
            gpad[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :] += col[:, :, :, i, j, :]
    return xp.ascontiguousarray(gpad[:, ph:ph + h, pw:pw + w, :].transpose(0, 3, 1, 2))


def _weight_matrix(w):
    """(O, C, kh, kw) -> (O, kh*kw*C), the column order of im2col."""
    o = w.shape[0]
    return w.transpose(0, 2, 3, 1).reshape(o, -1)


def conv2d_forward(x, w, stride=1, padding=0):
    """y[n, o] = sum_{c, i, j} w[o, c, i, j] x_pad[n, c, s*oh + i, s*ow + j]: one GEMM (M, K) x (K, O)."""
    xp = get_array_module(x)
    n, o = x.shape[0], w.shape[0]
    col = im2col(x, w.shape[2], w.shape[3], stride, padding)
    _, oh, ow = col.shape[:3]
    y = xp.matmul(col.reshape(n * oh * ow, -1), _weight_matrix(w).T)       # (N*OH*OW, O)
    return xp.ascontiguousarray(y.reshape(n, oh, ow, o).transpose(0, 3, 1, 2))


def conv2d_backward_data(gy, w, x_shape, stride=1, padding=0):
    """gx = col2im(gy^T W): the gradient of conv2d_forward with respect to x (x_shape NCHW)."""
    xp = get_array_module(gy)
    n, o, oh, ow = gy.shape
    _, c, kh, kw = w.shape
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    if (sh, sw) == (1, 1) and ph < kh and pw < kw:
        # stride 1: the adjoint is a convolution itself, of gy with the flipped kernel, channel roles
        # swapped, padding k - 1 - p: one im2col copy instead of kh*kw scatter-adds into gx
        w_adj = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)                    # (C, O, kh, kw)
        return conv2d_forward(gy, w_adj, 1, (kh - 1 - ph, kw - 1 - pw))
    gy_t = gy.transpose(1, 0, 2, 3).reshape(o, n * oh * ow)                  # (O, M): a contiguous GEMM operand
    gcol = xp.matmul(gy_t.T, _weight_matrix(w))                             # (M, K)
    return col2im(gcol.reshape(n, oh, ow, kh, kw, c), x_shape, stride, padding)


def conv2d_backward_weight(x, gy, w_shape, stride=1, padding=0):
    """gw = gy_t @ col(x): the gradient of conv2d_forward with respect to w (w_shape (O, C, kh, kw))."""
    xp = get_array_module(x)
    o, c, kh, kw = w_shape
    n, _, oh, ow = gy.shape
    col = im2col(x, kh, kw, stride, padding)
    if col.shape[1:3] != (oh, ow):
        raise ValueError(f'conv2d_backward_weight: gy has spatial size {(oh, ow)}, but x {x.shape} with a '
                         f'{kh}x{kw} kernel, stride {stride} and padding {padding} gives {col.shape[1:3]}')
    gy_t = gy.transpose(1, 0, 2, 3).reshape(o, n * oh * ow)                  # (O, M), a copy
    gw = xp.matmul(gy_t, col.reshape(n * oh * ow, -1))                      # (O, K)
    return xp.ascontiguousarray(gw.reshape(o, kh, kw, c).transpose(0, 3, 1, 2))


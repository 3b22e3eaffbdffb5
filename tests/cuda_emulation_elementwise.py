"""kernels/batch_norm.cu and kernels/optimizers.cu run on the CPU, mirrored block by block, thread by thread.

RULE: when a kernel in kernels/*.cu changes, its emulation here changes in the same commit. Each
function below names the kernel function it mirrors and follows its statements in order, with the
grid's blocks and each block's threads as axes of NumPy arrays: batch norm's arrays are
(channel ch = blockIdx.x, block p = blockIdx.y, thread), the optimisers' (global thread index).
Every store to a kernel output is counted (returned as `writes`, one int array per output), so an
element written twice or never shows. block_sum mirrors the warp shuffles' tree; the order of the
per-thread sums is the kernel's, their float rounding is NumPy's.
"""
import numpy as np

from minigan import cuda_launch as L

THREADS = L.THREADS


def block_sum(v):
    """batch_norm.cu's block_sum on v (..., THREADS): __shfl_down_sync trees within each warp, then over
    the warps' sums in warp 0. A lane whose source lane is past 31 reads its own value, as the hardware."""
    lane = np.arange(32)

    def warp_tree(w):
        for offset in (16, 8, 4, 2, 1):
            src = np.where(lane + offset < 32, lane + offset, lane)
            w = w + w[..., src]
        return w[..., 0]

    warp_sums = warp_tree(v.reshape(v.shape[:-1] + (THREADS // 32, 32)))         # lane 0 of each warp
    first = np.concatenate([warp_sums, np.zeros(warp_sums.shape[:-1] + (32 - THREADS // 32,), v.dtype)], -1)
    return warp_tree(first)


def chunk_of(p, blocks, count):
    """batch_norm.cu's chunk_of: block p's values [begin, end) of its channel (p may be an array)."""
    size = -(-count // blocks)
    return np.minimum(count, p * size), np.minimum(count, (p + 1) * size)


class ChannelWalk:
    """batch_norm.cu's ChannelWalk for every thread of every block: value e of channel ch at x[at]."""

    def __init__(self, begin, ch, c, m):
        self.e = begin + np.arange(THREADS)
        self.s = self.e % m
        self.at = (self.e // m * c + ch) * m + self.s
        self.ds, self.step_at, self.carry_at, self.m = THREADS % m, THREADS // m * c * m + THREADS % m, c * m - m, m

    def next(self):
        self.e = self.e + THREADS
        self.at = self.at + self.step_at
        self.s = self.s + self.ds
        over = self.s >= self.m
        self.s = np.where(over, self.s - self.m, self.s)
        self.at = np.where(over, self.at + self.carry_at, self.at)


def walk(begin, end, ch, c, m):
    """The (active, at) of each pass of the threads' walks over [begin, end)."""
    w = ChannelWalk(begin, ch, c, m)
    while (w.e < end).any():
        yield np.broadcast_to(w.e < end, w.at.shape), w.at
        w.next()


def _grid(x):
    n, c = x.shape[:2]
    m = x.size // (n * c)
    blocks = L.batch_norm_blocks(c, n * m)
    ch, p = np.arange(c)[:, None, None], np.arange(blocks)[None, :, None]
    return n, c, m, blocks, ch, p, chunk_of(p, blocks, n * m)


def _count(writes, at, active):
    writes += np.bincount(at[active], minlength=writes.size)


def _thread0_stores(c, blocks):
    """The store counts of the partials (C, P, 2) and of the (C,) outputs, stored by thread 0 of each
    block: partial[(ch P + p) 2 + i] by every block, out[ch] by the blocks (ch, 0)."""
    ch, p = np.meshgrid(np.arange(c), np.arange(blocks), indexing='ij')
    at = ((ch * blocks + p) * 2)[..., None] + np.arange(2)
    return (np.bincount(at.ravel(), minlength=c * blocks * 2),
            np.bincount(ch[p == 0], minlength=c))


def batch_norm_act_forward(x, weight, bias, eps, slope):
    """batch_norm_act_stats then batch_norm_act_forward, on the launcher's grid (C, P).
    Returns (y, mean, var, invstd), the partials, and the store counts of each output."""
    x = np.ascontiguousarray(x)
    flat, dtype = x.ravel(), x.dtype
    n, c, m, blocks, ch, p, (begin, end) = _grid(x)
    partial = np.full((c, blocks, 2), np.nan, dtype)
    # batch_norm_stats
    total = np.zeros((c, blocks, THREADS), dtype)
    for active, at in walk(begin, end, ch, c, m):
        total += np.where(active, flat[np.where(active, at, 0)], 0)
    n_b = (end - begin)[..., 0]
    mean_b = np.where(n_b > 0, block_sum(total) / np.maximum(n_b, 1).astype(dtype), 0).astype(dtype)
    squares = np.zeros((c, blocks, THREADS), dtype)
    for active, at in walk(begin, end, ch, c, m):
        d = flat[np.where(active, at, 0)] - mean_b[..., None]
        squares += np.where(active, d * d, 0)
    partial[..., 0], partial[..., 1] = mean_b, block_sum(squares)
    # batch_norm_act_forward: every thread combines the partials in block order (identical in all threads)
    count = n * m
    seen, mean, m2 = np.zeros(c, dtype), np.zeros(c, dtype), np.zeros(c, dtype)
    for q in range(blocks):
        qb, qe = chunk_of(q, blocks, count)
        nq = dtype.type(qe - qb)
        if qe == qb:
            continue
        total_q = seen + nq
        delta = partial[:, q, 0] - mean
        mean = mean + delta * (nq / total_q)
        m2 = m2 + partial[:, q, 1] + delta * delta * (seen * nq / total_q)
        seen = total_q
    var = m2 * (dtype.type(1) / dtype.type(count))
    invstd = dtype.type(1) / np.sqrt(var + dtype.type(eps))
    scale, shift = (invstd * weight)[:, None, None], bias[:, None, None]
    y, w_y = np.full(x.size, np.nan, dtype), np.zeros(x.size, np.int64)
    for active, at in walk(begin, end, ch, c, m):
        z = (flat[np.where(active, at, 0)] - mean[:, None, None]) * scale + shift
        y[at[active]] = np.where(z > 0, z, dtype.type(slope) * z)[active]
        _count(w_y, at, active)
    w_partial, w_stats = _thread0_stores(c, blocks)
    writes = dict(y=w_y, partial=w_partial, stats=w_stats)
    return (y.reshape(x.shape), mean, var, invstd), partial, writes


def batch_norm_act_backward(x, y, gy, weight, mean, invstd, slope):
    """batch_norm_act_backward_sums then batch_norm_act_backward: (gx, gw, gb), partials, store counts."""
    x = np.ascontiguousarray(x)
    fx, fy, fg, dtype = x.ravel(), np.ravel(y), np.ravel(gy), x.dtype
    n, c, m, blocks, ch, p, (begin, end) = _grid(x)
    slope = dtype.type(slope)
    # batch_norm_act_backward_sums
    mu = mean[:, None, None]
    sum_g, sum_gx = np.zeros((c, blocks, THREADS), dtype), np.zeros((c, blocks, THREADS), dtype)
    for active, at in walk(begin, end, ch, c, m):
        a = np.where(active, at, 0)
        g = np.where(fy[a] > 0, fg[a], slope * fg[a])
        sum_g += np.where(active, g, 0)
        sum_gx += np.where(active, g * (fx[a] - mu), 0)
    partial = np.stack([block_sum(sum_g), block_sum(sum_gx)], axis=-1)
    # batch_norm_act_backward: the partials added in block order
    grad_bias, total_gx = np.zeros(c, dtype), np.zeros(c, dtype)
    for q in range(blocks):
        grad_bias, total_gx = grad_bias + partial[:, q, 0], total_gx + partial[:, q, 1]
    grad_weight, scale = total_gx * invstd, weight * invstd
    inv_count = dtype.type(1) / dtype.type(n * m)
    k1, k0 = -scale * invstd * grad_weight * inv_count, -scale * grad_bias * inv_count
    gx, w_gx = np.full(x.size, np.nan, dtype), np.zeros(x.size, np.int64)
    for active, at in walk(begin, end, ch, c, m):
        a = np.where(active, at, 0)
        g = np.where(fy[a] > 0, fg[a], slope * fg[a])
        v = scale[:, None, None] * g + k1[:, None, None] * (fx[a] - mu) + k0[:, None, None]
        gx[at[active]] = v[active]
        _count(w_gx, at, active)
    w_partial, w_grads = _thread0_stores(c, blocks)
    writes = dict(gx=w_gx, partial=w_partial, grads=w_grads)
    return (gx.reshape(x.shape), grad_weight, grad_bias), partial, writes


# ---- optimizers.cu: grid-stride loops over `size` elements ----------------------------------------------

def grid_stride(size):
    """The element index of each thread of the launcher's grid, pass by pass, and the active mask."""
    stride = L.elementwise_blocks(size) * THREADS
    i = np.arange(stride)
    while (i < size).any():
        yield i[i < size]
        i = i + stride


def adam_step(p, grad, m, v, lr, b1, b2, eps, wd, decoupled, step):
    """optimizers.cu's adam_step with the launcher's arguments, in place; returns the store counts of p, m, v."""
    t = p.dtype.type
    step_size, bias2_sqrt = t(lr / (1 - b1 ** step)), t((1 - b2 ** step) ** 0.5)
    lr, b1, b2, eps, wd = (t(a) for a in (lr, b1, b2, eps, wd))
    writes = np.zeros((3, p.size), np.int64)
    fp, fg, fm, fv = p.ravel(), grad.ravel(), m.ravel(), v.ravel()
    for i in grid_stride(p.size):
        g, w = fg[i], fp[i]
        if decoupled:
            w = w * (t(1) - lr * wd)
        else:
            g = g + wd * w
        mi = b1 * fm[i] + (t(1) - b1) * g
        vi = b2 * fv[i] + (t(1) - b2) * (g * g)
        fm[i], fv[i] = mi, vi
        fp[i] = w - step_size * (mi / (np.sqrt(vi) / bias2_sqrt + eps))
        writes[:, i] += 1
    return writes


def rmsprop_step(p, grad, s, lr, alpha, eps, wd):
    """optimizers.cu's rmsprop_step, in place; returns the store counts of p and s."""
    t = p.dtype.type
    lr, alpha, eps, wd = (t(a) for a in (lr, alpha, eps, wd))
    writes = np.zeros((2, p.size), np.int64)
    fp, fg, fs = p.ravel(), grad.ravel(), s.ravel()
    for i in grid_stride(p.size):
        g = fg[i] + wd * fp[i]
        si = alpha * fs[i] + (t(1) - alpha) * (g * g)
        fs[i] = si
        fp[i] -= lr * (g / (np.sqrt(si) + eps))
        writes[:, i] += 1
    return writes


def sgd_momentum_step(p, grad, buf, lr, momentum, wd):
    """optimizers.cu's sgd_momentum_step, in place; returns the store counts of p and buf."""
    t = p.dtype.type
    lr, momentum, wd = (t(a) for a in (lr, momentum, wd))
    writes = np.zeros((2, p.size), np.int64)
    fp, fg, fb = p.ravel(), grad.ravel(), buf.ravel()
    for i in grid_stride(p.size):
        g = fg[i] + wd * fp[i]
        b = momentum * fb[i] + g
        fb[i] = b
        fp[i] -= lr * b
        writes[:, i] += 1
    return writes

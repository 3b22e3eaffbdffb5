"""kernels/*.cu run on the CPU: NumPy emulations that mirror each kernel block by block, thread by thread.

RULE: when a kernel in kernels/*.cu changes, its emulation here changes in the same commit. Each
function below names the kernel function it mirrors; its statements follow the kernel's in order,
with the threads of a block (and, for the element-wise kernels, of the grid) as NumPy index arrays.

What is mirrored, and checked while it runs:
  - every index map (RowMap, Cursor and DepthMap, out_row), the bounds tests (unsigned compares),
    the tile shapes of cuda_launch.TILES and the launcher's tile and split choices (cuda_launch.py);
  - the two-stage pipeline of conv2d.cu's gemm_tile: each stage and depth map is tagged with the step
    it holds, and every use asserts the tag (a load from the wrong stage or stale maps fails);
  - the staging: each shared element of a stage is written exactly once per step;
  - the TF32 path warp by warp: fragments gathered with the m16n8k8 layouts of the PTX ISA
    (mma_m16n8k8 below), each matrix element held by exactly one (lane, register);
  - every store is counted: an output or partial-sum element written twice, or never, shows.
Not mirrored: the order of float additions inside a block's sums (NumPy's, not the GPU's), so
results match the reference to rounding, not bit for bit.
"""
import numpy as np

from minigan import cuda_launch as L

THREADS, TILE_K, OUTSIDE = L.THREADS, L.TILE_K, -(1 << 29)


def below(a, n):
    """unsigned(a) < unsigned(n), as the kernels compare: a negative a is huge."""
    return (np.asarray(a, dtype=np.int64) & 0xFFFFFFFF) < n


def idiv(a, b):
    """C's int division for the non-negative values the kernels divide."""
    assert np.all(np.asarray(a) >= 0) and np.all(np.asarray(b) > 0)
    return a // b


class TileShape:
    """conv2d.cu's TileShape<BM, BN, WARPS_M>."""

    def __init__(self, bm, bn, warps_m):
        self.BM, self.BN = bm, bn
        self.A_LD, self.B_LD = bm + 8, bn if bn % 32 == 8 else bn + 8
        self.RM = 4
        self.TX = bm // self.RM
        self.TY = THREADS // self.TX
        self.RN = bn // self.TY
        self.WARPS_M, self.WARPS_N = warps_m, THREADS // 32 // warps_m
        self.WM, self.WN = bm // warps_m, bn // self.WARPS_N
        self.MT, self.NT = self.WM // 16, self.WN // 8
        self.A_STEP, self.A_PER_THREAD = THREADS // bm, bm * TILE_K // THREADS
        self.B_ELEMS = bn * TILE_K
        self.B_PER_THREAD = -(-self.B_ELEMS // THREADS)
        assert self.RN * self.TY == bn and self.MT * 16 == self.WM and self.NT * 8 == self.WN


TILE_SHAPES = [TileShape(64, 64, 2), TileShape(64, 32, 2), TileShape(128, 8, 8)]   # by conv2d.cu's `tile`
assert [(s.BM, s.BN) for s in TILE_SHAPES] == list(L.TILES)


# ---- depth positions: Phased, step_digit, Cursor, advance -------------------------------------------------

def phased(v, s):
    return [v, idiv(v, s), v % s]


def step_digit(p, d, n, s, carry_in):
    """conv2d.cu's step_digit on arrays: p (v, q, r) += d + carry_in, wrapped at n; returns the carry."""
    v, q, r = p[0] + d[0] + carry_in, p[1] + d[1], p[2] + d[2] + carry_in
    over = r >= s
    r, q = np.where(over, r - s, r), np.where(over, q + 1, q)
    wrap = v >= n[0]
    v, q, r = np.where(wrap, v - n[0], v), np.where(wrap, q - n[1], q), np.where(wrap, r - n[2], r)
    under = r < 0
    p[:] = [v, np.where(under, q - 1, q), np.where(under, r + s, r)]
    return wrap.astype(np.int64)


class Cursor:
    """conv2d.cu's cursor_at: depth positions k = (d0, d1, d2) for an array of k (one per thread)."""

    def __init__(self, k, n1, n2, s1, s2):
        self.k, self.d0, self.e0 = k, idiv(idiv(k, n2), n1), TILE_K // n2 // n1
        self.d1, self.d2 = phased(idiv(k, n2) % n1, s1), phased(k % n2, s2)
        self.e1, self.e2 = phased(TILE_K // n2 % n1, s1), phased(TILE_K % n2, s2)
        self.n1, self.n2, self.s1, self.s2 = phased(n1, s1), phased(n2, s2), s1, s2

    def advance(self):
        self.k = self.k + TILE_K
        carry = step_digit(self.d2, self.e2, self.n2, self.s2, 0)
        self.d0 = self.d0 + self.e0 + step_digit(self.d1, self.e1, self.n1, self.s1, carry)


# ---- the three products -----------------------------------------------------------------------------

class Problem:
    """What Forward, BackwardData and BackwardWeight of conv2d.cu share: sources, output, geometry."""

    def __init__(self, a_src, b_src, out, g):
        self.a_src, self.b_src, self.out, self.g = a_src.ravel(), b_src.ravel(), out, g

    def in_window(self, row, t):
        g = self.g
        return below(row[1] + t[1], g['h']) & below(row[2] + t[2], g['w'])


class Forward(Problem):
    def rows(self): return self.g['n'] * self.g['oh'] * self.g['ow']
    def cols(self): return self.g['o']
    def depth(self): return self.g['c'] * self.g['kh'] * self.g['kw']
    def b_stride(self): return self.depth()

    def row(self, m):
        g = self.g
        inside = m < self.rows()
        mm = np.where(inside, m, 0)
        ox, oy, nb = mm % g['ow'], idiv(mm, g['ow']) % g['oh'], idiv(mm, g['ow'] * g['oh'])
        y, x = oy * g['sh'] - g['ph'], ox * g['sw'] - g['pw']
        off = (nb * g['c'] * g['h'] + y) * g['w'] + x
        return [np.where(inside, off, 0), np.where(inside, y, OUTSIDE), np.where(inside, x, 0), 0 * m]

    def cursor(self, k): return Cursor(k, self.g['kh'], self.g['kw'], 1, 1)

    def maps(self, c, k_end):
        g, ok = self.g, c.k < k_end
        off = (c.d0 * g['h'] + c.d1[0]) * g['w'] + c.d2[0]
        a = [np.where(ok, off, 0), np.where(ok, c.d1[0], OUTSIDE), np.where(ok, c.d2[0], 0), 0 * c.k]
        return a, np.where(ok, c.k, -1)

    def a_valid(self, row, t): return self.in_window(row, t)
    def out_row(self, m): return m + idiv(m, self.g['oh'] * self.g['ow']) * (self.g['o'] - 1) * self.g['oh'] * self.g['ow']
    def out_stride(self): return self.g['oh'] * self.g['ow']


class BackwardData(Problem):
    def rows(self): return self.g['n'] * self.g['h'] * self.g['w']
    def cols(self): return self.g['c']
    def depth(self): return self.g['o'] * self.g['kh'] * self.g['kw']
    def b_stride(self): return self.g['kh'] * self.g['kw']

    def row(self, m):
        g = self.g
        inside = m < self.rows()
        mm = np.where(inside, m, 0)
        ix, iy, nb = mm % g['w'], idiv(mm, g['w']) % g['h'], idiv(mm, g['w'] * g['h'])
        qy, ry = idiv(iy + g['ph'], g['sh']), (iy + g['ph']) % g['sh']
        qx, rx = idiv(ix + g['pw'], g['sw']), (ix + g['pw']) % g['sw']
        off = (nb * g['o'] * g['oh'] + qy) * g['ow'] + qx
        return [np.where(inside, off, 0), np.where(inside, qy, 0), np.where(inside, qx, 0),
                np.where(inside, ry << 16 | rx, -1)]

    def cursor(self, k): return Cursor(k, self.g['kh'], self.g['kw'], self.g['sh'], self.g['sw'])

    def maps(self, c, k_end):
        g, ok = self.g, c.k < k_end
        off = c.d0 * g['oh'] * g['ow'] - c.d1[1] * g['ow'] - c.d2[1]
        a = [np.where(ok, off, 0), np.where(ok, c.d1[1], 0), np.where(ok, c.d2[1], 0),
             np.where(ok, c.d1[2] << 16 | c.d2[2], -2)]
        return a, np.where(ok, (c.d0 * g['c'] * g['kh'] + c.d1[0]) * g['kw'] + c.d2[0], -1)

    def a_valid(self, row, t):
        g = self.g
        return (row[3] == t[3]) & below(row[1] - t[1], g['oh']) & below(row[2] - t[2], g['ow'])

    def out_row(self, m): return m + idiv(m, self.g['h'] * self.g['w']) * (self.g['c'] - 1) * self.g['h'] * self.g['w']
    def out_stride(self): return self.g['h'] * self.g['w']


class BackwardWeight(Problem):
    def rows(self): return self.g['c'] * self.g['kh'] * self.g['kw']
    def cols(self): return self.g['o']
    def depth(self): return self.g['n'] * self.g['oh'] * self.g['ow']
    def b_stride(self): return self.g['oh'] * self.g['ow']

    def row(self, m):
        g = self.g
        inside = m < self.rows()
        mm = np.where(inside, m, 0)
        j, i, ch = mm % g['kw'], idiv(mm, g['kw']) % g['kh'], idiv(mm, g['kw'] * g['kh'])
        y, x = i - g['ph'], j - g['pw']
        return [np.where(inside, (ch * g['h'] + y) * g['w'] + x, 0), np.where(inside, y, OUTSIDE),
                np.where(inside, x, 0), 0 * m]

    def cursor(self, k): return Cursor(k, self.g['oh'], self.g['ow'], 1, 1)

    def maps(self, c, k_end):
        g, ok = self.g, c.k < k_end
        y, x = c.d1[0] * g['sh'], c.d2[0] * g['sw']
        a = [np.where(ok, (c.d0 * g['c'] * g['h'] + y) * g['w'] + x, 0), np.where(ok, y, OUTSIDE),
             np.where(ok, x, 0), 0 * c.k]
        return a, np.where(ok, (c.d0 * g['o'] * g['oh'] + c.d1[0]) * g['ow'] + c.d2[0], -1)

    def a_valid(self, row, t): return self.in_window(row, t)
    def out_row(self, m): return m
    def out_stride(self): return self.rows()


# ---- TF32 and mma.sync m16n8k8 --------------------------------------------------------------------------

def to_tf32(v):
    """cvt.rna.tf32.f32: float32 rounded to 10 mantissa bits, to nearest, ties away from zero."""
    bits = np.ascontiguousarray(v, dtype=np.float32).view(np.uint32)
    return ((bits + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)


# The fragment layouts of mma.sync.aligned.m16n8k8 .tf32 (PTX ISA, "Matrix Fragments for mma.m16n8k8"),
# for lane l with groupID g = l / 4 and threadID_in_group t = l % 4:
#   A (16 x 8, row-major)  a_r at row g + 8 (r % 2), column t + 4 (r / 2)       r = 0..3
#   B (8 x 8, column)      b_r at row t + 4 r, column g                         r = 0..1
#   C, D (16 x 8)          c_r at row g + 8 (r / 2), column 2 t + r % 2         r = 0..3
LANE = np.arange(32)
G, T4 = LANE // 4, LANE % 4
A_AT = [(G + 8 * (r % 2), T4 + 4 * (r // 2)) for r in range(4)]
B_AT = [(T4 + 4 * r, G) for r in range(2)]
C_AT = [(G + 8 * (r // 2), 2 * T4 + r % 2) for r in range(4)]


def fragment_coverage():
    """How many (lane, register) pairs hold each element of A, B and C: all ones when the layouts tile."""
    counts = []
    for layout, shape in ((A_AT, (16, 8)), (B_AT, (8, 8)), (C_AT, (16, 8))):
        n = np.zeros(shape, dtype=np.int64)
        for rows, cols in layout:
            np.add.at(n, (rows, cols), 1)
        counts.append(n)
    return counts


def mma_m16n8k8(d, a, b):
    """d + a b of mma.sync for each warp, as lanes' registers: d (..., 32, 4), a (..., 32, 4), b (..., 32, 2)
    (leading axes broadcast: warps, mma tiles)."""
    def matrix(regs, layout, shape):
        m = np.zeros(regs.shape[:-2] + shape)
        for r, (rows, cols) in enumerate(layout):
            m[..., rows, cols] = regs[..., r]
        return m
    dm = matrix(a, A_AT, (16, 8)) @ matrix(b, B_AT, (8, 8)) + matrix(d, C_AT, (16, 8))
    dm = dm.astype(np.float32)      # TF32 products are exact in float32; one rounding here
    return np.stack([dm[..., rows, cols] for rows, cols in C_AT], axis=-1)


# ---- gemm_tile: one block ----------------------------------------------------------------------------------

def gemm_tile(p, S, tensor_cores, grid, writes):
    """conv2d.cu's gemm_tile<T, TensorCores, S> on every block of the grid at once (axis 0 of each array
    is the block, axis -1 the thread), step by step in lockstep; counts the stores in `writes`."""
    dtype = p.out.dtype
    rows, cols, depth, tid = p.rows(), p.cols(), p.depth(), np.arange(THREADS)
    bz, by, bx = (a.ravel()[:, None] for a in np.meshgrid(*(np.arange(n) for n in grid[::-1]), indexing='ij'))
    nblocks = bx.shape[0]
    m0, n0 = bx * S.BM, by * S.BN
    slice_ = idiv(depth + grid[2] * TILE_K - 1, grid[2] * TILE_K) * TILE_K
    k_begin = bz * slice_
    k_end = np.minimum(depth, k_begin + slice_)
    steps = np.where(k_end > k_begin, idiv(np.maximum(k_end - k_begin, 0) + TILE_K - 1, TILE_K), 0).ravel()

    a_mm, a_kk = tid % S.BM, tid // S.BM
    row = p.row(m0 + a_mm)
    b_kk, b_nn = tid % TILE_K, tid // TILE_K
    b_stride = p.b_stride()
    cursor = p.cursor(k_begin + tid[:TILE_K])

    a_map, b_map = np.zeros((2, 4, nblocks, TILE_K), np.int64), np.zeros((2, nblocks, TILE_K), np.int64)
    sa = np.full((2, nblocks, TILE_K, S.A_LD), np.nan, dtype)   # padding never written stays NaN: reading it shows
    sb = np.full((2, nblocks, TILE_K, S.B_LD), np.nan, dtype)
    map_step, stage_step, mapped = np.full((2, nblocks), -1), np.full((2, nblocks), -1), [0]
    every = np.arange(nblocks)

    def map_depths(to, blocks):
        """The blocks still in their loop write maps; the cursors of the others are never read again."""
        assert (map_step[to][blocks] == stage_step[to][blocks]).all(), 'depth maps overwritten before use'
        a, b = p.maps(cursor, k_end)
        a_map[to][:, blocks], b_map[to][blocks] = np.stack(a)[:, blocks], b[blocks]
        map_step[to][blocks] = mapped[0]
        mapped[0] += 1
        cursor.advance()

    def load(to, step, blocks):
        assert (map_step[to][blocks] == step).all(), 'a stage loaded from the depth maps of another step'
        bb = blocks[:, None]
        written_a, written_b = [], []
        for r in range(S.A_PER_THREAD):
            kk = a_kk + S.A_STEP * r
            t = a_map[to][:, bb, kk]
            rw = [v[blocks] for v in row]
            ok = p.a_valid(rw, t)
            sa[to, bb, kk, a_mm] = np.where(ok, p.a_src[np.where(ok, rw[0] + t[0], 0)], 0)
            written_a.append(bb * TILE_K * S.A_LD + kk * S.A_LD + a_mm)
        kb = b_map[to][bb, b_kk]
        for r in range(S.B_PER_THREAD):
            nn = b_nn + THREADS // TILE_K * r
            act = nn < S.BN
            ok = (kb >= 0) & (n0[blocks] + nn < cols)
            v = np.where(ok, p.b_src[np.where(ok, kb + (n0[blocks] + nn) * b_stride, 0)], 0)
            sb[to, bb, b_kk[act], nn[act]] = v[:, act]
            written_b.append((bb * TILE_K * S.B_LD + b_kk * S.B_LD + nn)[:, act])
        n = len(blocks)
        count_a = np.bincount(np.concatenate(written_a, axis=1).ravel(), minlength=n * TILE_K * S.A_LD)
        count_b = np.bincount(np.concatenate(written_b, axis=1).ravel(), minlength=n * TILE_K * S.B_LD)
        assert (count_a.reshape(n, TILE_K, S.A_LD)[:, :, :S.BM] == 1).all(), 'a staged A element written twice or never'
        assert (count_b.reshape(n, TILE_K, S.B_LD)[:, :, :S.BN] == 1).all(), 'a staged B element written twice or never'
        stage_step[to][blocks] = step

    lane, warp = tid % 32, tid // 32
    g, t4 = lane // 4, lane % 4
    wm, wn = warp % S.WARPS_M * S.WM, warp // S.WARPS_M * S.WN
    tx, ty = tid % S.TX, tid // S.TX
    tc = np.zeros((nblocks, S.MT * S.NT, THREADS, 4), np.float32)
    acc = np.zeros((nblocks, THREADS, S.RM, S.RN), dtype)

    map_depths(0, every)
    load(0, 0, every[steps > 0])
    map_depths(1, every)
    for s in range(steps.max(initial=0)):
        cur, nxt = s & 1, (s & 1) ^ 1
        on = every[s < steps]                      # the blocks still in their loop
        load(nxt, s + 1, every[s + 1 < steps])
        map_depths(cur, on)
        assert (stage_step[cur][on] == s).all(), 'step s multiplied from a stage holding another step'
        if tensor_cores:
            for k8 in (0, 8):
                a = np.empty((len(on), S.MT, THREADS, 4), np.float32)
                b = np.empty((len(on), S.NT, THREADS, 2), np.float32)
                for mt in range(S.MT):
                    r = wm + mt * 16 + g
                    for i, (dk, dm) in enumerate(((0, 0), (0, 8), (4, 0), (4, 8))):
                        a[:, mt, :, i] = to_tf32(sa[cur][on][:, k8 + t4 + dk, r + dm])
                for nt in range(S.NT):
                    col = wn + nt * 8 + g
                    b[:, nt, :, 0] = to_tf32(sb[cur][on][:, k8 + t4, col])
                    b[:, nt, :, 1] = to_tf32(sb[cur][on][:, k8 + t4 + 4, col])
                # every (mt, nt) mma tile of every warp at once: tc[mt NT + nt] += a[mt] b[nt]
                d = tc[on].reshape(len(on), S.MT, S.NT, 8, 32, 4)
                a_w, b_w = a.reshape(len(on), S.MT, 1, 8, 32, 4), b.reshape(len(on), 1, S.NT, 8, 32, 2)
                tc[on] = mma_m16n8k8(d, a_w, b_w).reshape(len(on), S.MT * S.NT, THREADS, 4)
        else:
            a = sa[cur][on][:, :, tx[:, None] + S.TX * np.arange(S.RM)]   # (blocks, TILE_K, threads, RM)
            b = sb[cur][on][:, :, ty[:, None] + S.TY * np.arange(S.RN)]
            acc[on] += a.transpose(0, 2, 3, 1) @ b.transpose(0, 2, 1, 3)   # sum over kk of a[kk, t, i] b[kk, t, j]

    base, out_stride = bz * rows * cols, p.out_stride()

    def store(m, col, v):
        ok = (m < rows) & (col < cols)
        at = np.broadcast_to(base, ok.shape)[ok] + p.out_row(m[ok]) + col[ok] * out_stride
        p.out[at] = v[ok]
        writes[:] += np.bincount(at, minlength=writes.size)

    full = np.zeros((nblocks, THREADS), np.int64)
    if tensor_cores:
        for mt in range(S.MT):
            for half in range(2):
                m = full + m0 + wm + mt * 16 + g + 8 * half
                for nt in range(S.NT):
                    for e in range(2):
                        store(m, full + n0 + wn + nt * 8 + 2 * t4 + e, tc[:, mt * S.NT + nt, :, 2 * half + e])
    else:
        for i in range(S.RM):
            for j in range(S.RN):
                store(full + m0 + tx + S.TX * i, full + n0 + ty + S.TY * j, acc[:, :, i, j])


def sum_splits(partial, out, size, splits, blocks):
    """conv2d.cu's sum_splits over the whole grid at once; returns the write count of each output."""
    writes = np.zeros(size, np.int64)
    i = np.arange(blocks * THREADS)
    while (i < size).any():
        at = i[i < size]
        s = partial[at].copy()
        for z in range(1, splits):
            s += partial[z * size + at]
        out[at] = s
        np.add.at(writes, at, 1)
        i = i + blocks * THREADS
    return writes


# ---- the launcher: cuda_kernels._implicit_gemm ----------------------------------------------------------

GEOMETRY = ('n', 'c', 'h', 'w', 'o', 'kh', 'kw', 'oh', 'ow', 'sh', 'sw', 'ph', 'pw')


def geometry(x_shape, w_shape, stride, padding, out_hw=None):
    """ConvGeometry as a dict; out_hw (OH, OW) smaller than the symmetric padding's is a conv padded
    less at the bottom and right (the kernels support it; the Python API does not)."""
    (n, c, h, w), (o, _, kh, kw) = x_shape, w_shape
    (sh, sw), (ph, pw) = stride, padding
    oh, ow = out_hw or ((h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)
    return dict(zip(GEOMETRY, (n, c, h, w, o, kh, kw, oh, ow, sh, sw, ph, pw)))


def implicit_gemm(kind, a, b, out_shape, g, tensor_cores=False, tile=None, splits=None, sm_count=L.SM_COUNT):
    """The output of conv2d.cu's product `kind` (Forward, ...) with the launcher's choices (or the
    tile and splits given), and a record: tile, splits, grid, and the store counts of the partial
    sums and of the output."""
    dtype = np.float32 if tensor_cores else a.dtype
    size = int(np.prod(out_shape))
    probe = kind(a, b, np.empty(0, dtype), g)
    rows, cols, depth = probe.rows(), probe.cols(), probe.depth()
    assert rows * cols == size
    tile = L.conv_tile(cols) if tile is None else tile
    splits = L.conv_splits(rows, cols, depth, tile, sm_count) if splits is None else splits
    out = np.full(size, np.nan, dtype)
    target = out if splits == 1 else np.full(splits * size, np.nan, dtype)
    partial_writes = np.zeros(target.size, np.int64)
    p = kind(a.astype(dtype), b.astype(dtype), target, g)
    grid = L.conv_grid(rows, cols, tile, splits)
    gemm_tile(p, TILE_SHAPES[tile], tensor_cores, grid, partial_writes)
    out_writes = partial_writes
    if splits > 1:
        out_writes = sum_splits(target, out, size, splits, L.elementwise_blocks(size))
    record = dict(tile=tile, splits=splits, grid=grid, partial_writes=partial_writes, out_writes=out_writes)
    return out.reshape(out_shape), record


def conv2d_forward(x, w, stride, padding, out_hw=None, **how):
    g = geometry(x.shape, w.shape, stride, padding, out_hw)
    return implicit_gemm(Forward, x, w, (g['n'], g['o'], g['oh'], g['ow']), g, **how)


def conv2d_backward_data(gy, w, x_shape, stride, padding, **how):
    g = geometry(x_shape, w.shape, stride, padding, gy.shape[2:])
    return implicit_gemm(BackwardData, gy, w, tuple(x_shape), g, **how)


def conv2d_backward_weight(x, gy, w_shape, stride, padding, **how):
    g = geometry(x.shape, w_shape, stride, padding, gy.shape[2:])
    return implicit_gemm(BackwardWeight, x, gy, tuple(w_shape), g, **how)

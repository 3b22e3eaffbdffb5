"""kernels/*.cu proven on the CPU: their NumPy emulations (cuda_emulation*.py) against the references.

For each shape, the three conv2d products are run as conv2d.cu runs them (the launcher's tile and
split-K choice, every block, every thread, the TF32 warps' m16n8k8 fragments) in float64 on the
float path and float32 on the TF32 path, and compared with minigan/functional/im2col.py in float64:
max |got - want| <= tol max(|want|, 1), tol 1e-12 (float64) and 5e-3 (TF32, 10-bit mantissas).
Every output element and every split-K partial sum must be stored exactly once. The same for
batch_norm.cu (against minigan's own batch norm and leaky ReLU) and optimizers.cu (against
minigan.optim). Seeds are fixed per shape. No GPU is needed, nor CuPy.

Padding: the Python API pads symmetrically (PyTorch's Conv2d); the kernels take OH and OW as given,
so a smaller OH is a conv padded less at the bottom, tested here with the reference on an input
cropped to match (asymmetric padding at the kernel level).
"""
import re
from pathlib import Path

import numpy as np
import pytest

import cuda_emulation as E
import cuda_emulation_elementwise as EW
import minigan as mg
import minigan.nn.functional as F
from minigan import cuda_launch as L
from minigan import optim
from minigan.functional import im2col as ref

TOL = {False: 1e-12, True: 5e-3}   # by tensor_cores

# (N, C, H, W, O, kh, kw, stride, padding, what it covers)
SHAPES = [
    (1, 1, 5, 5, 1, 1, 1, (1, 1), (0, 0), 'batch 1, one channel, 1x1 kernel'),
    (2, 3, 7, 5, 4, 3, 2, (2, 2), (1, 1), 'odd sizes, stride 2'),
    (3, 2, 9, 8, 5, 4, 3, (3, 3), (2, 2), 'stride 3, kernel not dividing the input'),
    (16, 3, 12, 12, 5, 3, 3, (1, 3), (2, 0), 'batch 16, stride and padding per axis, backward-weight split-K'),
    (2, 6, 4, 4, 7, 4, 4, (1, 1), (0, 0), 'a DCGAN last layer, 4x4 -> 1x1'),
    (5, 3, 1, 1, 2, 1, 1, (1, 1), (2, 2), '1x1 input, padding larger than the kernel'),
    (1, 2, 5, 13, 65, 1, 1, (1, 1), (0, 0), '65 rows x 65 columns: last tile of one element'),
    (2, 9, 6, 7, 33, 3, 3, (1, 1), (1, 1), 'wide, half and narrow tiles across the three products'),
    (8, 64, 4, 4, 1, 4, 4, (1, 1), (0, 0), 'one output channel: narrow tile, forward split-K'),
    (3, 5, 9, 9, 16, 3, 3, (2, 2), (1, 1), 'half tile, stride 2 backward-data'),
    (2, 40, 3, 3, 70, 3, 3, (1, 1), (1, 1), 'two column tiles, backward-data split-K'),
    (4, 2, 11, 10, 3, 5, 5, (3, 2), (2, 1), 'three output channels, strides 3 and 2'),
]


def close(got, want, tol):
    assert got.shape == want.shape, (got.shape, want.shape)
    err = np.abs(got.astype(np.float64) - want).max() if got.size else 0.0
    assert err <= tol * max(np.abs(want).max(initial=0.0), 1.0), f'max error {err}'


def written_once(record):
    assert (record['partial_writes'] == 1).all(), f'partial sums stored {set(record["partial_writes"].tolist())} times'
    assert (record['out_writes'] == 1).all(), f'outputs stored {set(record["out_writes"].tolist())} times'


def data(shape, seed, tensor_cores):
    """x, w, gy of a shape, exactly representable in the path's dtype, with the float64 references."""
    n, c, h, w, o, kh, kw, s, p = shape[:9]
    rng = np.random.default_rng(seed)
    dtype = np.float32 if tensor_cores else np.float64
    x = rng.standard_normal((n, c, h, w)).astype(dtype).astype(np.float64)
    wt = rng.standard_normal((o, c, kh, kw)).astype(dtype).astype(np.float64)
    y = ref.conv2d_forward(x, wt, s, p)
    gy = rng.standard_normal(y.shape).astype(dtype).astype(np.float64)
    return x, wt, gy, y, s, p


@pytest.mark.parametrize('tensor_cores', [False, True], ids=['float', 'tf32'])
@pytest.mark.parametrize('shape', SHAPES, ids=lambda s: s[-1])
def test_conv_products_match_reference_with_each_output_stored_once(shape, tensor_cores):
    x, wt, gy, y, s, p = data(shape, SHAPES.index(shape), tensor_cores)
    dtype = np.float32 if tensor_cores else np.float64
    tol = TOL[tensor_cores]
    got, record = E.conv2d_forward(x.astype(dtype), wt.astype(dtype), s, p, tensor_cores=tensor_cores)
    close(got, y, tol)
    written_once(record)
    got, record = E.conv2d_backward_data(gy.astype(dtype), wt.astype(dtype), x.shape, s, p, tensor_cores=tensor_cores)
    close(got, ref.conv2d_backward_data(gy, wt, x.shape, s, p), tol)
    written_once(record)
    got, record = E.conv2d_backward_weight(x.astype(dtype), gy.astype(dtype), wt.shape, s, p, tensor_cores=tensor_cores)
    close(got, ref.conv2d_backward_weight(x, gy, wt.shape, s, p), tol)
    written_once(record)


def test_shapes_cover_every_tile_and_split_k_in_every_product():
    """The launcher's choices over SHAPES reach each tile shape, and split the depth of each product."""
    tiles, split = set(), set()
    for n, c, h, w, o, kh, kw, (sh, sw), (ph, pw), _ in SHAPES:
        oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        for name, (rows, cols, depth) in {'forward': (n * oh * ow, o, c * kh * kw),
                                          'backward_data': (n * h * w, c, o * kh * kw),
                                          'backward_weight': (c * kh * kw, o, n * oh * ow)}.items():
            tile = L.conv_tile(cols)
            tiles.add(tile)
            if L.conv_splits(rows, cols, depth, tile) > 1:
                split.add(name)
    assert tiles == {0, 1, 2}
    assert split == {'forward', 'backward_data', 'backward_weight'}


@pytest.mark.parametrize('tensor_cores', [False, True], ids=['float', 'tf32'])
@pytest.mark.parametrize('tile', [0, 1, 2])
def test_every_tile_shape_computes_every_product(tile, tensor_cores):
    shape = (2, 9, 6, 7, 33, 3, 3, (2, 1), (1, 2))
    x, wt, gy, y, s, p = data(shape, 100 + tile, tensor_cores)
    dtype = np.float32 if tensor_cores else np.float64
    how = dict(tensor_cores=tensor_cores, tile=tile)
    for (got, record), want in (
            (E.conv2d_forward(x.astype(dtype), wt.astype(dtype), s, p, **how), y),
            (E.conv2d_backward_data(gy.astype(dtype), wt.astype(dtype), x.shape, s, p, **how),
             ref.conv2d_backward_data(gy, wt, x.shape, s, p)),
            (E.conv2d_backward_weight(x.astype(dtype), gy.astype(dtype), wt.shape, s, p, **how),
             ref.conv2d_backward_weight(x, gy, wt.shape, s, p))):
        assert record['tile'] == tile
        close(got, want, TOL[tensor_cores])
        written_once(record)


@pytest.mark.parametrize('tensor_cores', [False, True], ids=['float', 'tf32'])
def test_an_empty_last_split_stores_zeros_once(tensor_cores):
    """Depth 33 in 4 slices of 16: [0, 16), [16, 32), [32, 33) and an empty fourth, which must still
    store its (zero) partial sums, so that conv2d_sum_splits adds only written values."""
    x, wt, gy, y, s, p = data((3, 33, 4, 5, 6, 1, 1, (1, 1), (0, 0)), 7, tensor_cores)
    dtype = np.float32 if tensor_cores else np.float64
    got, record = E.conv2d_forward(x.astype(dtype), wt.astype(dtype), s, p, tensor_cores=tensor_cores, splits=4)
    assert L.split_slice(33, 4) * 3 >= 33
    close(got, y, TOL[tensor_cores])
    written_once(record)
    partial = record['partial_writes'].reshape(4, -1)
    assert partial.shape[1] == y.size


@pytest.mark.parametrize('tensor_cores', [False, True], ids=['float', 'tf32'])
@pytest.mark.parametrize('out_hw', [(3, 2), (2, 3)])
def test_asymmetric_padding_through_a_smaller_output(out_hw, tensor_cores):
    """x 7x6, kernel 3x3, stride 2, top/left padding 1: OH, OW below the symmetric (4, 3) pad less at the
    bottom/right; the reference is the symmetric conv of the input cropped to what those outputs read."""
    rng = np.random.default_rng(11)
    dtype = np.float32 if tensor_cores else np.float64
    x = rng.standard_normal((2, 3, 7, 6)).astype(dtype).astype(np.float64)
    wt = rng.standard_normal((5, 3, 3, 3)).astype(dtype).astype(np.float64)
    (oh, ow), s, p = out_hw, (2, 2), (1, 1)
    want = ref.conv2d_forward(x, wt, s, p)[:, :, :oh, :ow]
    got, record = E.conv2d_forward(x.astype(dtype), wt.astype(dtype), s, p, out_hw=out_hw, tensor_cores=tensor_cores)
    close(got, want, TOL[tensor_cores])
    written_once(record)
    gy = rng.standard_normal(want.shape).astype(dtype).astype(np.float64)
    padded_gy = np.zeros(ref.conv2d_forward(x, wt, s, p).shape)
    padded_gy[:, :, :oh, :ow] = gy
    got, record = E.conv2d_backward_weight(x.astype(dtype), gy.astype(dtype), wt.shape, s, p, tensor_cores=tensor_cores)
    close(got, ref.conv2d_backward_weight(x, padded_gy, wt.shape, s, p), TOL[tensor_cores])
    written_once(record)
    got, record = E.conv2d_backward_data(gy.astype(dtype), wt.astype(dtype), x.shape, s, p, tensor_cores=tensor_cores)
    close(got, ref.conv2d_backward_data(padded_gy, wt, x.shape, s, p), TOL[tensor_cores])
    written_once(record)


@pytest.mark.parametrize('tensor_cores', [False, True], ids=['float', 'tf32'])
@pytest.mark.parametrize('size,k,s,p,extra', [(4, 4, 2, 1, 0), (5, 3, 2, 1, 1), (3, 4, 1, 0, 0), (4, 3, 3, 1, 2)])
def test_transposed_conv_output_sizes(size, k, s, p, extra, tensor_cores):
    """conv_transpose2d's forward is backward-data: its output (size - 1) s - 2 p + k + output_padding,
    with the extra rows no window reaches stored (as zeros) too."""
    out = (size - 1) * s - 2 * p + k + extra
    rng = np.random.default_rng(size * 31 + k)
    dtype = np.float32 if tensor_cores else np.float64
    z = rng.standard_normal((3, 6, size, size)).astype(dtype).astype(np.float64)     # the transposed conv's input
    wt = rng.standard_normal((6, 4, k, k)).astype(dtype).astype(np.float64)          # (C_in, C_out, k, k)
    x_shape = (3, 4, out, out)
    got, record = E.conv2d_backward_data(z.astype(dtype), wt.astype(dtype), x_shape, (s, s), (p, p),
                                         tensor_cores=tensor_cores)
    close(got, ref.conv2d_backward_data(z, wt, x_shape, (s, s), (p, p)), TOL[tensor_cores])
    written_once(record)


def test_launcher_never_makes_an_empty_split_and_splits_only_small_grids():
    for rows in (1, 7, 64, 65, 500, 4096, 40000):
        for cols in (1, 3, 16, 64, 200):
            for depth in (1, 15, 16, 17, 100, 1024, 4099, 65536):
                tile = L.conv_tile(cols)
                splits = L.conv_splits(rows, cols, depth, tile)
                steps = -(-depth // L.TILE_K)
                slice_ = L.split_slice(depth, splits)
                assert (splits - 1) * slice_ < depth <= splits * slice_, (rows, cols, depth, splits)
                blocks = np.prod(L.conv_grid(rows, cols, tile, 1))
                if blocks >= L.WAVES * L.SM_COUNT or steps < 2 * L.SPLIT_MIN_STEPS:
                    assert splits == 1
                else:
                    assert steps // splits >= L.SPLIT_MIN_STEPS - 1 or splits == 1


def test_emulation_constants_are_the_kernels():
    """The tile shapes, their `tile` indices, TILE_K, THREADS and OUTSIDE, read from conv2d.cu itself."""
    source = (Path(__file__).resolve().parents[1] / 'kernels' / 'conv2d.cu').read_text()
    shapes = dict(re.findall(r'using (\w+) = TileShape<(\d+, \d+, \d+)>;', source))
    by_index = {int(i): name for i, name in re.findall(r'tile == (\d)\) gemm_tile<T, TensorCores>\(p, \*reinterpret_cast<'
                                                     r'Stages<T, (\w+)>', source)}
    by_index[0] = re.search(r'else gemm_tile<T, TensorCores>\(p, \*reinterpret_cast<Stages<T, (\w+)>', source).group(1)
    emulated = [f'{s.BM}, {s.BN}, {s.WARPS_M}' for s in E.TILE_SHAPES]
    assert [shapes[by_index[i]] for i in range(3)] == emulated
    assert re.search(r'constexpr int TILE_K = (\d+);', source).group(1) == str(E.TILE_K)
    assert re.search(r'constexpr int THREADS = (\d+);', source).group(1) == str(E.THREADS)
    assert re.search(r'constexpr int OUTSIDE = -\(1 << (\d+)\);', source).group(1) == '29' and E.OUTSIDE == -(1 << 29)
    bn = (Path(__file__).resolve().parents[1] / 'kernels' / 'batch_norm.cu').read_text()
    assert re.search(r'constexpr int BN_THREADS = (\d+);', bn).group(1) == str(EW.THREADS)


def test_fragment_layouts_hold_each_element_once():
    for counts in E.fragment_coverage():
        assert (counts == 1).all()


def test_write_counts_catch_a_wrong_store_index():
    """The emulation's own check can fail: an out_row that sends two rows to one place is caught."""
    class Broken(E.Forward):
        def out_row(self, m):
            return super().out_row(m - m % 2)
    x, wt = np.ones((1, 1, 4, 4)), np.ones((2, 1, 1, 1))
    g = E.geometry(x.shape, wt.shape, (1, 1), (0, 0))
    _, record = E.implicit_gemm(Broken, x, wt, (1, 2, 4, 4), g)
    assert record['out_writes'].max() == 2 and record['out_writes'].min() == 0


def test_tf32_rounding_is_to_nearest_ties_away():
    one_ulp = np.float32(2.0 ** -10)
    v = np.array([1 + one_ulp / 2, 1 + one_ulp / 2 - 2 ** -23, -(1 + one_ulp / 2), 1 + 3 * one_ulp / 4], np.float32)
    np.testing.assert_array_equal(E.to_tf32(v), np.array([1 + one_ulp, 1, -(1 + one_ulp), 1 + one_ulp], np.float32))


# ---- batch_norm.cu -------------------------------------------------------------------------------------

def _batch_norm_reference(x, weight, bias, gy, slope, eps):
    """y, mean, var, invstd, gx, gw, gb of leaky_relu(batch_norm(x), slope) by minigan's float64 CPU ops."""
    with mg.conv_backend('numpy'):
        xt, wt, bt = (mg.tensor(a, requires_grad=True) for a in (x, weight, bias))
        z = F.batch_norm(xt, None, None, wt, bt, True, eps=eps)
        y = z if slope == 1 else F.leaky_relu(z, slope) if slope > 0 else F.relu(z)
        y.backward(mg.tensor(gy))
    axes = (0,) + tuple(range(2, x.ndim))
    var = x.var(axes)
    return y.numpy(), x.mean(axes), var, 1 / np.sqrt(var + eps), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


# (shape, what it covers); the launcher gives P blocks per channel, checked below
BN_SHAPES = [
    ((2, 3, 4, 5), 'one block per channel'),
    ((7, 4), '(N, C) input: M = 1'),
    ((3, 300, 2, 2), 'many channels, one block each'),
    ((16, 2, 33, 31), 'several blocks per channel, M not dividing the threads'),
    ((64, 1, 32, 32), 'one channel, 64 blocks'),
    ((5, 2, 257, 3), 'M larger than the threads'),
]


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('slope', [1.0, 0.0, 0.2], ids=['none', 'relu', 'leaky'])
@pytest.mark.parametrize('shape', BN_SHAPES, ids=lambda s: s[1])
def test_batch_norm_kernels_match_reference_with_each_output_stored_once(shape, slope, dtype):
    shape = shape[0]
    rng = np.random.default_rng(len(shape) + shape[1])
    c = shape[1]
    x, gy = (rng.standard_normal(shape) * 2 + 1).astype(dtype), rng.standard_normal(shape).astype(dtype)
    weight, bias = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    want = _batch_norm_reference(*(a.astype(np.float64) for a in (x, weight, bias, gy)), slope, 1e-5)
    (y, mean, var, invstd), _, writes = EW.batch_norm_act_forward(x, weight, bias, 1e-5, slope)
    for counts in writes.values():
        assert (counts == 1).all()
    (gx, gw, gb), _, writes = EW.batch_norm_act_backward(x, y, gy, weight, mean, invstd, slope)
    for counts in writes.values():
        assert (counts == 1).all()
    tol = 1e-10 if dtype == np.float64 else 1e-4
    for got, w in zip((y, mean, var, invstd, gx, gw, gb), want):
        close(got, w, tol)


def test_batch_norm_shapes_use_several_blocks_per_channel():
    blocks = {s: L.batch_norm_blocks(s[1], s[0] * int(np.prod(s[2:]))) for s, _ in BN_SHAPES}
    assert blocks[(2, 3, 4, 5)] == 1 and blocks[(64, 1, 32, 32)] == 64 and blocks[(16, 2, 33, 31)] > 1
    for (n, c, *rest), p in blocks.items():
        count = n * int(np.prod(rest))
        size = -(-count // p)
        assert (p - 1) * size < count, 'an empty block'


def test_block_sum_mirrors_the_shuffle_tree():
    v = np.arange(3 * EW.THREADS, dtype=np.float64).reshape(3, EW.THREADS)
    np.testing.assert_array_equal(EW.block_sum(v), v.sum(axis=1))


# ---- optimizers.cu -------------------------------------------------------------------------------------

SIZE = 3 * L.THREADS + 37                                 # a part-filled last block
BIG = L.ELEMENTWISE_MAX_BLOCKS * L.THREADS + 37           # the grid-stride loop makes a second pass
OPT_CASES = {   # a minigan optimizer, and the emulated kernel's update: (p, g, state, step) -> write counts
    'adam': (lambda ps: optim.Adam(ps, lr=1e-2, betas=(0.5, 0.999)),
             lambda p, g, s, t: EW.adam_step(p, g, s[0], s[1], 1e-2, 0.5, 0.999, 1e-8, 0, False, t)),
    'adam_l2': (lambda ps: optim.Adam(ps, lr=1e-2, weight_decay=0.1),
                lambda p, g, s, t: EW.adam_step(p, g, s[0], s[1], 1e-2, 0.9, 0.999, 1e-8, 0.1, False, t)),
    'adamw': (lambda ps: optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
              lambda p, g, s, t: EW.adam_step(p, g, s[0], s[1], 1e-2, 0.9, 0.999, 1e-8, 0.1, True, t)),
    'rmsprop': (lambda ps: optim.RMSprop(ps, lr=1e-2, weight_decay=0.01),
                lambda p, g, s, t: EW.rmsprop_step(p, g, s[0], 1e-2, 0.99, 1e-8, 0.01)),
}


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('case', list(OPT_CASES))
def test_optimizer_kernels_match_reference_with_each_element_stored_once(case, dtype):
    make, kernel_step = OPT_CASES[case]
    rng = np.random.default_rng(4)
    p0 = rng.standard_normal(SIZE).astype(dtype)
    grads = [rng.standard_normal(SIZE).astype(dtype) for _ in range(3)]
    with mg.conv_backend('numpy'):
        p = mg.tensor(p0.astype(np.float64), requires_grad=True)
        opt = make([p])
        for g in grads:
            p.grad = mg.tensor(g.astype(np.float64))
            opt.step()
    pk, state = p0.copy(), [np.zeros(SIZE, dtype), np.zeros(SIZE, dtype)]
    for t, g in enumerate(grads, 1):
        assert (kernel_step(pk, g, state, t) == 1).all()
    close(pk, p.numpy(), 1e-10 if dtype == np.float64 else 1e-4)


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_sgd_momentum_kernel_matches_reference(dtype):
    """The kernel takes over from the second step, once the optimizer has made the buffer."""
    rng = np.random.default_rng(5)
    p0, grads = rng.standard_normal(BIG).astype(dtype), [rng.standard_normal(BIG).astype(dtype) for _ in range(3)]
    with mg.conv_backend('numpy'):
        p = mg.tensor(p0.astype(np.float64), requires_grad=True)
        opt = optim.SGD([p], lr=1e-2, momentum=0.9, weight_decay=0.01)
        for g in grads:
            p.grad = mg.tensor(g.astype(np.float64))
            opt.step()
    buf = (grads[0].astype(np.float64) + 0.01 * p0).astype(dtype)
    pk = (p0 - 1e-2 * buf).astype(dtype)
    for g in grads[1:]:
        assert (EW.sgd_momentum_step(pk, g, buf, 1e-2, 0.9, 0.01) == 1).all()
    close(pk, p.numpy(), 1e-10 if dtype == np.float64 else 1e-4)

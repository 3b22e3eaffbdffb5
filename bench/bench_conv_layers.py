"""pytest-benchmark: forward, backward-data and backward-weight of every conv layer of
shared/spec/models.md, alone, at batch 64, for each minigan backend and for PyTorch.

    python -m pytest bench/bench_conv_layers.py --benchmark-only --benchmark-columns=median,ops
    python -m pytest bench/bench_conv_layers.py -k "dcgan32 and cpp" --benchmark-group-by=param:layer

Threads: MINIGAN_BENCH_THREADS (default 2) for both libraries. A ConvTranspose2d layer
runs the primitives of its adjoint conv: its forward is conv backward-data, its
backward-data is conv forward, its backward-weight is conv backward-weight with the
roles of input and output gradient swapped. Layers are named model/index/kind(in, out).
"""
import os
import time

import numpy as np
import pytest

from minigan import cpu_ext, kernel_table

THREADS = int(os.environ.get('MINIGAN_BENCH_THREADS', '2'))
BATCH = 64


def _layers():
    """(name, kind, input shape, weight shape, stride, padding) for every conv layer of models.md."""
    out = []
    nz, ngf, ndf, nc = 100, 64, 64, 3

    def gen(model, chans, size):
        hw = 1
        for i, (cin, cout) in enumerate(zip(chans, chans[1:])):
            s, p = (1, 0) if i == 0 else (2, 1)
            out.append((f'{model}/G{i + 1}/convT({cin},{cout})', 'convT', (BATCH, cin, hw, hw), (cin, cout, 4, 4), s, p))
            hw = 4 if i == 0 else hw * 2
        assert hw == size

    def disc(model, chans, size):
        hw = size
        for i, (cin, cout) in enumerate(zip(chans, chans[1:])):
            last = i == len(chans) - 2
            s, p = (1, 0) if last else (2, 1)
            out.append((f'{model}/D{i + 1}/conv({cin},{cout})', 'conv', (BATCH, cin, hw, hw), (cout, cin, 4, 4), s, p))
            hw = 1 if last else hw // 2

    gen('dcgan32', [nz, 4 * ngf, 2 * ngf, ngf, nc], 32)
    disc('dcgan32', [nc, ndf, 2 * ndf, 4 * ndf, 1], 32)
    gen('dcgan64', [nz, 8 * ngf, 4 * ngf, 2 * ngf, ngf, nc], 64)
    disc('dcgan64', [nc, ndf, 2 * ndf, 4 * ndf, 8 * ndf, 1], 64)
    for i, (cin, cout, hw) in enumerate([(nc, 32, 32), (32, 32, 32), (32, 64, 16), (64, 64, 16), (64, 128, 8)]):
        out.append((f'classifier32/C{i + 1}/conv({cin},{cout})', 'conv', (BATCH, cin, hw, hw), (cout, cin, 3, 3), 1, 1))
    return out


LAYERS = _layers()
BACKENDS = ['cpp', 'torch', 'numba', 'numpy']
PRIMITIVES = ['forward', 'backward_data', 'backward_weight']


def _conv_shapes(kind, x_shape, w_shape, stride, pad):
    """(conv input shape, conv weight shape, conv output shape) of the conv that the layer is or is the adjoint of."""
    n = x_shape[0]
    if kind == 'conv':
        oh = (x_shape[2] + 2 * pad - w_shape[2]) // stride + 1
        return x_shape, w_shape, (n, w_shape[0], oh, oh)
    oh = (x_shape[2] - 1) * stride - 2 * pad + w_shape[2]      # convT: the adjoint conv maps (N, Cout, oh) -> x
    return (n, w_shape[1], oh, oh), w_shape, x_shape


def _minigan_call(backend, kind, prim, xs, ws, ys, s, p, arrays):
    """A closure running one primitive of the layer on `backend` (or None if it is not available)."""
    if backend not in kernel_table.available_backends():
        return None
    column = kernel_table.CPU_COLUMNS.index(backend)
    forward, backward_data, backward_weight = (kernel_table.CPU[op][column] for op in kernel_table.CONV_OPS)
    x, w, y = arrays['x'], arrays['w'], arrays['y']
    sp, pp = (s, s), (p, p)
    # the layer's primitive -> the conv primitive that computes it
    conv_prim = {('conv', 'forward'): 'f', ('conv', 'backward_data'): 'd', ('conv', 'backward_weight'): 'w',
                 ('convT', 'forward'): 'd', ('convT', 'backward_data'): 'f', ('convT', 'backward_weight'): 'w'}
    which = conv_prim[(kind, prim)]
    if which == 'f':
        return lambda: forward(x, w, sp, pp)
    if which == 'd':
        return lambda: backward_data(y, w, xs, sp, pp)
    return lambda: backward_weight(x, y, ws, sp, pp)


def _torch_call(kind, prim, s, p, arrays, layer_in, layer_w):
    import torch
    torch.set_num_threads(THREADS)
    x, w = torch.from_numpy(layer_in), torch.from_numpy(layer_w)
    transposed = kind == 'convT'
    conv = (lambda a: torch.nn.functional.conv_transpose2d(a, w, None, s, p)) if transposed else \
        (lambda a: torch.nn.functional.conv2d(a, w, None, s, p))
    out = conv(x)
    gy = torch.from_numpy(np.random.default_rng(1).standard_normal(tuple(out.shape)).astype(np.float32))
    if prim == 'forward':
        return lambda: conv(x)
    mask = [prim == 'backward_data', prim == 'backward_weight', False]
    return lambda: torch.ops.aten.convolution_backward(gy, x, w, None, [s, s], [p, p], [1, 1], transposed, [0, 0],
                                                       1, mask)


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('prim', PRIMITIVES)
@pytest.mark.parametrize('layer', LAYERS, ids=[layer[0] for layer in LAYERS])
def test_conv_layer(benchmark, layer, prim, backend):
    name, kind, x_shape, w_shape, s, p = layer
    rng = np.random.default_rng(0)
    xs, ws, ys = _conv_shapes(kind, x_shape, w_shape, s, p)
    arrays = {'x': rng.standard_normal(xs).astype(np.float32), 'w': (0.02 * rng.standard_normal(ws)).astype(np.float32),
              'y': rng.standard_normal(ys).astype(np.float32)}
    if backend == 'torch':
        torch = pytest.importorskip('torch')
        layer_in = arrays['x'] if kind == 'conv' else arrays['y']
        fn = _torch_call(kind, prim, s, p, arrays, layer_in, arrays['w'])
        del torch
    else:
        import minigan as mg
        mg.set_num_threads(THREADS)
        fn = _minigan_call(backend, kind, prim, xs, ws, ys, s, p, arrays)
        if fn is None:
            pytest.skip(f'backend {backend} is not available')
    flops = 2 * int(np.prod(ys)) * int(np.prod(ws[1:]))
    benchmark.group = f'{name} {prim}'
    benchmark.extra_info.update(layer=name, primitive=prim, backend=backend, gflop=flops / 1e9,
                                threads=THREADS, cpp_blas=cpu_ext.ext().blas_kind() if cpu_ext.ext() else None)
    time.sleep(0.2)       # let the previous benchmark's thread pools (OpenBLAS spins ~0.1 s) go idle
    benchmark.pedantic(fn, rounds=10, warmup_rounds=2, iterations=1)
    if benchmark.stats is not None:
        benchmark.extra_info['gflops'] = flops / benchmark.stats.stats.median / 1e9

"""minigan on a GPU beside PyTorch CUDA (cuDNN), on the workloads of shared/spec/models.md, in one run.

    python bench/gpu_compare_torch.py --json gpu.json            # every part below, a few minutes on an H100
    python bench/gpu_compare_torch.py --only workloads -w dcgan32_b64 --repeats 50
    python bench/gpu_compare_torch.py --only layers --layers dcgan32

The JSON file (--json) is rewritten after every row, so a run stopped by a time limit keeps what it
measured; a file already there (an earlier part of the same run, e.g. --only scaling after --only
workloads) is read first and its other sections kept.

The parts, each a markdown table on stdout and a section of the JSON (bench/laptop_vs_gpu.py reads it):
    ceiling    a large SGEMM through CuPy (cuBLAS), in float32 and in TF32 (each in a subprocess with
               CUPY_TF32=0 or 1): the TFLOP/s every other number is read against
    workloads  each training step of models.md: minigan eager, minigan graphed (the DCGAN steps, replayed
               by minigan.cuda_graph.GraphedGANStep) and torch; median ms, the ratios to torch, and
               TFLOP/s of the conv GEMMs of one step (counted by compare_torch.conv_flops) as a share
               of the float32 ceiling
    scaling    dcgan32 at batch 64 to 1024: eager, graphed, torch
    layers     forward, backward-data and backward-weight of each conv layer, per GPU backend: cupy
               (im2col and cuBLAS), cuda (minigan's implicit GEMM), cuda+tf32, torch and torch+tf32

Both libraries compute in float32: TF32 is off for PyTorch (cuDNN and matmul) and for CuPy's cuBLAS
(CUPY_TF32=0) except where a row says tf32; torch.backends.cudnn.benchmark is on. The same weights and
data go to both (compare_torch.build). After warm-up the contenders take turns, each call bracketed
by device synchronisations (cupy.cuda.Device().synchronize(), torch.cuda.synchronize()), so a time is
the wall time of a whole step, Python included. Without a GPU the script says why in one line and
exits with status 2.
"""
import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(BENCH, '..'))
sys.path.insert(0, BENCH)

import compare_torch  # noqa: E402  (bench/ is on the path now)

PARTS = ('ceiling', 'workloads', 'scaling', 'layers')
SCALING = tuple(f'dcgan32_b{b}' for b in (64, 128, 256, 512, 1024))
LAYER_BACKENDS = ('cupy', 'cuda', 'cuda+tf32', 'torch', 'torch+tf32')


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(2)


def gpu_libraries():
    """(cupy, torch), both seeing a GPU; else one line saying what is missing, and exit status 2."""
    from minigan import backend
    try:
        cp = backend.cupy_or_raise()
    except RuntimeError as e:
        fail(f'no GPU: {e}')
    try:
        import torch
    except ImportError:
        fail('no GPU for PyTorch: torch is not installed (install a CUDA build of torch)')
    if not torch.cuda.is_available():
        fail(f'no GPU for PyTorch: torch {torch.__version__} sees no CUDA device (is it a CPU-only build?)')
    torch.backends.cudnn.benchmark = True
    set_torch_tf32(torch, False)
    return cp, torch


def set_torch_tf32(torch, on):
    torch.backends.cudnn.allow_tf32 = on
    torch.backends.cuda.matmul.allow_tf32 = on


def machine(cp, torch):
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    name = props['name'].decode() if isinstance(props['name'], bytes) else str(props['name'])
    return {'gpu': name, 'compute_capability': cp.cuda.Device().compute_capability,
            'cuda_runtime': cp.cuda.runtime.runtimeGetVersion(), 'driver': cp.cuda.runtime.driverGetVersion(),
            'cupy': cp.__version__, 'torch': torch.__version__, 'cudnn': torch.backends.cudnn.version(),
            'numpy': np.__version__, 'date': time.strftime('%Y-%m-%d %H:%M')}


# ---- timing ---------------------------------------------------------------------------------------

def timed(fn, sync, calls=1):
    """Seconds per call of fn, `calls` calls between two synchronisations."""
    sync()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    sync()
    return (time.perf_counter() - t0) / calls


def alternate(fns, syncs, warmup, repeats, calls=1):
    """{name: median ms}: each fn warmed up, then all of them taking turns, `repeats` times."""
    for _ in range(warmup):
        for name, fn in fns.items():
            timed(fn, syncs[name])
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn, syncs[name], calls))
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def free_gpu_memory(cp, torch):
    """Give cached blocks back between workloads, so that a large batch finds the memory free (a graphed
    step refers to itself, so only the cycle collector frees it and its memory pool)."""
    gc.collect()
    cp.get_default_memory_pool().free_all_blocks()
    torch.cuda.empty_cache()


# ---- the ceiling: a large SGEMM -------------------------------------------------------------------

def gemm_child(n=8192, repeats=10):
    """Run in a subprocess (CUPY_TF32 set by the parent): print the TFLOP/s of an n x n x n SGEMM."""
    import cupy as cp
    a, b = (cp.random.standard_normal((n, n), dtype=cp.float32) for _ in range(2))
    c = cp.matmul(a, b)
    times = []
    for _ in range(repeats):
        start, end = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        cp.matmul(a, b, out=c)
        end.record()
        end.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, end) / 1e3)
    print(f'{2 * n ** 3 / statistics.median(times) / 1e12:.2f}')


def ceiling(cp):
    """{'fp32_tflops': ..., 'tf32_tflops': ... or None}, each SGEMM measured in its own process."""
    out = {}
    for mode in ('fp32', 'tf32'):
        if mode == 'tf32' and int(cp.cuda.Device().compute_capability) < 80:
            out['tf32_tflops'] = None                 # no tensor cores for TF32 before Ampere
            continue
        r = subprocess.run([sys.executable, os.path.abspath(__file__), '--gemm-child'], capture_output=True,
                           text=True, timeout=300, env=dict(os.environ, CUPY_TF32='1' if mode == 'tf32' else '0'))
        if r.returncode != 0:                     # the other parts go on without this number
            print(f'warning: the {mode} SGEMM failed: {r.stderr.strip()[-500:]}', file=sys.stderr)
        out[f'{mode}_tflops'] = float(r.stdout.split()[-1]) if r.returncode == 0 else None
    return out


# ---- training steps ---------------------------------------------------------------------------------

def graphed_step(workload, seed=0):
    """The step of a DCGAN workload as GraphedGANStep replays it, on build()'s weights and data
    (None for the others: WGAN-GP and the classifier are not graphed)."""
    if not workload.startswith('dcgan'):
        return None
    import minigan as mg
    from minigan import optim
    from minigan.cuda_graph import GraphedGANStep
    from minigan.gan.trainer import GANTrainer
    G, D, real, z = compare_torch.gan_parts(workload, seed)
    G, D = G.to('cuda'), D.to('cuda')
    opt_g, opt_d = (optim.Adam(m.parameters(), 2e-4, betas=(0.5, 0.999)) for m in (G, D))
    graphed = GraphedGANStep(GANTrainer('dcgan', G, D, opt_g, opt_d, nz=100), real.shape[0])
    real_t, z_t = mg.tensor(real, device='cuda'), mg.tensor(z[0], device='cuda')
    return lambda: graphed.replay(real_t, z_t)


def measure_workload(workload, cp, torch, args, fp32_ceiling):
    """One row: median ms of minigan eager, minigan graphed (DCGAN only) and torch, ratios, TFLOP/s."""
    fns = {'minigan': compare_torch.build(workload, 'minigan', device='cuda'), 'graphed': graphed_step(workload),
           'torch': compare_torch.build(workload, 'torch', device='cuda')}
    if fns['graphed'] is None:
        del fns['graphed']
    syncs = {name: (torch.cuda.synchronize if name == 'torch' else cp.cuda.Device().synchronize) for name in fns}
    flops = compare_torch.conv_flops(fns['minigan'])
    ms = alternate(fns, syncs, args.warmup, args.repeats)
    row = {'workload': workload, 'device': 'cuda', 'gflop': flops / 1e9}
    for name in ('minigan', 'graphed', 'torch'):
        row[f'{name}_ms'] = ms.get(name)
        row[f'{name}_tflops'] = flops / ms[name] / 1e9 if name in ms else None
        if name in ms and fp32_ceiling:
            row[f'{name}_pct_of_ceiling'] = 100 * row[f'{name}_tflops'] / fp32_ceiling
    row['ratio'] = ms['minigan'] / ms['torch']
    row['graphed_ratio'] = ms['graphed'] / ms['torch'] if 'graphed' in ms else None
    del fns
    free_gpu_memory(cp, torch)
    return row


def _cell(v, fmt):
    return '-' if v is None else format(v, fmt)


def _ratio(a, b):
    return a / b if a is not None and b is not None else None


def workload_table(rows, fp32_ceiling):
    lines = ['| workload | minigan ms | graphed ms | torch ms | minigan / torch | graphed / torch | '
             'minigan TFLOP/s | graphed TFLOP/s | torch TFLOP/s | % of the fp32 ceiling (minigan / graphed / torch) |',
             '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |']
    for r in rows:
        pct = ' / '.join(_cell(100 * t / fp32_ceiling if t is not None and fp32_ceiling else None, '.0f')
                         for t in (r['minigan_tflops'], r['graphed_tflops'], r['torch_tflops']))
        lines.append(f'| {r["workload"]} | {r["minigan_ms"]:.2f} | {_cell(r["graphed_ms"], ".2f")} | '
                     f'{r["torch_ms"]:.2f} | {r["ratio"]:.2f} | {_cell(r["graphed_ratio"], ".2f")} | '
                     f'{r["minigan_tflops"]:.1f} | {_cell(r["graphed_tflops"], ".1f")} | {r["torch_tflops"]:.1f} | '
                     f'{pct} |')
    return '\n'.join(lines)


# ---- conv layers -----------------------------------------------------------------------------------

# the layer's primitive -> the primitive of the conv that computes it (a ConvTranspose2d layer runs
# its adjoint conv: see bench/bench_conv_layers.py)
CONV_PRIMITIVE = {('conv', 'forward'): 'forward', ('conv', 'backward_data'): 'backward_data',
                  ('conv', 'backward_weight'): 'backward_weight', ('convT', 'forward'): 'backward_data',
                  ('convT', 'backward_data'): 'forward', ('convT', 'backward_weight'): 'backward_weight'}


def minigan_layer_call(backend, primitive, arrays, xs, ws, s, p):
    """A closure running one conv primitive on CuPy arrays with minigan backend `backend`."""
    from minigan import cuda_kernels
    from minigan.functional import im2col
    x, w, y = arrays['x'], arrays['w'], arrays['y']
    if backend == 'cupy':
        kernels, options = im2col, {}
    else:
        kernels, options = cuda_kernels, {'tf32': backend == 'cuda+tf32'}
    if primitive == 'forward':
        return lambda: kernels.conv2d_forward(x, w, s, p, **options)
    if primitive == 'backward_data':
        return lambda: kernels.conv2d_backward_data(y, w, xs, s, p, **options)
    return lambda: kernels.conv2d_backward_weight(x, y, ws, s, p, **options)


def torch_layer_call(torch, kind, primitive, layer_in, layer_w, s, p):
    """A closure running the layer's own primitive (not its adjoint) in torch on the GPU."""
    x, w = torch.from_numpy(layer_in).cuda(), torch.from_numpy(layer_w).cuda()
    transposed = kind == 'convT'
    fn = torch.nn.functional.conv_transpose2d if transposed else torch.nn.functional.conv2d
    if primitive == 'forward':
        return lambda: fn(x, w, None, s, p)
    gy = torch.randn_like(fn(x, w, None, s, p))
    mask = [primitive == 'backward_data', primitive == 'backward_weight', False]
    return lambda: torch.ops.aten.convolution_backward(gy, x, w, None, [s, s], [p, p], [1, 1], transposed,
                                                       [0, 0], 1, mask)


def measure_layer(layer, primitive, cp, torch, args):
    """One row: ms and TFLOP/s of one layer's primitive per GPU backend, taking turns."""
    from bench_conv_layers import _conv_shapes
    name, kind, x_shape, w_shape, s, p = layer
    xs, ws, ys = _conv_shapes(kind, x_shape, w_shape, s, p)
    rng = np.random.default_rng(0)
    host = {'x': rng.standard_normal(xs).astype(np.float32), 'w': (0.02 * rng.standard_normal(ws)).astype(np.float32),
            'y': rng.standard_normal(ys).astype(np.float32)}
    arrays = {k: cp.asarray(v) for k, v in host.items()}
    fns, syncs = {}, {}
    for backend in layer_backends(cp):
        if backend.startswith('torch'):
            layer_in = host['x'] if kind == 'conv' else host['y']
            call = torch_layer_call(torch, kind, primitive, layer_in, host['w'], s, p)
            fns[backend] = _with_tf32(torch, backend == 'torch+tf32', call)
            syncs[backend] = torch.cuda.synchronize
        else:
            fns[backend] = minigan_layer_call(backend, CONV_PRIMITIVE[(kind, primitive)], arrays, xs, ws, s, p)
            syncs[backend] = cp.cuda.Device().synchronize
    ms = alternate(fns, syncs, args.warmup, args.layer_repeats, calls=args.layer_calls)
    flops = 2 * int(np.prod(ys)) * int(np.prod(ws[1:]))
    row = {'layer': name, 'primitive': primitive, 'gflop': flops / 1e9}
    for backend in LAYER_BACKENDS:
        row[f'{backend}_ms'] = ms.get(backend)
        row[f'{backend}_tflops'] = flops / ms[backend] / 1e9 if backend in ms else None
    return row


def layer_backends(cp):
    """The LAYER_BACKENDS that run here: tf32 needs compute capability 8.0, cuda minigan's kernels."""
    from minigan import dispatch
    tf32 = int(cp.cuda.Device().compute_capability) >= 80
    cuda = 'cuda' in dispatch.available_gpu_backends()
    return [b for b in LAYER_BACKENDS if (tf32 or not b.endswith('tf32')) and (cuda or not b.startswith('cuda'))]


def _with_tf32(torch, on, call):
    def run():
        set_torch_tf32(torch, on)
        return call()
    return run


def layer_table(rows):
    head = ' | '.join(f'{b} ms' for b in LAYER_BACKENDS)
    lines = [f'| layer | primitive | GFLOP | {head} | cuda / torch | cuda+tf32 / torch+tf32 | cuda TFLOP/s |',
             '| --- | --- | --- |' + ' --- |' * (len(LAYER_BACKENDS) + 3)]
    for r in rows:
        times = ' | '.join(_cell(r[f'{b}_ms'], '.3f') for b in LAYER_BACKENDS)
        fp32, tf32 = _ratio(r['cuda_ms'], r['torch_ms']), _ratio(r['cuda+tf32_ms'], r['torch+tf32_ms'])
        lines.append(f'| {r["layer"]} | {r["primitive"]} | {r["gflop"]:.3f} | {times} | {_cell(fp32, ".2f")} | '
                     f'{_cell(tf32, ".2f")} | {_cell(r["cuda_tflops"], ".1f")} |')
    return '\n'.join(lines)


# ---- the run -----------------------------------------------------------------------------------------

def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--only', action='append', choices=PARTS, help='run only these parts (default: all)')
    ap.add_argument('-w', '--workload', action='append', choices=compare_torch.WORKLOADS,
                    help='workloads part: these only (default: all)')
    ap.add_argument('--layers', action='append', choices=('dcgan32', 'dcgan64', 'classifier32'),
                    help='layers part: the layers of these models only (default: all)')
    ap.add_argument('--backend', default='auto', choices=('auto', 'cupy', 'cuda'),
                    help="minigan's GPU backend for the training steps (default: auto, the cuda kernels where "
                         'they load)')
    ap.add_argument('--repeats', type=int, default=20, help='timed steps per contender (default: 20)')
    ap.add_argument('--warmup', type=int, default=3, help='untimed steps or calls first (default: 3)')
    ap.add_argument('--layer-repeats', type=int, default=7, help='timed rounds per layer primitive (default: 7)')
    ap.add_argument('--layer-calls', type=int, default=10, help='calls per round, between two synchronisations')
    ap.add_argument('--json', help='write every result to this JSON file (for bench/laptop_vs_gpu.py)')
    ap.add_argument('--gemm-child', action='store_true', help=argparse.SUPPRESS)
    return ap.parse_args()


def main():
    args = parse_args()
    if args.gemm_child:
        return gemm_child()
    os.environ['CUPY_TF32'] = '0'           # float32 GEMMs in CuPy's cuBLAS (read at its first product)
    cp, torch = gpu_libraries()
    import minigan as mg
    from minigan import dispatch
    try:
        mg.set_conv_backend(args.backend)
    except RuntimeError as e:
        fail(f'--backend {args.backend}: {e}')
    parts = args.only or list(PARTS)
    results = load_json(args.json)
    results['machine'] = dict(machine(cp, torch), minigan_backend=args.backend,
                              minigan_gpu_backends=dispatch.available_gpu_backends())
    print(f'# {results["machine"]}', flush=True)
    save_json(args.json, results)
    if 'ceiling' in parts:
        results['ceiling'] = ceiling(cp)
        save_json(args.json, results)
        print(f'\nSGEMM 8192^3 through CuPy: {results["ceiling"]["fp32_tflops"]} TFLOP/s float32, '
              f'{results["ceiling"]["tf32_tflops"]} TFLOP/s TF32', flush=True)
    fp32_ceiling = results.get('ceiling', {}).get('fp32_tflops')
    measured = {}

    def rows_of(part, names):
        """The rows of `names`, each measured once, the JSON rewritten after each."""
        for w in names:
            if w not in measured:
                measured[w] = measure_workload(w, cp, torch, args, fp32_ceiling)
            results[part] = [measured[n] for n in names if n in measured]
            save_json(args.json, results)
        return results[part]

    if 'workloads' in parts:
        rows = rows_of('workloads', args.workload or compare_torch.WORKLOADS)
        print('\n## Training steps (median ms)\n\n' + workload_table(rows, fp32_ceiling), flush=True)
    if 'scaling' in parts:
        rows = rows_of('scaling', SCALING)
        print('\n## DCGAN-32 batch scaling\n\n' + workload_table(rows, fp32_ceiling), flush=True)
    if 'layers' in parts:
        from bench_conv_layers import LAYERS, PRIMITIVES
        layers = [layer for layer in LAYERS if not args.layers or layer[0].split('/')[0] in args.layers]
        results['layers'] = []
        for layer in layers:
            for prim in PRIMITIVES:
                results['layers'].append(measure_layer(layer, prim, cp, torch, args))
                save_json(args.json, results)
        print('\n## Conv layers at batch 64 (median ms per call)\n\n' + layer_table(results['layers']), flush=True)


def load_json(path):
    """The results already in `path` (an earlier part of the same run), else a new dict."""
    if path and os.path.isfile(path):
        try:
            with open(path) as f:
                return json.load(f)
        except ValueError:
            print(f'warning: {path} is not JSON; starting it afresh', file=sys.stderr)
    return {}


def save_json(path, results):
    """Write `results` to `path` whole or not at all (a run stopped by its time limit keeps the last rows)."""
    if path:
        with open(path + '.part', 'w') as f:
            json.dump(results, f, indent=1)
        os.replace(path + '.part', path)

if __name__ == '__main__':
    main()

"""One training step of each model on the GPU, checked against the same step on the CPU.

    python bench/gpu_step_check.py [--json FILE] [--batch 16] [--backend cuda]

For each of dcgan, ralsgan, wgan, wgan-gp (GANTrainer, DCGAN-32 models; wgan-gp's critic without
batch norm) and the classifier (ClassifierTrainer, Classifier32): the models are made twice from one
seed, one copy moved to the GPU, and both take one training step with train.py's optimiser settings
on the same batches, with minigan's generator reseeded before each (so the noise, the gradient
penalty's mixing weights and the dropout masks are the same numbers). The CPU runs the numpy
backend, the GPU `--backend` (default cuda: minigan's kernels; where they do not load the step runs
on cupy and the model fails with the load error). Checked, float32 against float32, each as
||got - want|| <= rtol ||want|| + floor sqrt(size):
    the step's metrics (losses, D outputs)     rtol 1e-3, floor 1e-5
    each parameter's gradient                  rtol 1e-2, floor 1e-4 x the network's RMS gradient: a
        gradient that is zero in exact arithmetic (RaLSGAN's last bias cancels out of its loss) is
        rounding noise on both sides, and one summed from terms that cancel (WGAN-GP's first bias)
        was seen 2e-3 apart between two CPU backends; a wrong kernel is off by far more
    each buffer (running mean and variance)    rtol 1e-4, floor 1e-7
    each parameter's change                    rtol 1e-2, floor 1e-7, over the elements whose gradient
        is above 1e-3 x the RMS gradient: the first Adam or RMSprop step moves a weight by about
        +-lr whatever its gradient's size, so one whose gradient is rounding noise may step either way
The GPU side runs with MINIGAN_CUDA_DEBUG=1 unless it is set otherwise (outputs poisoned with NaN).
A JSON file is written after each model. Exit status: 0 when every model agrees, 1 otherwise, 2
without a GPU. --second-device cpu runs the second side on the CPU too (with --backend a CPU
backend): the comparison itself, checked where there is no GPU (tests/test_gpu_scripts.py).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

MODELS = ('dcgan', 'ralsgan', 'wgan', 'wgan-gp', 'classifier')
TOL = {'metric': (1e-3, 1e-5), 'buffer': (1e-4, 1e-7), 'change': (1e-2, 1e-7)}
GRAD_RTOL, GRAD_FLOOR, SURE_GRAD = 1e-2, 1e-4, 1e-3       # the last two: times the network's RMS gradient


class Batches:
    """A trainer's `source`: the given (images, labels) batches, each handed out once."""

    def __init__(self, batches, batch_size):
        self.batches, self.batch_size = list(batches), batch_size

    def remaining(self):
        return len(self.batches)

    def next(self):
        return self.batches.pop(0)

    fresh = next


def build(model, device, seed, batch):
    """(trainer, its models) made from `seed`, on `device`, with train.py's optimiser settings."""
    import minigan as mg
    from minigan import models, optim
    from minigan.gan.trainer import ClassifierTrainer, GANTrainer
    mg.manual_seed(seed)
    if model == 'classifier':
        net = models.Classifier32().to(device)
        return ClassifierTrainer(net, optim.Adam(net.parameters(), lr=1e-3)), {'net': net}
    G = models.Generator32().to(device)
    D = models.Discriminator32(batch_norm=model != 'wgan-gp').to(device)
    if model == 'wgan':
        opt_g, opt_d = (optim.RMSprop(m.parameters(), lr=5e-5, alpha=0.99, eps=1e-8) for m in (G, D))
    else:
        betas = (0.5, 0.9) if model == 'wgan-gp' else (0.5, 0.999)
        lr = 1e-4 if model == 'wgan-gp' else 2e-4
        opt_g, opt_d = (optim.Adam(m.parameters(), lr=lr, betas=betas) for m in (G, D))
    return GANTrainer(model, G, D, opt_g, opt_d, nz=100, n_critic=2), {'G': G, 'D': D}


def batches(model, batch, seed, device):
    """Three (images, labels) batches on `device` (wgan and wgan-gp take two critic steps, ralsgan a
    fresh batch for its G step)."""
    import minigan as mg
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(3 if model != 'classifier' else 1):
        images = rng.uniform(-1, 1, (batch, 3, 32, 32)).astype(np.float32)
        labels = rng.integers(0, 10, batch).astype(np.int64)
        out.append((mg.tensor(images, device=device), mg.tensor(labels, device=device)))
    return Batches(out[:2] if model.startswith('wgan') else out, batch)


def one_step(model, device, backend, seed, batch):
    """(metrics, {name: host array} of every parameter, gradient and buffer before and after) of one step."""
    import minigan as mg
    trainer, modules = build(model, device, seed, batch)
    before = {f'{m}.{k}': v.numpy() for m, mod in modules.items() for k, v in _named(mod, 'parameters')}
    source = batches(model, batch, seed + 1, device)
    with mg.conv_backend(backend):
        mg.manual_seed(seed + 2)
        metrics = trainer.step(source, 0)
    state = {}
    for m, mod in modules.items():
        for k, p in _named(mod, 'parameters'):
            state[f'param {m}.{k}'] = p.numpy()
            state[f'before {m}.{k}'] = before[f'{m}.{k}']
            if p.grad is not None:
                state[f'grad {m}.{k}'] = p.grad.numpy()
        for k, b in _named(mod, 'buffers'):
            if b.dtype.kind == 'f':
                state[f'buffer {m}.{k}'] = b.numpy()
    return {k: float(v) for k, v in metrics.items() if isinstance(v, float) and k != 'acc'}, state


def _named(module, what):
    return [(k, v) for k, v in getattr(module, f'named_{what}')() if v is not None]


def _off(got, want, rtol, floor):
    """||got - want|| / (rtol ||want|| + floor sqrt(size)): <= 1 passes; NaN or Inf never does."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if not np.isfinite(got).all():
        return float('inf')
    if want.size == 0:
        return 0.0
    return float(np.linalg.norm(got - want) / (rtol * np.linalg.norm(want) + floor * np.sqrt(want.size)))


def _rms_gradients(ref):
    """{network: RMS of all its gradients on the CPU} ('G', 'D' or 'net')."""
    grads = {}
    for key, g in ref.items():
        if key.startswith('grad '):
            grads.setdefault(key[5:].split('.')[0], []).append(g.astype(np.float64).ravel())
    return {net: float(np.sqrt(np.mean(np.concatenate(gs) ** 2))) for net, gs in grads.items()}


def compare(ref_metrics, ref, metrics, state):
    """{check: how far off (<= 1 passes)} for every metric, gradient, buffer and parameter change."""
    off = {f'metric {k}': _off(metrics.get(k, float('nan')), v, *TOL['metric']) for k, v in ref_metrics.items()}
    rms = _rms_gradients(ref)
    for key, want in ref.items():
        kind, name = key.split(' ', 1)
        scale = rms.get(name.split('.')[0], 0.0)
        if kind == 'before':
            continue
        if key not in state:
            off[key] = float('inf')
        elif kind == 'grad':
            off[key] = _off(state[key], want, GRAD_RTOL, GRAD_FLOOR * scale)
        elif kind == 'buffer':
            off[key] = _off(state[key], want, *TOL['buffer'])
        else:
            start, grad = ref[f'before {name}'], ref.get(f'grad {name}')
            sure = np.abs(grad) > SURE_GRAD * scale if grad is not None else np.ones(want.shape, bool)
            off[f'change {name}'] = _off((state[key] - start)[sure], (want - start)[sure], *TOL['change'])
    return off


def machine_info(device):
    import minigan as mg
    info = {'python': sys.version.split()[0], 'numpy': np.__version__, 'device': device}
    if device == 'cuda':
        cp = mg.backend.cupy_or_raise()
        props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        info.update(gpu=props['name'].decode() if isinstance(props['name'], bytes) else str(props['name']),
                    cupy=cp.__version__, cuda_runtime=cp.cuda.runtime.runtimeGetVersion())
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--json', help='write the results here (rewritten after each model)')
    ap.add_argument('--batch', type=int, default=16, help='batch size (default 16)')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--backend', default='cuda', help="the second side's backend (default cuda)")
    ap.add_argument('--second-device', default='cuda', choices=('cuda', 'cpu'), help='default cuda')
    ap.add_argument('-m', '--model', action='append', choices=MODELS, help='default: all')
    args = ap.parse_args()
    os.environ.setdefault('MINIGAN_CUDA_DEBUG', '1')
    import minigan as mg
    from minigan import cuda_kernels, dispatch
    results = {'machine': None, 'backend': args.backend, 'batch': args.batch, 'models': {}, 'ok': False}

    def save():                         # whole or not at all: a time limit may stop the run
        if args.json:
            with open(args.json + '.part', 'w') as f:
                json.dump(results, f, indent=1)
            os.replace(args.json + '.part', args.json)

    if args.second_device == 'cuda':
        try:
            mg.backend.cupy_or_raise()
        except RuntimeError as e:
            results['error'] = f'no GPU: {e}'
            save()
            print(results['error'], file=sys.stderr)
            return 2
    results['machine'] = machine_info(args.second_device)
    backend, load_error = args.backend, None
    if args.second_device == 'cuda' and backend == 'cuda' and 'cuda' not in dispatch.available_gpu_backends():
        load_error = f"minigan's CUDA kernels do not load: {cuda_kernels.load_error()}"
        print(f'{load_error}; the steps run on cupy, and every model fails', file=sys.stderr)
        backend = 'cupy'
    results['load_error'] = load_error
    save()
    print(f'| model | seconds (cpu / {args.second_device}) | worst check | how far off (<= 1 passes) | ok |')
    print('| --- | --- | --- | --- | --- |', flush=True)
    all_ok = load_error is None
    for model in args.model or MODELS:
        row = {}
        try:
            t0 = time.perf_counter()
            ref_metrics, ref = one_step(model, 'cpu', 'numpy', args.seed, args.batch)
            t1 = time.perf_counter()
            metrics, state = one_step(model, args.second_device, backend, args.seed, args.batch)
            t2 = time.perf_counter()
            off = compare(ref_metrics, ref, metrics, state)
            worst = max(off, key=off.get)
            row = {'ok': off[worst] <= 1 and load_error is None, 'worst': worst, 'worst_off': off[worst],
                   'seconds': [t1 - t0, t2 - t1], 'metrics': {k: [ref_metrics[k], metrics.get(k)] for k in ref_metrics},
                   'failed': {k: v for k, v in off.items() if v > 1}}
            print(f'| {model} | {t1 - t0:.1f} / {t2 - t1:.1f} | {worst} | {off[worst]:.3g} | {row["ok"]} |', flush=True)
        except Exception as e:          # one model's failure is reported, and the others still run
            row = {'ok': False, 'error': f'{type(e).__name__}: {e}'}
            print(f'| {model} | - | {row["error"]} | - | False |', flush=True)
        results['models'][model] = row
        all_ok = all_ok and row['ok']
        save()
    results['ok'] = all_ok
    save()
    return 0 if all_ok else 1


if __name__ == '__main__':
    sys.exit(main())

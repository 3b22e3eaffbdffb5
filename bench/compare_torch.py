"""minigan against PyTorch on the workloads of shared/spec/models.md, same process, same threads.

    python bench/compare_torch.py                          # every workload, 2 threads, backend auto
    python bench/compare_torch.py --backend numpy          # the NumPy reference path
    python bench/compare_torch.py -w dcgan32_b64 --repeats 20 --memory

Both libraries run the same architecture with the same weights (the torch model is
built from the minigan one and its state_dict copied over), the same optimizer and
the same data. Steps alternate (minigan, torch, minigan, ...) after warm-up, so slow
phases of a shared machine hit both; the table shows median milliseconds per step,
the ratio minigan / torch, and GFLOP/s counted from the conv GEMMs of one step (the
same count for both). --memory runs each library alone in a subprocess and reports
the peak resident memory a step adds above the model's (ru_maxrss - rss before).
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

WORKLOADS = ('dcgan32_b64', 'dcgan32_b128', 'wgangp32_b64', 'dcgan64_b64', 'classifier32_b128')


# ---- minigan -> torch model translation ---------------------------------------------------------

def torch_model(model):
    """The torch.nn.Sequential with the same layers and weights as minigan Sequential `model`."""
    import torch
    tnn = torch.nn
    layers = []
    for m in model.children():
        kind = type(m).__name__
        if kind == 'Conv2d':
            t = tnn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, bias=m.bias is not None)
        elif kind == 'ConvTranspose2d':
            t = tnn.ConvTranspose2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                                    bias=m.bias is not None)
        elif kind == 'BatchNorm2d':
            t = tnn.BatchNorm2d(m.num_features, eps=m.eps, momentum=m.momentum)
        elif kind == 'Linear':
            t = tnn.Linear(m.weight.shape[1], m.weight.shape[0], bias=m.bias is not None)
        elif kind == 'LeakyReLU':
            t = tnn.LeakyReLU(m.negative_slope, inplace=True)
        elif kind == 'ReLU':
            t = tnn.ReLU(inplace=True)
        elif kind == 'Tanh':
            t = tnn.Tanh()
        elif kind == 'MaxPool2d':
            t = tnn.MaxPool2d(m.kernel_size, m.stride)
        elif kind == 'Flatten':
            t = tnn.Flatten()
        elif kind == 'Dropout':
            t = tnn.Dropout(m.p)
        else:
            raise TypeError(f'no torch translation for {kind}')
        layers.append(t)
    tm = tnn.Sequential(*layers)
    tm.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()})
    return tm


# ---- the workloads, once per library --------------------------------------------------------------

def build(workload, lib, seed=0, device='cpu'):
    """(step function, description) for one library; both libraries see the same weights and data.

    device: 'cpu', or 'cuda' (bench/gpu_compare_torch.py): models and data are moved there."""
    import minigan as mg
    from minigan import models
    mg.manual_seed(seed)
    rng = np.random.default_rng(seed)
    name, batch = workload.rsplit('_b', 1)
    b = int(batch)
    if name.startswith('classifier'):
        net = models.Classifier32()
        x = rng.uniform(-1, 1, (b, 3, 32, 32)).astype(np.float32)
        y = rng.integers(0, 10, b).astype(np.int64)
        return _classifier_step(lib, net, x, y, device)
    G, D, real, z = _gan_parts(name, b, rng)
    if name.startswith('wgangp'):
        alpha = rng.uniform(0, 1, (b, 1, 1, 1)).astype(np.float32)
        return _wgangp_step(lib, G, D, real, z, alpha, device)
    return _dcgan_step(lib, G, D, real, z, device)


def _gan_parts(name, b, rng):
    """(G, D, real images, two noise batches) of a GAN workload: minigan models on the CPU, NumPy data."""
    from minigan import models
    size = 64 if name.startswith('dcgan64') else 32
    G = models.Generator64() if size == 64 else models.Generator32()
    if name.startswith('wgangp'):
        D = models.Critic32()
    else:
        D = models.Discriminator64() if size == 64 else models.Discriminator32()
    real = rng.uniform(-1, 1, (b, 3, size, size)).astype(np.float32)
    z = rng.standard_normal((2, b, 100, 1, 1)).astype(np.float32)
    return G, D, real, z


def gan_parts(workload, seed=0):
    """What build() gives a GAN workload's step, with the same seed: (G, D, real, z) as _gan_parts."""
    import minigan as mg
    mg.manual_seed(seed)
    name, batch = workload.rsplit('_b', 1)
    return _gan_parts(name, int(batch), np.random.default_rng(seed))


def _on(device, *models):
    """minigan models moved to `device` (in place; a no-op on the CPU)."""
    return [m.to(device) for m in models]


def _torch_on(device, *models):
    """The torch translations of minigan models, on `device`."""
    return [torch_model(m).to(device) for m in models]


def _dcgan_step(lib, G, D, real, z, device='cpu'):
    if lib == 'minigan':
        import minigan as mg
        import minigan.nn.functional as F
        from minigan import optim
        G, D = _on(device, G, D)
        og = optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
        od = optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
        real_t, z_t = mg.tensor(real, device=device), mg.tensor(z[0], device=device)
        ones, zeros = mg.ones(real.shape[0], device=device), mg.zeros(real.shape[0], device=device)
        bce = F.binary_cross_entropy_with_logits
    else:
        import torch
        G, D = _torch_on(device, G, D)
        og = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
        od = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
        real_t, z_t = torch.from_numpy(real).to(device), torch.from_numpy(z[0]).to(device)
        ones, zeros = torch.ones(real.shape[0], device=device), torch.zeros(real.shape[0], device=device)
        bce = torch.nn.functional.binary_cross_entropy_with_logits

    def step():
        fake = G(z_t)
        od.zero_grad()
        d_loss = bce(D(real_t).reshape(-1), ones) + bce(D(fake.detach()).reshape(-1), zeros)
        d_loss.backward()
        od.step()
        og.zero_grad()
        g_loss = bce(D(fake).reshape(-1), ones)
        g_loss.backward()
        og.step()
    return step


def _wgangp_step(lib, G, D, real, z, alpha, device='cpu'):
    """One critic step (Wasserstein loss + lambda 10 gradient penalty) and one generator step."""
    if lib == 'minigan':
        import minigan as mg
        from minigan import optim
        G, D = _on(device, G, D)
        og = optim.Adam(G.parameters(), 1e-4, betas=(0.5, 0.9))
        od = optim.Adam(D.parameters(), 1e-4, betas=(0.5, 0.9))
        real_t, z1, z2, a = (mg.tensor(v, device=device) for v in (real, z[0], z[1], alpha))

        def grad_of(out, x):
            return mg.grad([out.sum()], [x], create_graph=True)[0]
    else:
        import torch
        G, D = _torch_on(device, G, D)
        og = torch.optim.Adam(G.parameters(), 1e-4, betas=(0.5, 0.9))
        od = torch.optim.Adam(D.parameters(), 1e-4, betas=(0.5, 0.9))
        real_t, z1, z2, a = (torch.from_numpy(v).to(device) for v in (real, z[0], z[1], alpha))

        def grad_of(out, x):
            return torch.autograd.grad([out.sum()], [x], create_graph=True)[0]
    b = real.shape[0]

    def step():
        fake = G(z1).detach()
        od.zero_grad()
        x_hat = (real_t + a * (fake - real_t)).detach().requires_grad_()
        g = grad_of(D(x_hat), x_hat)
        gp = 10 * ((((g.reshape(b, -1) ** 2).sum(1) + 1e-12).sqrt() - 1) ** 2).mean()
        d_loss = D(fake).mean() - D(real_t).mean() + gp
        d_loss.backward()
        od.step()
        og.zero_grad()
        g_loss = -D(G(z2)).mean()
        g_loss.backward()
        og.step()
    return step


def _classifier_step(lib, net, x, y, device='cpu'):
    if lib == 'minigan':
        import minigan as mg
        import minigan.nn.functional as F
        from minigan import optim
        net, = _on(device, net)
        opt = optim.SGD(net.parameters(), 0.01, momentum=0.9)
        xt, yt, ce = mg.tensor(x, device=device), mg.tensor(y, device=device), F.cross_entropy
    else:
        import torch
        net, = _torch_on(device, net)
        opt = torch.optim.SGD(net.parameters(), 0.01, momentum=0.9)
        xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        ce = torch.nn.functional.cross_entropy

    def step():
        opt.zero_grad()
        ce(net(xt), yt).backward()
        opt.step()
    return step


# ---- measuring ------------------------------------------------------------------------------------

def conv_flops(step):
    """FLOPs of the conv GEMMs in one step, counted at minigan.kernel_table's conv functions (2 M N K per primitive)."""
    from minigan import kernel_table
    total = [0]
    saved = {op: getattr(kernel_table, op) for op in kernel_table.CONV_OPS}

    def counting(op):
        def wrapped(*args, **kw):
            out = saved[op](*args, **kw)
            if op == 'conv2d_forward':
                x, w = args[:2]
                total[0] += 2 * out.size * int(np.prod(w.shape[1:]))
            elif op == 'conv2d_backward_data':
                gy, w = args[:2]
                total[0] += 2 * gy.size * int(np.prod(w.shape[1:]))
            else:
                gy, w_shape = args[1], args[2]
                total[0] += 2 * gy.size * int(np.prod(w_shape[1:]))
            return out
        return wrapped
    for op in kernel_table.CONV_OPS:
        setattr(kernel_table, op, counting(op))
    try:
        step()
    finally:
        for op, fn in saved.items():
            setattr(kernel_table, op, fn)
    return total[0]


def rss_mb():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def _reset_peak_rss():
    """Restart the kernel's peak-RSS counter (VmHWM) where Linux allows it; False otherwise."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def _peak_rss_mb():
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(workload, lib, threads, backend):
    """Run in a subprocess: print the peak resident MB of training steps above the process's
    resident set before its first step (libraries, model and data loaded).

    Two warm-up steps run first (auto's one-time measurements), then the peak counter is
    reset where Linux allows it, so the number is the peak of three steps in steady state."""
    setup_threads(threads, lib, backend)
    step = build(workload, lib)
    before = rss_mb()
    for _ in range(2):
        step()
    _reset_peak_rss()
    for _ in range(3):
        step()
    print(f'{_peak_rss_mb() - before:.1f}')


def peak_memory(workload, lib, threads, backend):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), '--memory-child', lib, '-w', workload,
                          '--threads', str(threads), '--backend', backend],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def setup_threads(threads, lib='both', backend='auto'):
    if lib in ('both', 'minigan'):
        import minigan as mg
        mg.set_num_threads(threads)
        mg.set_conv_backend(backend)
    if lib in ('both', 'torch'):
        import torch
        torch.set_num_threads(threads)


def machine():
    model = 'unknown CPU'
    try:
        with open('/proc/cpuinfo') as f:
            model = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return f'{model}, {os.cpu_count()} logical CPUs'


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('-w', '--workload', action='append', choices=WORKLOADS, help='default: all')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--backend', default='auto', choices=['auto', 'tune', 'numpy', 'numba', 'cpp'])
    ap.add_argument('--repeats', type=int, default=10, help='timed steps per library')
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--memory', action='store_true', help='also peak memory per step (subprocesses)')
    ap.add_argument('--cpu-time', action='store_true',
                    help='time with process CPU time instead of wall time: steadier on a shared machine, '
                         'and the same as wall time with --threads 1 on an idle one')
    ap.add_argument('--json', help='also append the rows to this JSON file (for bench/plot_results.py)')
    ap.add_argument('--memory-child', choices=['minigan', 'torch'], help=argparse.SUPPRESS)
    args = ap.parse_args()
    workloads = args.workload or list(WORKLOADS)
    if args.memory_child:
        return memory_child(workloads[0], args.memory_child, args.threads, args.backend)

    import torch
    setup_threads(args.threads, 'both', args.backend)
    print(f'# {machine()}; {args.threads} threads; minigan backend {args.backend}; torch {torch.__version__}; '
          f'numpy {np.__version__}; {time.strftime("%Y-%m-%d %H:%M")}'
          + ('; CPU time' if args.cpu_time else '; wall time'))
    head = f'{"workload":18} {"minigan ms":>11} {"torch ms":>9} {"ratio":>6} {"mg GFLOP/s":>10} {"torch GFLOP/s":>13}'
    if args.memory:
        head += f' {"mg MB":>7} {"torch MB":>8} {"mem ratio":>9}'
    print(head)
    for w in workloads:
        steps = {lib: build(w, lib) for lib in ('minigan', 'torch')}
        for _ in range(args.warmup):
            for lib in steps:
                steps[lib]()
        flops = conv_flops(steps['minigan'])
        times = {lib: [] for lib in steps}
        clock = time.process_time if args.cpu_time else time.perf_counter
        for _ in range(args.repeats):
            for lib, step in steps.items():
                t0 = clock()
                step()
                times[lib].append(clock() - t0)
        mg_ms, th_ms = (1e3 * statistics.median(times[lib]) for lib in ('minigan', 'torch'))
        line = (f'{w:18} {mg_ms:11.1f} {th_ms:9.1f} {mg_ms / th_ms:6.2f} {flops / mg_ms / 1e6:10.1f} '
                f'{flops / th_ms / 1e6:13.1f}')
        row = dict(workload=w, backend=args.backend, threads=args.threads, cpu_time=args.cpu_time,
                   minigan_ms=mg_ms, torch_ms=th_ms, gflop=flops / 1e9, date=time.strftime('%Y-%m-%d %H:%M'))
        if args.memory:
            m1 = peak_memory(w, 'minigan', args.threads, args.backend)
            m2 = peak_memory(w, 'torch', args.threads, args.backend)
            line += f' {m1:7.0f} {m2:8.0f} {m1 / max(m2, 1e-9):9.2f}'
            row.update(minigan_mb=m1, torch_mb=m2)
        print(line, flush=True)
        if args.json:
            rows = json.load(open(args.json)) if os.path.exists(args.json) else []
            with open(args.json, 'w') as f:
                json.dump(rows + [row], f, indent=1)
        del steps


if __name__ == '__main__':
    main()

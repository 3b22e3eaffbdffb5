"""The laptop-versus-GPU table: bench/compare_torch.py's CPU results beside bench/gpu_compare_torch.py's.

    python bench/compare_torch.py --json cpu.json                  # on the laptop (any CPU)
    python bench/gpu_compare_torch.py --json gpu.json              # on the GPU machine
    python bench/laptop_vs_gpu.py cpu.json gpu.json --md laptop_vs_gpu.md --png laptop_vs_gpu.png

One row per workload measured on both: each library's median step time on the CPU and on the GPU and
the speed-up (CPU ms / GPU ms), with minigan's graphed GPU step where there is one. The CPU file is
a list of rows, possibly of several backends and runs: those of --cpu-backend (default auto) are
taken, the last row of a workload winning. The PNG shows the speed-ups as bars on a log scale,
drawn with Pillow (as bench/plot_results.py draws).
"""
import argparse
import json
import math
import sys

from PIL import Image, ImageDraw

SERIES = (('minigan', 'minigan eager', (52, 120, 198)), ('graphed', 'minigan graphed', (90, 170, 90)),
          ('torch', 'PyTorch', (238, 76, 44)))


def load_json(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        sys.exit(f'laptop_vs_gpu: cannot read the {what} results {path}: {e.strerror}')
    except json.JSONDecodeError as e:
        sys.exit(f'laptop_vs_gpu: {path} is not JSON ({e}); write it with --json')


def cpu_rows(rows, backend):
    """{workload: row} of compare_torch.py's rows for `backend`, the last one winning."""
    if not isinstance(rows, list):
        sys.exit('laptop_vs_gpu: the CPU file must be the list that bench/compare_torch.py --json writes')
    picked = {r['workload']: r for r in rows if r.get('backend') == backend}
    if not picked:
        found = sorted({str(r.get('backend')) for r in rows})
        sys.exit(f'laptop_vs_gpu: the CPU file has no rows of backend {backend!r} (it has {", ".join(found)}): '
                 'pass --cpu-backend')
    return picked


def gpu_rows(results):
    """{workload: row} of gpu_compare_torch.py's training steps (its workloads and batch scaling)."""
    if not isinstance(results, dict) or not ({'workloads', 'scaling'} & results.keys()):
        sys.exit('laptop_vs_gpu: the GPU file has no training steps: write it with bench/gpu_compare_torch.py '
                 '--json (with its workloads or scaling part)')
    return {r['workload']: r for part in ('scaling', 'workloads') for r in results.get(part, [])}


def join(cpu, gpu):
    """One row per workload in both files: CPU and GPU ms per library and the speed-ups."""
    rows = []
    for w in [w for w in gpu if w in cpu]:
        row = {'workload': w, 'threads': cpu[w].get('threads')}
        for lib in ('minigan', 'graphed', 'torch'):
            cpu_ms = cpu[w]['minigan_ms' if lib == 'graphed' else f'{lib}_ms']   # a graph replaces eager minigan
            gpu_ms = gpu[w].get(f'{lib}_ms')
            row[f'cpu_{lib}_ms'], row[f'gpu_{lib}_ms'] = cpu_ms, gpu_ms
            row[f'{lib}_speedup'] = cpu_ms / gpu_ms if gpu_ms else None
        rows.append(row)
    if not rows:
        sys.exit(f'laptop_vs_gpu: no workload is in both files (CPU: {", ".join(cpu)}; GPU: {", ".join(gpu)})')
    return rows


def _cell(v, fmt):
    return '-' if v is None else format(v, fmt)


def markdown(rows, cpu_name, gpu_name):
    lines = [f'CPU: {cpu_name}. GPU: {gpu_name}. Median ms per training step; speed-up = CPU ms / GPU ms '
             '(the graphed step is set beside minigan\'s eager CPU step).', '',
             '| workload | CPU minigan ms | GPU minigan ms | speed-up | GPU graphed ms | speed-up | '
             'CPU torch ms | GPU torch ms | speed-up |',
             '| --- | --- | --- | --- | --- | --- | --- | --- | --- |']
    for r in rows:
        lines.append(f'| {r["workload"]} | {r["cpu_minigan_ms"]:.1f} | {r["gpu_minigan_ms"]:.2f} | '
                     f'{r["minigan_speedup"]:.0f}x | {_cell(r["gpu_graphed_ms"], ".2f")} | '
                     f'{_cell(r["graphed_speedup"], ".0f")}{"x" if r["graphed_speedup"] else ""} | '
                     f'{r["cpu_torch_ms"]:.1f} | {r["gpu_torch_ms"]:.2f} | {r["torch_speedup"]:.0f}x |')
    return '\n'.join(lines) + '\n'


def plot(rows, path, title):
    """Grouped bars of the speed-ups per workload, log scale (1x at the bottom), labelled with their value."""
    top_value = max(r[f'{lib}_speedup'] or 1 for r in rows for lib, _, _ in SERIES)
    decades = max(1, math.ceil(math.log10(top_value * 1.2)))
    group, left, top, bottom = 170, 60, 50, 70
    width = max(left + 30 + group * len(rows), 6 * len(title) + 2 * left, left + 150 * len(SERIES))
    height = 440
    img = Image.new('RGB', (width, height), 'white')
    d = ImageDraw.Draw(img)
    d.text((left, 12), title, fill='black')
    plot_h = height - top - bottom

    def y_of(v):
        return top + plot_h * (1 - math.log10(max(v, 1)) / decades)
    for k in range(decades + 1):
        d.line([(left, y_of(10 ** k)), (width - 20, y_of(10 ** k))], fill=(225, 225, 225))
        d.text((10, y_of(10 ** k) - 6), f'{10 ** k}x', fill='black')
    bar = (group - 30) // len(SERIES)
    for i, r in enumerate(rows):
        x0 = left + 10 + i * group
        for j, (lib, _, colour) in enumerate(SERIES):
            v = r[f'{lib}_speedup']
            if v is None:
                continue
            x = x0 + j * bar
            d.rectangle([x, y_of(v), x + bar - 3, y_of(1)], fill=colour)
            d.text((x, y_of(v) - 12), f'{v:.0f}', fill='black')
        d.text((x0, height - bottom + 8), r['workload'], fill='black')
    for j, (_, label, colour) in enumerate(SERIES):
        d.rectangle([left + 150 * j, height - 28, left + 150 * j + 12, height - 16], fill=colour)
        d.text((left + 150 * j + 18, height - 28), label, fill='black')
    img.save(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('cpu_json', help='rows written by bench/compare_torch.py --json')
    ap.add_argument('gpu_json', help='results written by bench/gpu_compare_torch.py --json')
    ap.add_argument('--cpu-backend', default='auto', help='the CPU rows to take (default: auto)')
    ap.add_argument('--cpu-name', default=None, help='what to call the CPU (default: its thread count)')
    ap.add_argument('--md', default='laptop_vs_gpu.md', help='the markdown table (default: laptop_vs_gpu.md)')
    ap.add_argument('--png', default='laptop_vs_gpu.png', help='the plot (default: laptop_vs_gpu.png)')
    args = ap.parse_args()
    cpu = cpu_rows(load_json(args.cpu_json, 'CPU'), args.cpu_backend)
    gpu_results = load_json(args.gpu_json, 'GPU')
    rows = join(cpu, gpu_rows(gpu_results))
    threads = sorted({str(r['threads']) for r in rows})
    cpu_name = args.cpu_name or f'minigan backend {args.cpu_backend}, {"/".join(threads)} threads'
    gpu_name = gpu_results.get('machine', {}).get('gpu', 'GPU')
    text = markdown(rows, cpu_name, gpu_name)
    with open(args.md, 'w') as f:
        f.write(text)
    plot(rows, args.png, f'speed-up of a training step, {gpu_name} over the CPU ({cpu_name}); log scale')
    print(text, end='')
    print(f'wrote {args.md} and {args.png}')


if __name__ == '__main__':
    main()

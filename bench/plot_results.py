"""Bar chart of bench/compare_torch.py results (--json) as a PNG, drawn with Pillow.

    python bench/compare_torch.py --backend auto --json results.json
    python bench/compare_torch.py --backend numpy --json results.json
    python bench/plot_results.py results.json bench/results.png

One group per workload: minigan's median step time per backend divided by PyTorch's
from the same run (PyTorch = 1.0), each bar labelled with its milliseconds (PyTorch's
bar with the time of the first run); the title says threads and timing.
"""
import json
import sys

from PIL import Image, ImageDraw

COLOURS = {'torch': (238, 76, 44), 'auto': (52, 120, 198), 'cpp': (52, 120, 198), 'numba': (90, 170, 90),
           'numpy': (150, 150, 150)}


def plot(rows, path, title=''):
    workloads = list(dict.fromkeys(r['workload'] for r in rows))
    series = ['torch'] + list(dict.fromkeys(r['backend'] for r in rows))
    value, rel = {}, {}
    for r in rows:                                    # the last row of each kind wins
        # each bar is minigan / torch as measured in that run (the runs alternate the two),
        # so that large and small workloads, and runs on a busier machine, read alike
        value[(r['workload'], r['backend'])] = r['minigan_ms']
        rel[(r['workload'], r['backend'])] = r['minigan_ms'] / r['torch_ms']
        value.setdefault((r['workload'], 'torch'), r['torch_ms'])
        rel[(r['workload'], 'torch')] = 1.0
    width, height, left, top, bottom = 200 + 150 * len(workloads), 420, 60, 50, 70
    img = Image.new('RGB', (width, height), 'white')
    d = ImageDraw.Draw(img)
    d.text((left, 12), title or 'median step time relative to PyTorch (1.0 = PyTorch; lower is faster)', fill='black')
    top_rel = max(max(rel.values()), 1.0) * 1.1
    plot_h = height - top - bottom

    def y_of(v):
        return top + plot_h * (1 - v / top_rel)
    for tick in [0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]:
        if tick <= top_rel:
            d.line([(left, y_of(tick)), (width - 20, y_of(tick))], fill=(225, 225, 225))
            d.text((10, y_of(tick) - 6), f'{tick:.1f}x', fill='black')
    d.line([(left, y_of(1.0)), (width - 20, y_of(1.0))], fill=(238, 76, 44))
    group = 150
    bar = (group - 30) // len(series)
    for i, w in enumerate(workloads):
        x0 = left + 10 + i * group
        for j, s in enumerate(series):
            if (w, s) not in rel:
                continue
            x = x0 + j * bar
            d.rectangle([x, y_of(rel[(w, s)]), x + bar - 3, y_of(0)], fill=COLOURS.get(s, (100, 100, 100)))
            d.text((x, y_of(rel[(w, s)]) - 12), f'{value[(w, s)]:.0f}', fill='black')
        d.text((x0, height - bottom + 8), w, fill='black')
    for j, s in enumerate(series):
        d.rectangle([left + 130 * j, height - 28, left + 130 * j + 12, height - 16], fill=COLOURS.get(s, (100, 100, 100)))
        d.text((left + 130 * j + 18, height - 28), 'PyTorch' if s == 'torch' else f'minigan {s}', fill='black')
    img.save(path)


def main():
    if len(sys.argv) < 3:
        sys.exit('usage: plot_results.py results.json out.png [title]')
    rows = json.load(open(sys.argv[1]))
    plot(rows, sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else '')


if __name__ == '__main__':
    main()

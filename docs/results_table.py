"""Print the README's results tables (markdown) from the runs of docs/quality_runs.sh.

    python docs/results_table.py runs/quality

One row per GAN run: generator steps, critic steps, wall-clock seconds of the whole command and
the images seen; then, for the runs that were evaluated, the metrics of `minigan.evaluate` beside
their real-versus-real floors.
"""
import json
import os
import sys

METRICS = ('fd', 'kid', 'classifier_score', 'modes', 'label_kl')


def read_jsonl(path):
    with open(path, encoding='utf-8') as f:
        return [json.loads(line) for line in f if line.strip()]


def run_rows(runs_dir):
    """(name, summary line, step records) of every run in summary.jsonl, in its order."""
    for entry in read_jsonl(os.path.join(runs_dir, 'summary.jsonl')):
        metrics = os.path.join(runs_dir, entry['run'], 'metrics.jsonl')
        yield entry['run'], entry, [r for r in read_jsonl(metrics) if r.get('type') == 'step']


def gan_table(runs_dir):
    lines = ['| run | generator steps | critic steps | images seen | wall time |',
             '| --- | --- | --- | --- | --- |']
    for name, entry, steps in run_rows(runs_dir):
        if name.startswith('classifier'):
            continue
        critic = sum(r.get('critic_steps', 1) for r in steps)
        images = sum(round(r['images_per_s'] * r['step_time']) for r in steps)
        minutes, seconds = divmod(int(entry['seconds']), 60)
        lines.append(f'| {name} | {len(steps)} | {critic} | {images:,} | {minutes} min {seconds:02d} s |')
    return '\n'.join(lines)


def metrics_table(runs_dir):
    head = '| run | ' + ' | '.join(METRICS) + ' |'
    lines = [head, '|' + ' --- |' * (len(METRICS) + 1)]
    for name, _, _ in run_rows(runs_dir):
        path = os.path.join(runs_dir, name, 'eval', 'metrics.json')
        if not os.path.isfile(path):
            continue
        with open(path, encoding='utf-8') as f:
            m = json.load(f)
        cells = [f'{m[k]:.3g} ({m[k + "_floor"]:.3g})' if k != 'modes' else f'{m[k]} ({m[k + "_floor"]})'
                 for k in METRICS]
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main(argv):
    if len(argv) != 1 or not os.path.isfile(os.path.join(argv[0], 'summary.jsonl')):
        sys.exit('usage: python docs/results_table.py RUNS_DIR (the folder docs/quality_runs.sh wrote, '
                 'with its summary.jsonl)')
    print(gan_table(argv[0]))
    print()
    print(metrics_table(argv[0]))


if __name__ == '__main__':
    main(sys.argv[1:])

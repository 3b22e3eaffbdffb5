"""Is a generator any good, and did it collapse? `python -m minigan.evaluate RUN_DIR`.

An evaluator network (a classifier-32 trained by minigan on the run's real data,
cached and reused; or any classifier run given with --classifier) looks at n
generated samples and at the real test split. From its penultimate-layer
features and its class probabilities:

  fd                Fréchet distance of the features (lower is better)
  classifier_score  exp(E KL(p(y|x) || p(y)))  (higher is better, at most the class count)
  kid               unbiased kernel distance, cubic polynomial kernel, over subsets (lower)
  modes             classes produced at least 1% of the time (the real data: all of them)
  label_kl          KL(real label distribution || generated) (lower)

A conditional run (train --conditional) is asked for each class equally often, and also gets,
per asked-for class, the share of its samples the evaluator reads as that class (accuracy) and
the Fréchet distance to the real test images of that class (class_metrics.py).

Each comes with its floor: the same metric for real train images (as many as the
generated ones, or all there are) against the test split, i.e. what a perfect
generator would score with this evaluator and this many samples.

The metrics themselves are in minigan/evaluation/ (sample_metrics.py, evaluator.py,
memorisation.py, classifier_run.py); this file is the command line.
"""
import json
import os
import sys
import time

from .data import save_grid
from .evaluation import (METRIC_KEYS, balanced_labels, class_summary, format_class_table, per_class_metrics,
                          EvaluateError, RealReference, evaluate_classifier_run,  # noqa: F401
                         evaluate_generator, evaluator_accuracy, evaluator_outputs, get_evaluator,
                         load_evaluator, memorisation_figure, nearest_neighbours, real_splits, subsample,
                         default_cache_dir, TrainingEvaluator)
from .gan.sampling import latent_size, sample_generator  # noqa: F401
from .atomic import save_image, write_text
from .errors import OneLineParser, run_command
from .run_config import resolve_device
from .run_folder import (RunFolderError, load_generator, load_run_data, load_run_model,  # noqa: F401
                         read_config)
from .runlog import plot_metric_history  # noqa: F401


# ---- output ---------------------------------------------------------------------------
def format_table(result):
    """The console table: metric, value, real-vs-real floor, and which way is better."""
    better = {'fd': 'lower', 'classifier_score': 'higher', 'kid': 'lower', 'modes': 'higher',
              'label_kl': 'lower'}
    lines = [f'{"metric":<18}{"generated":>12}{"real floor":>12}   better', '-' * 50]
    for k in METRIC_KEYS:
        v, f = result.get(k), result.get(k + '_floor')
        fmt = (lambda x: f'{x:>12d}') if k == 'modes' else (lambda x: f'{x:>12.4f}')
        lines.append(f'{k:<18}{fmt(v) if v is not None else "":>12}{fmt(f) if f is not None else "-":>12}'
                     f'   {better[k]}')
    return '\n'.join(lines)


# ---- command line -------------------------------------------------------------------------
def build_parser():
    p = OneLineParser(prog='python -m minigan.evaluate',
                                description='Sample-quality and mode-coverage metrics of a GAN run '
                                            '(or per-class scores of a classifier run).')
    p.add_argument('run_dir', help='a run folder written by python -m minigan.train')
    p.add_argument('--n', type=int, default=10000, help='generated samples (default: 10000)')
    p.add_argument('--n-test', type=int, default=None,
                   help='real test images to compare with (default: as many as --n, or all there are)')
    p.add_argument('--classifier', default=None, metavar='RUN_DIR',
                   help='evaluator: a classifier run of minigan.train on the same classes (default: a '
                        'classifier-32 trained on the run\'s training images, cached)')
    p.add_argument('--json', default=None, metavar='FILE', help='write the metrics to FILE as JSON')
    p.add_argument('--evaluator-epochs', type=int, default=5, help='epochs of the evaluator (default: 5)')
    p.add_argument('--cache-dir', default=None, help=f'evaluator cache (default: {default_cache_dir()})')
    p.add_argument('--data-dir', default=None, help='where the run\'s dataset is (default: as trained)')
    p.add_argument('--checkpoint', default=None, help='checkpoint file (default: the run\'s latest)')
    p.add_argument('--g-mode', default='batch', choices=['batch', 'eval'],
                   help='generator batch norm: batch statistics, as the sample grids (default), or running')
    p.add_argument('--kid-subsets', type=int, default=100)
    p.add_argument('--kid-subset-size', type=int, default=1000)
    p.add_argument('--neighbours', type=int, default=4, help='nearest training images per sample (default: 4)')
    p.add_argument('--threshold', type=float, default=0.5,
                   help='classifier runs, multi-label: probability at which a class is predicted')
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda', 'auto'])
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default=None, help='output folder (default: RUN_DIR/eval)')
    return p


def main(argv=None):
    a = build_parser().parse_args(argv)
    return run_command('minigan.evaluate', _main, a)     # errors: one line and an exit status


def _main(a):
    device = resolve_device(a.device) if a.device == 'auto' else a.device
    cfg = read_config(a.run_dir)
    if cfg['model'] == 'sr':
        raise EvaluateError(f'{a.run_dir} is a super-resolution run: its PSNR and SSIM against bicubic are in '
                            'its quality.json and in the epoch lines of its metrics.jsonl')
    out = a.out or os.path.join(a.run_dir, 'eval')
    os.makedirs(out, exist_ok=True)
    if cfg['model'] == 'classifier':
        result = evaluate_classifier_run(a.run_dir, out, a.threshold, device, a.data_dir)
        if a.json:
            _write_json(a.json, result)
        return 0
    if a.n < 2:
        raise EvaluateError('--n must be at least 2')
    t0 = time.perf_counter()
    train_x, test_x, test_y, classes, note, n_evaluator = real_splits(cfg, a.data_dir)
    ev_dir = a.classifier or get_evaluator(cfg, n_evaluator, a.cache_dir, a.evaluator_epochs, device,
                                           a.data_dir)
    evaluator = load_evaluator(ev_dir, len(classes), device)
    print(f'evaluator: {ev_dir} (test accuracy {evaluator_accuracy(ev_dir)}); real data: {note}')
    test_x, test_y = subsample(test_x, test_y, a.n_test or a.n, a.seed)
    G = load_generator(a.run_dir, device, a.checkpoint)
    subset = min(a.kid_subset_size, a.n, len(test_x))
    ref = RealReference(evaluator, test_x, test_y, train_x, kid_subsets=a.kid_subsets,
                        kid_subset_size=subset, seed=a.seed)
    labels = balanced_labels(len(classes), a.n) if cfg.get('conditional') else None
    samples = sample_generator(G, a.n, seed=a.seed, mode=a.g_mode, labels=labels)
    features, probs = evaluator_outputs(evaluator, samples)
    result = ref.metrics(features, probs)
    floor = ref.floors(a.n)
    result.update({k + '_floor': floor[k] for k in METRIC_KEYS})
    result = {k: (int(v) if k.startswith('modes') else float(v)) for k, v in result.items()}
    print(format_table(result))
    print(f'{a.n} generated samples; floors from {floor["n"]} real train images; '
          f'{len(test_x)} real test images; KID over {a.kid_subsets} subsets of {subset}')
    per_class = None
    if labels is not None:
        per_class = per_class_metrics(features, probs, labels, ref, classes)
        print(format_class_table(per_class))
        extra = class_summary(per_class, labels, probs)
        mean_fd = 'n/a' if extra['mean_class_fd'] is None else f'{extra["mean_class_fd"]:.4f}'
        print(f'conditional: {extra["class_accuracy"]:.3f} of the samples are read as the class asked for; '
              f'mean per-class fd {mean_fd}')
        result.update(extra)
    save_grid(samples[:64], os.path.join(out, 'samples.png'), nrow=8)
    q = samples[:16]
    idx = nearest_neighbours(q, train_x, k=a.neighbours)
    save_image(memorisation_figure(q, train_x, idx), os.path.join(out, 'memorisation.png'))
    details = dict(result, n=a.n, n_floor=floor['n'], n_test=len(test_x), evaluator=os.path.abspath(ev_dir),
                   evaluator_test_accuracy=evaluator_accuracy(ev_dir), real_data=note,
                   checkpoint=a.checkpoint or 'latest', g_mode=a.g_mode, seconds=time.perf_counter() - t0)
    if per_class is not None:
        details['per_class'] = per_class
    _write_json(os.path.join(out, 'metrics.json'), details)
    if a.json:
        keys = METRIC_KEYS + tuple(k + '_floor' for k in METRIC_KEYS) + ('class_accuracy', 'mean_class_fd')
        _write_json(a.json, {k: result[k] for k in keys if k in result})
    print(f'wrote {out}/metrics.json, samples.png, memorisation.png'
          + (f' and {a.json}' if a.json else ''))
    return 0


def _write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2) + '\n')


if __name__ == '__main__':
    sys.exit(main())

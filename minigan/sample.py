"""`python -m minigan.sample RUN_DIR`: draw new samples from a trained generator.

    python -m minigan.sample runs/dcgan-synth-... --n 64 --out grid.png
    python -m minigan.sample runs/dcgan-synth-... --interpolate --out walk.png
    python -m minigan.sample runs/conditional-run --class 7      # a --conditional run: that class only

The generator is rebuilt from RUN_DIR/config.json and loaded from the latest
checkpoint (or --checkpoint) by run_folder.load_generator. --interpolate draws
rows that walk between two random latent points (spherical interpolation, which
keeps the walk at the typical norm of Gaussian noise).

A conditional run (train --conditional) draws the class given by --class (a class name such
as 7, A or cat, or an index), or by default one class per row: row r shows class r, all the
classes in order.
"""
import argparse
import os
import sys

import numpy as np

from .data import save_grid
from .errors import NonFiniteError, UsageError, run_command
from .gan.sampling import generate, is_conditional, row_labels
from .run_config import resolve_device
from .run_folder import class_names, load_generator, read_config
from .tensor import tensor

PROG = 'minigan-sample'


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f'{self.prog}: error: {message} (see --help)\n')


def build_parser():
    p = _Parser(prog=PROG, allow_abbrev=False,
                description='Draw new samples (or latent-space walks) from the generator of a minigan run.')
    p.add_argument('run_dir', metavar='RUN_DIR', help='a run folder written by python -m minigan.train')
    p.add_argument('--n', type=int, default=None,
                   help='number of images (default: 64; a conditional run without --class: one row of '
                        '--nrow per class)')
    p.add_argument('--class', dest='klass', default=None, metavar='NAME|INDEX',
                   help='a conditional run: draw only this class, by name (7, A, cat) or index (default: '
                        'one class per row)')
    p.add_argument('--out', default=None,
                   help='PNG file to write (default: RUN_DIR/sample.png, or RUN_DIR/interpolation.png)')
    p.add_argument('--interpolate', action='store_true',
                   help='rows that walk between two random latent points instead of independent samples '
                        '(default: off)')
    p.add_argument('--steps', type=int, default=8,
                   help='images per row of an --interpolate walk (default: 8)')
    p.add_argument('--nrow', type=int, default=None,
                   help='images per row of the grid (default: 8, or --steps with --interpolate)')
    p.add_argument('--seed', type=int, default=None,
                   help='seed of the noise (default: a fresh one each call)')
    p.add_argument('--checkpoint', default=None, metavar='PATH',
                   help='checkpoint file to load (default: RUN_DIR/checkpoints/latest.npz)')
    p.add_argument('--device', default='auto', choices=('cpu', 'cuda', 'auto'),
                   help='where to run the generator (default: auto)')
    p.add_argument('--scale', type=int, default=2, help='enlarge the PNG by this integer factor (default: 2)')
    return p


def slerp(a, b, t):
    """Spherical interpolation between rows of a and b (t in [0, 1]); falls back to a straight line."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na = a / np.linalg.norm(a, axis=-1, keepdims=True)
    nb = b / np.linalg.norm(b, axis=-1, keepdims=True)
    omega = np.arccos(np.clip((na * nb).sum(-1, keepdims=True), -1.0, 1.0))
    so = np.sin(omega)
    safe = so > 1e-6
    wa = np.where(safe, np.sin((1 - t) * omega) / np.where(safe, so, 1), 1 - t)
    wb = np.where(safe, np.sin(t * omega) / np.where(safe, so, 1), t)
    return wa * a + wb * b


def latent_walks(rows, steps, nz, rng):
    """(rows * steps, nz) points: row r walks from one random point to another in `steps` stops."""
    a = rng.standard_normal((rows, nz))
    b = rng.standard_normal((rows, nz))
    ts = np.linspace(0.0, 1.0, steps)
    return np.stack([slerp(a, b, t) for t in ts], axis=1).reshape(rows * steps, nz)


def class_index(run_dir, cfg, klass):
    """The label of --class: a class name of the run's data, else an index; one-line errors."""
    if not cfg.get('conditional'):
        raise UsageError(f'{run_dir} is not a conditional run: --class needs a run trained with '
                         'python -m minigan.train --conditional')
    names = class_names(cfg)
    if klass in names:
        return names.index(klass)
    if klass.isdigit() and int(klass) < len(names):
        return int(klass)
    shown = ', '.join(names[:80]) + (', ...' if len(names) > 80 else '')
    raise UsageError(f'unknown class {klass!r} for {run_dir}: give an index from 0 to {len(names) - 1} '
                     f'or one of the class names: {shown}')


def sample_images(G, z, device, labels=None):
    """G(z) (G(z, labels) for a conditional G) with batch statistics from z plus 64 extra random
    points, so small or structured batches (a walk, one class) are normalised like the training grids."""
    n = len(z)
    rng = np.random.default_rng(12345)
    pad = rng.standard_normal((64, z.shape[1]))
    zz = np.concatenate([z, pad]).astype(np.float32).reshape(n + 64, -1, 1, 1)
    y = None
    if labels is not None:
        y = tensor(np.concatenate([labels, rng.integers(0, G.num_classes, 64)]).astype(np.int64)).to(device)
    out = generate(G, tensor(zz).to(device), y)
    return out[:n]


def main(argv=None):
    """The `minigan-sample` command; returns the exit status (the table is in minigan/errors.py)."""
    args = build_parser().parse_args(argv)
    return run_command(PROG, _sample, args)


def _sample(args):
    if (args.n is not None and args.n < 1) or args.steps < 2 or (args.nrow is not None and args.nrow < 1) \
            or args.scale < 1:
        raise UsageError('--n and --nrow must be at least 1, --steps at least 2, --scale at least 1')
    cfg = read_config(args.run_dir)
    label = None if args.klass is None else class_index(args.run_dir, cfg, args.klass)
    device = resolve_device(args.device)
    G = load_generator(args.run_dir, device, args.checkpoint)
    rng = np.random.default_rng(args.seed)
    nz = G.nz
    nrow = args.nrow or (args.steps if args.interpolate else 8)
    n = args.n
    if n is None:
        n = nrow * G.num_classes if is_conditional(G) and label is None else 64
    if args.interpolate:
        rows = max(1, n // args.steps)
        z = latent_walks(rows, args.steps, nz, rng)
        default_out = 'interpolation.png'
    else:
        z = rng.standard_normal((n, nz))
        default_out = 'sample.png' if label is None else f'sample_class_{label}.png'
    labels = None
    if is_conditional(G):                   # one class per row, or --class throughout
        labels = row_labels(G.num_classes, len(z), nrow) if label is None else np.full(len(z), label)
    images = sample_images(G, z, device, labels)
    if not np.isfinite(images.numpy()).all():
        raise NonFiniteError(f'the generator of {args.run_dir} drew images with NaN or infinite pixels: '
                             'nothing written; sample from an earlier checkpoint with --checkpoint')
    out = args.out or os.path.join(args.run_dir, default_out)
    save_grid(images, out, nrow=nrow, scale=args.scale)
    print(f'wrote {len(z)} images to {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

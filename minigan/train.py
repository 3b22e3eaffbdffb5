"""`python -m minigan.train` (also `minigan-train`): train a GAN or classifier-32 and watch it learn.

    python -m minigan.train                               # DCGAN on the built-in synth digits (< 10 min on a CPU)
    python -m minigan.train --data svhn --data-dir ../shared/data --model wgan-gp --epochs 20
    python -m minigan.train --data ~/photos/bicycles --image-size 64 --out runs/bikes
    python -m minigan.train --resume runs/bikes           # carry on after a crash, Ctrl-C or a sleep
    python -m minigan.train --model classifier --data cifar10 --epochs 10
    python -m minigan.train --conditional --data mnist --model wgan-gp   # then: python -m minigan.sample RUN --class 7
    python -m minigan.train --model sr --scale 2 --data cifar10          # then: python -m minigan.upscale RUN ...

A run folder holds config.json, metrics.jsonl, samples/ (grids from a fixed
noise batch), progress.gif, losses.png and checkpoints/ (latest.npz and one
per epoch). See `--help` for every flag.

This file parses the flags and wires the pieces together: run_config.py resolves the
settings, training/setup.py builds the data, networks and optimisers, run_recorder.py
keeps the run folder, and training/loop.py is the training loop itself.
"""
import argparse
import datetime
import json
import math
import os
import sys

from . import checkpoint, run_lock
from .data.fingerprint import check as check_fingerprint
from .errors import INTERRUPTED, run_command
from .evaluation import TrainingEvaluator, get_evaluator, real_splits
from .gan.sampling import generate  # noqa: F401  (kept importable from here for older callers)
from .run_config import (DEFAULTS, DEFAULT_EPOCHS, FULL_WIDTH, MODELS, QUICK_EPOCHS, QUICK_WIDTH,
                         UsageError, new_config, resume_config)
from .run_recorder import RunRecorder
from .training import TrainingSetup, data_parallel, run_training

PROG = 'minigan-train'


# ---- command line --------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message):            # one line, no usage dump, exit status 2
        self.exit(2, f'{self.prog}: error: {message} (see --help)\n')


def build_parser(suppress_defaults=False):
    p = _Parser(prog=PROG, allow_abbrev=False,
                argument_default=argparse.SUPPRESS if suppress_defaults else None,
                formatter_class=argparse.RawDescriptionHelpFormatter,
                description='Train a GAN (DCGAN, RaLSGAN, WGAN, WGAN-GP; optionally class-conditional), the '
                            'classifier-32 or a super-resolution SRResNet with minigan, '
                            'writing samples, metrics, plots and resumable checkpoints to a run folder.',
                epilog='examples:\n'
                       '  python -m minigan.train                     DCGAN on synth digits, under 10 min on 2 cores\n'
                       '  python -m minigan.train --data svhn --data-dir ../shared/data --model wgan-gp\n'
                       '  python -m minigan.train --data PATH/TO/IMAGES --image-size 64 --out runs/mine\n'
                       '  python -m minigan.train --resume runs/mine --epochs 40\n'
                       '  python -m minigan.train --model classifier --data cifar10 --epochs 10\n'
                       '  python -m minigan.train --conditional --data mnist --model wgan-gp   G(z, class)\n'
                       '  python -m minigan.train --model sr --scale 2 --data cifar10   an SRResNet upscaler\n'
                       '  python -m minigan.sample RUN_DIR --n 64 --out grid.png   new samples from a run')

    def add(*names, **kw):
        if not suppress_defaults:
            kw['default'] = DEFAULTS[names[0][2:].replace('-', '_')]
        p.add_argument(*names, **kw)

    add('--data', metavar='NAME|PATH',
        help='training set: synth (built in, generated on first use), svhn, mnist, fashion-mnist, cifar10, '
             'chars74k, or a folder of images (class sub-folders become labels) (default: synth)')
    add('--data-dir', metavar='DIR',
        help='where datasets are found, downloaded and cached (default: $MINIGAN_DATA, else a per-user '
             'cache folder)')
    add('--model', choices=MODELS,
        help='dcgan: non-saturating GAN loss (BCE on logits); ralsgan: relativistic average least squares; '
             'wgan: weight clipping, RMSprop; wgan-gp: gradient penalty, critic without batch norm; '
             'classifier: classifier-32 with cross-entropy; sr: an SRResNet that upscales the data\'s '
             'images by --scale (default: dcgan)')
    add('--epochs', type=_positive_int, metavar='N',
        help=f'passes over the training set (default: {DEFAULT_EPOCHS}; with --data synth and neither '
             f'--epochs nor --max-steps given: {QUICK_EPOCHS}, the quick demo, which also takes '
             f'--ngf and --ndf {QUICK_WIDTH})')
    add('--max-steps', type=_positive_int, metavar='N',
        help='stop after this many steps (generator steps for GANs, batches for the classifier), even '
             'mid-epoch (default: no limit)')
    add('--batch-size', type=_positive_int, metavar='B', help='images per batch (default: 64)')
    add('--lr', type=_positive_float,
        help='learning rate (default: per model: dcgan and ralsgan 2e-4 with Adam betas (0.5, 0.999); '
             'wgan 5e-5 with RMSprop; wgan-gp 1e-4 with Adam betas (0.5, 0.9); classifier 1e-3 with Adam; '
             'sr 1e-4 with Adam)')
    add('--image-size', type=int, choices=(32, 64),
        help='32: DCGAN-32 and classifier-32; 64: DCGAN-64 (the DCGAN paper\'s) (default: 32)')
    add('--device', choices=('cpu', 'cuda', 'auto'),
        help='cpu (NumPy), cuda (CuPy on a GPU), or auto: cuda when a GPU is usable (default: auto)')
    add('--out', metavar='RUN_DIR',
        help='run folder to create (default: runs/MODEL-DATA-YYYYmmdd-HHMMSS)')
    add('--resume', metavar='RUN_DIR',
        help='continue the run in RUN_DIR from its newest usable checkpoint, with its settings; only --epochs, '
             '--max-steps, --lr, --device, --data-dir, --quiet, --sample-every, --checkpoint-every, '
             '--log-every, --eval-every and --eval-n may change; refused while another process trains in '
             'RUN_DIR, or when its dataset changed (default: start a new run)')
    add('--restart', action='store_true',
        help='start the run in --out over, deleting its checkpoints and outputs (a run that stopped before '
             'its first checkpoint is started over without it) (default: off)')
    add('--allow-changed-data', action='store_true',
        help='with --resume: train on even if the dataset differs from the one the run began on (its '
             'fingerprint in config.json: image count, shapes, a hash of a sample) (default: off)')
    add('--seed', type=int, help='seed of weights, noise, shuffling and sampling (default: 0)')
    add('--sample-every', type=_positive_int, metavar='N',
        help='save a grid from the fixed noise batch every N steps, and at each epoch\'s end (default: 100)')
    add('--checkpoint-every', type=_positive_int, metavar='N',
        help='write checkpoints/latest.npz every N steps, and at each epoch\'s end (default: 500)')
    add('--quiet', action='store_true',
        help='no progress bar: a plain log line every --log-every steps and per epoch (default: off)')
    add('--log-every', type=_positive_int, metavar='N',
        help='steps between log lines with --quiet (default: 50)')
    add('--subset', type=_positive_int, metavar='N',
        help='train on the first N images only (default: all; see --epochs for the synth demo)')
    add('--crop-padding', type=_non_negative_int, metavar='P',
        help='random translations: pad each side of a training image by P pixels (black) and crop a '
             'random window of the original size; 4 is usual for the classifier on cifar10 (default: 0)')
    add('--lr-schedule', choices=('constant', 'cosine'),
        help='constant: --lr throughout; cosine: from --lr down to 0 over the planned steps (those of '
             '--epochs, or --max-steps if fewer), following half a cosine; a --resume that changes them '
             'stretches or shrinks the rest of the curve (default: constant)')
    add('--eval-every', type=_positive_int, metavar='N',
        help='GANs: every N steps and at the end, score --eval-n samples with the metrics of '
             'python -m minigan.evaluate (fd, classifier_score, kid, modes, label_kl and their real-data '
             'floors), logged to metrics.jsonl and plotted to metrics.png; the first call trains and '
             'caches an evaluator classifier-32 on the run\'s data (default: off)')
    add('--cuda-graph', action='store_true',
        help='dcgan on --device cuda: capture the whole training step once as a CUDA graph and replay '
             'it, so a small model is not bound by kernel-launch overhead (minigan/cuda_graph.py) '
             '(default: off)')
    add('--eval-n', type=_positive_int, metavar='N',
        help='generated samples per --eval-every evaluation (default: 2000)')
    add('--flip', choices=('auto', 'on', 'off'),
        help='random horizontal flips of training images; auto: on for cifar10 and image folders, off for '
             'the digit sets, where a mirrored digit is not a digit (default: auto)')
    add('--labels-file', metavar='CSV',
        help='multi-label data for a folder --data: a CSV of file name then class names; the classifier '
             'then trains a sigmoid and binary cross-entropy per class (default: none, one label per image '
             'from its class sub-folder)')
    add('--nz', type=_positive_int, help='length of the noise vector z (default: 100)')
    add('--ngf', type=_positive_int,
        help=f'generator width (default: {FULL_WIDTH}, as in DCGAN-32 and DCGAN-64; {QUICK_WIDTH} in the quick '
             'synth demo, see --epochs)')
    add('--ndf', type=_positive_int,
        help=f'discriminator / critic width (default: {FULL_WIDTH}; {QUICK_WIDTH} in the quick synth demo)')
    add('--n-critic', type=_positive_int, metavar='N',
        help='critic steps per generator step for wgan and wgan-gp; wgan takes 100 for the first 25 '
             'generator steps and every 500th (default: 5)')
    add('--clip', type=_positive_float,
        help='wgan: critic weights are clipped to [-CLIP, CLIP] after every critic step (default: 0.01)')
    add('--gp-weight', type=_positive_float,
        help='wgan-gp: weight lambda of the gradient penalty (default: 10)')
    add('--conditional', action='store_true',
        help='dcgan, ralsgan, wgan, wgan-gp: a class-conditional GAN, G(z, class) and a projection '
             'discriminator D(x, class) (see --cond-d) trained on the data\'s labels; the sample grids show one class per '
             'row (default: off)')
    add('--cond-d', choices=('projection', 'acgan'),
        help='with --conditional: projection, D(x, y) = psi(phi(x)) + <embed(y), phi(x)> (Miyato and Koyama); '
             'acgan, an auxiliary classifier head whose cross-entropy both networks also minimise (Odena et al.) '
             '(default: projection)')
    add('--scale', type=int, choices=(2, 4),
        help='sr: the upscaling factor; the low-resolution inputs are the training images averaged over '
             'SCALE x SCALE boxes (default: 2)')
    add('--adversarial', action='store_true',
        help='sr: SRGAN, adding a discriminator and a feature loss through the cached evaluator '
             'classifier-32 of the data (trained on first use) to the content loss (default: off)')
    add('--content-loss', choices=('l1', 'mse'),
        help='sr: the pixel loss between the upscaled and the original image (default: l1)')
    add('--sr-channels', type=_positive_int, metavar='C',
        help='sr: width of the SRResNet and of its discriminator (default: 32)')
    add('--sr-blocks', type=_positive_int, metavar='N',
        help='sr: residual blocks of the SRResNet (default: 4)')
    add('--feature-weight', type=_positive_float, metavar='W',
        help='sr --adversarial: weight of the classifier-feature loss (default: 0.006)')
    add('--adversarial-weight', type=_positive_float, metavar='W',
        help='sr --adversarial: weight of the generator\'s adversarial loss (default: 0.001)')
    add('--feature-classifier', metavar='RUN_DIR',
        help='sr --adversarial: a classifier run whose classifier-32 gives the feature loss (default: the '
             'evaluator classifier-32 of python -m minigan.evaluate for the data, trained on first use and '
             'cached)')
    add('--distributed', action='store_true',
        help='data parallel over the processes of `mpiexec -n N`: each trains on its N-th of every '
             '--batch-size batch (which must divide by N), gradients are averaged over MPI (NCCL on '
             'GPUs, one per process), rank 0 writes the run folder; a run may be resumed with another N '
             '(default: off; needs pip install "minigan[mpi]")')
    add('--sync-bn', action='store_true',
        help='with --distributed: batch-norm statistics over the whole global batch, as one process '
             'would compute them (default: off: each process normalises its own shard)')
    add('--bucket-mb', type=_positive_float, metavar='MB',
        help='with --distributed: gradients are averaged in buckets of about this many megabytes, each '
             'sent as soon as backward has computed it (default: 1 on the CPU over MPI, 25 on GPUs over NCCL; '
             'measured in bench/RESULTS.md)')
    return p


def _int_at_least(minimum):
    """An argparse type: a whole number >= minimum, with a one-line message otherwise."""
    def parse(s):
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{s!r} is not a whole number') from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f'{s} must be positive' if minimum == 1 else f'{s} must be {minimum} or more')
        return v
    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _positive_float(s):
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{s!r} is not a number') from None
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f'{s} must be a positive number')
    return v


# ---- entry point ---------------------------------------------------------------------------
def _default_run_dir(cfg):
    name = os.path.basename(os.path.normpath(str(cfg['data']))) or 'data'
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    return os.path.join('runs', f'{cfg["model"]}-{name}-{stamp}')


def _sample_scorer(cfg, setup):
    """--eval-every: the metrics of python -m minigan.evaluate, through an evaluator classifier trained
    (once, cached) on the run's data; None without --eval-every."""
    if not cfg.get('eval_every'):
        return None
    if not setup.gan:
        raise UsageError('--eval-every scores a generator\'s samples: it goes with a GAN --model '
                         '(the classifier logs its test accuracy every epoch)')
    return TrainingEvaluator(dict(cfg, dataset=setup.dataset_info), n=cfg['eval_n'], device=setup.device,
                             root=cfg['data_dir'], say=lambda msg: print(msg, flush=True))


def _feature_classifier(cfg, setup):
    """sr --adversarial without --feature-classifier: the cached evaluator classifier-32 of the data
    (trained on first use), recorded in config.json so that a resumed run looks through the same one."""
    if cfg['model'] != 'sr' or not cfg['adversarial'] or cfg.get('feature_classifier'):
        return
    full = dict(cfg, dataset=setup.dataset_info)
    n_train = real_splits(full, cfg['data_dir']).n_evaluator
    cfg['feature_classifier'] = os.path.abspath(
        get_evaluator(full, n_train, device=setup.device, root=cfg['data_dir'],
                      say=lambda msg: print(msg, flush=True)))
    setup.use_feature_classifier(cfg['feature_classifier'])


def main(argv=None):
    """The `minigan-train` command; returns the exit status (the table is in minigan/errors.py)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    return run_command(PROG, _train, args, argv)


def _train(args, argv):
    """Claim the run folder (its lock is held until the end), build everything, train.
    With --distributed, rank 0 claims and writes the folder; the other ranks only read it."""
    if args.distributed:
        from . import distributed
        distributed.init()
    lead = not args.distributed or distributed.rank() == 0
    if args.resume:
        if args.restart:
            raise UsageError('--restart starts a run over and --resume continues it: give only one of them')
        run_dir = args.resume
        lock = run_lock.claim_existing(run_dir) if lead else None
    else:
        if args.allow_changed_data:
            raise UsageError('--allow-changed-data goes with --resume: a new run records its data as it is')
        cfg = new_config(vars(args))
        run_dir = args.out or _default_run_dir(cfg)
        lock = run_lock.claim_new(run_dir, restart=args.restart, say=print) if lead else None
    if args.distributed:
        distributed.barrier()                       # rank 0 owns the folder before the others look at it
    try:
        if args.resume:
            cfg = resume_config(run_dir, vars(build_parser(suppress_defaults=True).parse_args(argv)))
            if not checkpoint.has_checkpoint(run_dir):
                raise UsageError(f'{run_dir} has no checkpoint to resume from: the run stopped before its first '
                                 'one; run the same command as before (without --resume) to start it afresh')
        setup = TrainingSetup(cfg)                  # seed, data, networks, optimisers, the step
        if args.resume:
            changed = check_fingerprint(_recorded_fingerprint(run_dir), setup.dataset_info['fingerprint'],
                                        run_dir, allow_changed=args.allow_changed_data)
            if changed and lead:
                print(f'warning: training on changed data, as --allow-changed-data asks: {"; ".join(changed)}',
                      file=sys.stderr, flush=True)
        scorer = _sample_scorer(cfg, setup)
        _feature_classifier(cfg, setup)
        recorder = data_parallel.recorder if cfg.get('distributed') else RunRecorder
        run = recorder(cfg, run_dir, setup, args.resume is not None)
        try:
            return run_training(setup, run, scorer)
        except KeyboardInterrupt:
            print(f'{PROG}: interrupted twice: quit without saving; the last checkpoint is '
                  f'{run.last_good[0] if run.last_good else "(none yet)"}', file=sys.stderr)
            return INTERRUPTED
    finally:
        if lock is not None:
            lock.release()


def _recorded_fingerprint(run_dir):
    """The dataset fingerprint config.json recorded (None for runs from before fingerprints)."""
    with open(os.path.join(run_dir, 'config.json'), encoding='utf-8') as f:
        return (json.load(f).get('dataset') or {}).get('fingerprint')


if __name__ == '__main__':
    sys.exit(main())

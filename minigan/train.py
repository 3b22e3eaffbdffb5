"""`python -m minigan.train` (also `minigan-train`): train a GAN or classifier-32 and watch it learn.

    python -m minigan.train                               # DCGAN on the built-in synth digits (< 10 min on a CPU)
    python -m minigan.train --data svhn --data-dir ../shared/data --model wgan-gp --epochs 20
    python -m minigan.train --data ~/photos/bicycles --image-size 64 --out runs/bikes
    python -m minigan.train --resume runs/bikes           # carry on after a crash, Ctrl-C or a sleep
    python -m minigan.train --model classifier --data cifar10 --epochs 10

A run folder holds config.json, metrics.jsonl, samples/ (grids from a fixed
noise batch), progress.gif, losses.png and checkpoints/ (latest.npz and one
per epoch). See `--help` for every flag.
"""
import argparse
import datetime
import glob
import json
import math
import os
import platform
import re
import shutil
import signal
import sys
import time

import numpy as np

import minigan as mg
from . import backend, checkpoint, runlog
from . import random as mgr
from .gan.trainer import ClassifierTrainer, GANTrainer, NonFiniteLoss, count_correct, wgan_critic_iters

PROG = 'minigan-train'
DATASETS = ('synth', 'svhn', 'mnist', 'fashion-mnist', 'cifar10')
MODELS = ('dcgan', 'ralsgan', 'wgan', 'wgan-gp', 'classifier')
DEFAULT_LR = {'dcgan': 2e-4, 'ralsgan': 2e-4, 'wgan': 5e-5, 'wgan-gp': 1e-4, 'classifier': 1e-3}
DEFAULT_EPOCHS = 25
# The quick demo (--data synth with neither --epochs nor --max-steps): DCGAN-32 at half width
# (ngf = ndf = 32, a quarter of the FLOPs) for 6 epochs of the 50,000 synth images, 4,686 steps
# at batch 64: 5 min 38 s of wall time on an idle 2-core EPYC (2026-12-01). At full width 10 minutes
# buy some 2,000 steps, and its digits are still blobs; at half width 4,686 steps give clear ones.
QUICK_EPOCHS = 6
QUICK_WIDTH = 32
FULL_WIDTH = 64
N_FIXED = 64                           # fixed-noise samples per grid
DIVERSITY_WARN = 0.3                   # warn when samples are < 30 % as diverse as real images ...
DIVERSITY_WARMUP = 200                 # ... after this many steps
# flags that may change when a run is resumed (everything else comes from its config.json)
RESUME_OVERRIDES = ('epochs', 'max_steps', 'device', 'quiet', 'sample_every', 'checkpoint_every',
                    'log_every', 'data_dir', 'eval_every', 'eval_n', 'cuda_graph')


class UsageError(Exception):
    """A problem with the command line or the run folder: reported in one line, no traceback."""


class Interrupted(Exception):
    pass


# ---- command line --------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message):            # one line, no usage dump, exit status 2
        self.exit(2, f'{self.prog}: error: {message} (see --help)\n')


def build_parser(suppress_defaults=False):
    p = _Parser(prog=PROG, allow_abbrev=False,
                argument_default=argparse.SUPPRESS if suppress_defaults else None,
                formatter_class=argparse.RawDescriptionHelpFormatter,
                description='Train a GAN (DCGAN, RaLSGAN, WGAN, WGAN-GP) or the classifier-32 with minigan, '
                            'writing samples, metrics, plots and resumable checkpoints to a run folder.',
                epilog='examples:\n'
                       '  python -m minigan.train                     DCGAN on synth digits, under 10 min on 2 cores\n'
                       '  python -m minigan.train --data svhn --data-dir ../shared/data --model wgan-gp\n'
                       '  python -m minigan.train --data PATH/TO/IMAGES --image-size 64 --out runs/mine\n'
                       '  python -m minigan.train --resume runs/mine --epochs 40\n'
                       '  python -m minigan.train --model classifier --data cifar10 --epochs 10\n'
                       '  python -m minigan.sample RUN_DIR --n 64 --out grid.png   new samples from a run')

    def add(*names, default=None, **kw):
        if not suppress_defaults:
            kw['default'] = default
        p.add_argument(*names, **kw)

    add('--data', default='synth', metavar='NAME|PATH',
        help='training set: synth (built in, generated on first use), svhn, mnist, fashion-mnist, cifar10, '
             'or a folder of images (class sub-folders become labels) (default: synth)')
    add('--data-dir', default=None, metavar='DIR',
        help='where datasets are found, downloaded and cached (default: $MINIGAN_DATA, else a per-user '
             'cache folder)')
    add('--model', default='dcgan', choices=MODELS,
        help='dcgan: non-saturating GAN loss (BCE on logits); ralsgan: relativistic average least squares; '
             'wgan: weight clipping, RMSprop; wgan-gp: gradient penalty, critic without batch norm; '
             'classifier: classifier-32 with cross-entropy (default: dcgan)')
    add('--epochs', default=None, type=_positive_int, metavar='N',
        help=f'passes over the training set (default: {DEFAULT_EPOCHS}; with --data synth and neither '
             f'--epochs nor --max-steps given: {QUICK_EPOCHS}, the quick demo, which also takes '
             f'--ngf and --ndf {QUICK_WIDTH})')
    add('--max-steps', default=None, type=_positive_int, metavar='N',
        help='stop after this many steps (generator steps for GANs, batches for the classifier), even '
             'mid-epoch (default: no limit)')
    add('--batch-size', default=64, type=_positive_int, metavar='B', help='images per batch (default: 64)')
    add('--lr', default=None, type=_positive_float,
        help='learning rate (default: per model: dcgan and ralsgan 2e-4 with Adam betas (0.5, 0.999); '
             'wgan 5e-5 with RMSprop; wgan-gp 1e-4 with Adam betas (0.5, 0.9); classifier 1e-3 with Adam)')
    add('--image-size', default=32, type=int, choices=(32, 64),
        help='32: DCGAN-32 and classifier-32; 64: DCGAN-64 (the DCGAN paper\'s) (default: 32)')
    add('--device', default='auto', choices=('cpu', 'cuda', 'auto'),
        help='cpu (NumPy), cuda (CuPy on a GPU), or auto: cuda when a GPU is usable (default: auto)')
    add('--out', default=None, metavar='RUN_DIR',
        help='run folder to create (default: runs/MODEL-DATA-YYYYmmdd-HHMMSS)')
    add('--resume', default=None, metavar='RUN_DIR',
        help='continue the run in RUN_DIR from its latest checkpoint, with its settings; only --epochs, '
             '--max-steps, --device, --data-dir, --quiet, --sample-every, --checkpoint-every and '
             '--log-every may change (default: start a new run)')
    add('--seed', default=0, type=int, help='seed of weights, noise, shuffling and sampling (default: 0)')
    add('--sample-every', default=100, type=_positive_int, metavar='N',
        help='save a grid from the fixed noise batch every N steps, and at each epoch\'s end (default: 100)')
    add('--checkpoint-every', default=500, type=_positive_int, metavar='N',
        help='write checkpoints/latest.npz every N steps, and at each epoch\'s end (default: 500)')
    add('--quiet', default=False, action='store_true',
        help='no progress bar: a plain log line every --log-every steps and per epoch (default: off)')
    add('--log-every', default=50, type=_positive_int, metavar='N',
        help='steps between log lines with --quiet (default: 50)')
    add('--subset', default=None, type=_positive_int, metavar='N',
        help='train on the first N images only (default: all; see --epochs for the synth demo)')
    add('--crop-padding', default=0, type=_non_negative_int, metavar='P',
        help='random translations: pad each side of a training image by P pixels (black) and crop a '
             'random window of the original size; 4 is usual for the classifier on cifar10 (default: 0)')
    add('--lr-schedule', default='constant', choices=('constant', 'cosine'),
        help='constant: --lr throughout; cosine: from --lr down to 0 over the planned steps (those of '
             '--epochs, or --max-steps if fewer), following half a cosine; a --resume that changes them '
             'stretches or shrinks the rest of the curve (default: constant)')
    add('--eval-every', default=None, type=_positive_int, metavar='N',
        help='GANs: every N steps and at the end, score --eval-n samples with the metrics of '
             'python -m minigan.evaluate (fd, classifier_score, kid, modes, label_kl and their real-data '
             'floors), logged to metrics.jsonl and plotted to metrics.png; the first call trains and '
             'caches an evaluator classifier-32 on the run\'s data (default: off)')
    add('--cuda-graph', default=False, action='store_true',
        help='dcgan on --device cuda: capture the whole training step once as a CUDA graph and replay '
             'it, so a small model is not bound by kernel-launch overhead (minigan/cuda_graph.py) '
             '(default: off)')
    add('--eval-n', default=2000, type=_positive_int, metavar='N',
        help='generated samples per --eval-every evaluation (default: 2000)')
    add('--flip', default='auto', choices=('auto', 'on', 'off'),
        help='random horizontal flips of training images; auto: on for cifar10 and image folders, off for '
             'the digit sets, where a mirrored digit is not a digit (default: auto)')
    add('--labels-file', default=None, metavar='CSV',
        help='multi-label data for a folder --data: a CSV of file name then class names; the classifier '
             'then trains a sigmoid and binary cross-entropy per class (default: none, one label per image '
             'from its class sub-folder)')
    add('--nz', default=100, type=_positive_int, help='length of the noise vector z (default: 100)')
    add('--ngf', default=None, type=_positive_int,
        help=f'generator width (default: {FULL_WIDTH}, as in DCGAN-32 and DCGAN-64; {QUICK_WIDTH} in the quick '
             'synth demo, see --epochs)')
    add('--ndf', default=None, type=_positive_int,
        help=f'discriminator / critic width (default: {FULL_WIDTH}; {QUICK_WIDTH} in the quick synth demo)')
    add('--n-critic', default=5, type=_positive_int, metavar='N',
        help='critic steps per generator step for wgan and wgan-gp; wgan takes 100 for the first 25 '
             'generator steps and every 500th (default: 5)')
    add('--clip', default=0.01, type=_positive_float,
        help='wgan: critic weights are clipped to [-CLIP, CLIP] after every critic step (default: 0.01)')
    add('--gp-weight', default=10.0, type=_positive_float,
        help='wgan-gp: weight lambda of the gradient penalty (default: 10)')
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


def _check_data_name(name):
    key = str(name).lower()
    if key in DATASETS or key in ('fashion_mnist', 'cifar-10'):
        return
    if os.path.exists(os.path.expanduser(str(name))):
        return
    raise UsageError(f'unknown dataset {name!r}: use one of {", ".join(DATASETS)} or the path of a folder '
                     'of images')


def _is_digits(name):
    return str(name).lower() in ('synth', 'svhn', 'mnist')


def config_from_args(args):
    """Every setting of a new run, defaults resolved (what config.json records)."""
    _check_data_name(args.data)
    cfg = {k: v for k, v in vars(args).items() if k not in ('resume',)}
    cfg['lr'] = args.lr if args.lr is not None else DEFAULT_LR[args.model]
    quick = args.data == 'synth' and args.epochs is None and args.max_steps is None
    cfg['epochs'] = args.epochs if args.epochs is not None else (QUICK_EPOCHS if quick else DEFAULT_EPOCHS)
    for width in ('ngf', 'ndf'):
        if cfg[width] is None:
            cfg[width] = QUICK_WIDTH if quick else FULL_WIDTH
    if cfg['flip'] == 'auto':
        cfg['flip'] = 'off' if _is_digits(args.data) else 'on'
    if args.labels_file is not None and str(args.data).lower() in DATASETS:
        raise UsageError('--labels-file goes with a folder of images as --data')
    if args.cuda_graph and (args.model != 'dcgan' or args.device == 'cpu'):
        raise UsageError('--cuda-graph needs --device cuda (a GPU) and --model dcgan')
    if args.model == 'classifier' and args.image_size != 32:
        raise UsageError('the classifier is classifier-32: use --image-size 32')
    cfg['optimizer'] = optimizer_settings(cfg['model'], cfg['lr'])
    return cfg


def optimizer_settings(model, lr):
    if model in ('dcgan', 'ralsgan'):
        return {'name': 'Adam', 'lr': lr, 'betas': [0.5, 0.999]}
    if model == 'wgan':
        return {'name': 'RMSprop', 'lr': lr, 'alpha': 0.99, 'eps': 1e-8}
    if model == 'wgan-gp':
        return {'name': 'Adam', 'lr': lr, 'betas': [0.5, 0.9]}
    return {'name': 'Adam', 'lr': lr, 'betas': [0.9, 0.999]}


def make_optimizer(settings, params):
    from . import optim
    s = dict(settings)
    name = s.pop('name')
    if 'betas' in s:
        s['betas'] = tuple(s['betas'])
    return getattr(optim, name)(params, **s)


def resolve_device(name):
    if name == 'auto':
        return 'cuda' if mg.cuda_available() else 'cpu'
    if name == 'cuda':
        backend.cupy_or_raise()               # a clear error when there is no GPU
    return name


# ---- models ------------------------------------------------------------------------------
def build_generator(cfg, nc):
    from .models import Generator32, Generator64
    cls = Generator32 if cfg['image_size'] == 32 else Generator64
    return cls(nz=cfg['nz'], ngf=cfg['ngf'], nc=nc)


def build_discriminator(cfg, nc):
    from .models import Discriminator32, Discriminator64
    cls = Discriminator32 if cfg['image_size'] == 32 else Discriminator64
    return cls(nc=nc, ndf=cfg['ndf'], batch_norm=cfg['model'] != 'wgan-gp')


def build_classifier(cfg, nc, n_classes):
    from .models import Classifier32
    return Classifier32(nc=nc, n_classes=n_classes)


def generate(G, z, chunk=None):
    """G(z) with batch statistics, without a graph and without touching G's running statistics."""
    saved = [(b, b.array.copy()) for b in G.buffers()]
    was_training = G.training
    G.train()
    try:
        with mg.no_grad():
            out = G(z)
    finally:
        for b, data in saved:
            b.array = data
        G.train(was_training)
    return out


# ---- batches -----------------------------------------------------------------------------
class Stream:
    """Epoch after epoch of batches from a DataLoader, with a position that checkpoints can restore.

    The DataLoader draws each epoch's order and each batch's flips from counter-based seeds
    (seed, epoch, batch), so its state_dict() (seed, epoch, batch) is all it takes to continue."""

    def __init__(self, loader, endless=False):
        self.loader, self.endless = loader, endless
        self.batch_size = loader.batch_size
        self.length = len(loader)
        self.active, self.pos, self._it = False, 0, None

    def start_epoch(self):
        self._it = iter(self.loader)
        self.active, self.pos = True, self.loader.state_dict()['batch']

    def remaining(self):
        return self.length - self.pos if self.active else 0

    def next(self):
        if self.endless and self.remaining() == 0:
            self.start_epoch()
        if not self.active or self.pos >= self.length:
            raise RuntimeError('internal: the epoch has no batches left')
        batch = next(self._it)
        self.pos += 1
        return batch

    def finish_epoch(self):
        if self._it is not None and hasattr(self._it, 'close'):
            self._it.close()
        self.active, self._it = False, None

    def state(self):
        return {'active': self.active, 'pos': self.pos, 'loader': self.loader.state_dict()}

    def restore(self, st):
        self.finish_epoch()
        self.loader.load_state_dict(st['loader'])
        if st['active']:
            self.start_epoch()                      # the loader resumes at the saved batch
            if self.pos != st['pos']:
                raise checkpoint.CheckpointError(f'the data position in the checkpoint (batch {st["pos"]}) '
                                                 f'does not match the loader state {st["loader"]}')


class Source:
    """What a training step draws from: the epoch's batches, plus fresh ones for RaLSGAN's G step."""

    def __init__(self, stream, fresh_stream=None):
        self.stream, self.fresh_stream = stream, fresh_stream
        self.batch_size = stream.batch_size

    def remaining(self):
        return self.stream.remaining()

    def next(self):
        return self.stream.next()

    def fresh(self):
        return self.fresh_stream.next()


# ---- the run -----------------------------------------------------------------------------
def _fmt_time(s):
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f'{h}h{m:02d}m{sec:02d}s' if h else f'{m}m{sec:02d}s'


class Run:
    def __init__(self, cfg, run_dir, resume=False):
        self.cfg, self.run_dir, self.resuming = cfg, run_dir, resume
        self.quiet = cfg['quiet']
        self.gan = cfg['model'] != 'classifier'
        self.interrupt_requested = False
        self._bar = None

    # -- printing --
    def say(self, msg):
        if self._bar is not None:
            self._bar.write(msg)
        else:
            print(msg, flush=True)

    def warn(self, msg):
        if self._bar is not None:
            self._bar.write('warning: ' + msg, file=sys.stderr)
        else:
            print('warning: ' + msg, file=sys.stderr, flush=True)

    # -- setup --
    def setup(self):
        from .data import DataLoader, load_dataset
        cfg = self.cfg
        self.device = resolve_device(cfg['device'])
        mg.manual_seed(cfg['seed'])
        options = {}
        if str(cfg['data']).lower() == 'synth' and cfg.get('subset'):
            options['n'] = cfg['subset']               # generate only what is used
        if cfg.get('labels_file'):
            options['labels_file'] = cfg['labels_file']
        ds = load_dataset(cfg['data'], root=cfg['data_dir'], split='train', download=True,
                          image_size=cfg['image_size'], **options)
        if cfg.get('subset') and cfg['subset'] < len(ds):
            ds = ds.subset(slice(0, cfg['subset']))
        if len(ds) < cfg['batch_size']:
            raise UsageError(f'the training set has {len(ds)} images, fewer than one batch of '
                             f'{cfg["batch_size"]}: lower --batch-size')
        self.ds = ds
        self.nc = ds.image_shape[0]
        self.multi_label = bool(getattr(ds, 'multilabel', False))
        flip = cfg['flip'] == 'on'
        # no background thread on the CPU: a concurrent thread changes how many threads the BLAS
        # uses for a product, hence the rounding, and resumed runs would drift from straight ones
        prefetch = 0 if self.device == 'cpu' else 2
        crop = cfg.get('crop_padding', 0)
        loader = DataLoader(ds, batch_size=cfg['batch_size'], shuffle=True, drop_last=True, flip=flip,
                            crop_padding=crop, device=self.device, seed=cfg['seed'], prefetch=prefetch)
        self.stream = Stream(loader)
        fresh = None
        if cfg['model'] == 'ralsgan':
            fresh = Stream(DataLoader(ds, batch_size=cfg['batch_size'], shuffle=True, drop_last=True,
                                      flip=flip, crop_padding=crop, device=self.device,
                                      seed=cfg['seed'] + 7919, prefetch=prefetch),
                           endless=True)
        self.fresh_stream = fresh
        self.source = Source(self.stream, fresh)
        if self.gan:
            self.G = build_generator(cfg, self.nc).to(self.device)
            self.D = build_discriminator(cfg, self.nc).to(self.device)
            self.opt_g = make_optimizer(cfg['optimizer'], self.G.parameters())
            self.opt_d = make_optimizer(cfg['optimizer'], self.D.parameters())
            self.trainer = GANTrainer(cfg['model'], self.G, self.D, self.opt_g, self.opt_d, nz=cfg['nz'],
                                      clip_value=cfg['clip'], n_critic=cfg['n_critic'],
                                      gp_weight=cfg['gp_weight'])
            if cfg.get('cuda_graph'):
                if self.device != 'cuda' or cfg['model'] != 'dcgan':
                    raise UsageError('--cuda-graph needs --device cuda (a GPU) and --model dcgan')
                from .cuda_graph import GraphedGANStep
                self.trainer = GraphedGANStep(self.trainer, cfg['batch_size'])
            noise = np.random.default_rng([cfg['seed'], 1]).standard_normal((N_FIXED, cfg['nz'], 1, 1))
            self.fixed_noise = mg.tensor(noise.astype(np.float32)).to(self.device)
            ref = ds.images[:N_FIXED].astype(np.float64) / 127.5 - 1.0
            self.real_diversity = runlog.mean_pairwise_distance(ref)
            self.loss_keys = ['loss_d', 'loss_g']
            self.optimizers = [self.opt_g, self.opt_d]
        else:
            self.n_classes = ds.num_classes
            self.net = build_classifier(cfg, self.nc, self.n_classes).to(self.device)
            self.opt = make_optimizer(cfg['optimizer'], self.net.parameters())
            self.trainer = ClassifierTrainer(self.net, self.opt, self.multi_label)
            self.test_ds = self._test_set(load_dataset, ds)
            self.test_loader = DataLoader(self.test_ds, batch_size=256, shuffle=False, drop_last=False,
                                          flip=False, device=self.device, seed=0, prefetch=prefetch)
            self.loss_keys = ['loss']
            self.optimizers = [self.opt]
        self.steps_per_epoch = len(loader)
        self.planned = self._planned_steps()
        self.dataset_info = {'name': getattr(ds, 'name', str(cfg['data'])), 'images': len(ds),
                             'image_shape': list(ds.image_shape), 'classes': len(ds.classes),
                             'multi_label': self.multi_label, 'steps_per_epoch': self.steps_per_epoch,
                             'planned_steps': self.planned}
        self.scorer = None
        if cfg.get('eval_every'):
            if not self.gan:
                raise UsageError('--eval-every scores a generator\'s samples: it goes with a GAN --model '
                                 '(the classifier logs its test accuracy every epoch)')
            from .evaluate import TrainingEvaluator
            # built after the models: training the evaluator keeps minigan's random state as it was
            self.scorer = TrainingEvaluator(dict(cfg, dataset=self.dataset_info), n=cfg['eval_n'],
                                            device=self.device, root=cfg['data_dir'], say=self.say)

    def _test_set(self, load_dataset, train_ds):
        cfg = self.cfg
        try:
            options = {}
            if str(cfg['data']).lower() == 'synth':          # a test set in proportion to --subset
                options['n'] = min(2000, cfg['subset']) if cfg.get('subset') else 2000
            if cfg.get('labels_file'):
                options['labels_file'] = cfg['labels_file']
            return load_dataset(cfg['data'], root=cfg['data_dir'], split='test', download=True,
                                image_size=cfg['image_size'], **options)
        except Exception as e:                              # no test split: hold out nothing, say so
            self.warn(f'no test split for {cfg["data"]} ({e}); test accuracy is measured on the training set')
            return train_ds

    def _planned_steps(self):
        cfg, n = self.cfg, self.steps_per_epoch
        if cfg['model'] in ('wgan', 'wgan-gp'):
            total, g = 0, 0
            for _ in range(cfg['epochs']):
                left = n
                while left > 0:
                    k = wgan_critic_iters(g, cfg['n_critic']) if cfg['model'] == 'wgan' else cfg['n_critic']
                    left -= min(k, left)
                    g += 1
                    if cfg['max_steps'] and g >= cfg['max_steps']:
                        return g
            total = g
        else:
            total = cfg['epochs'] * n
        return min(total, cfg['max_steps']) if cfg['max_steps'] else total

    # -- state --
    def fresh_state(self):
        self.step, self.epoch = 0, 0                # steps done, epochs completed
        self.epoch_sums, self.epoch_steps = {}, 0
        self.elapsed = 0.0
        self.last_good = None                        # (path, step) of the newest checkpoint

    def state_dict(self):
        st = {'step': self.step, 'epoch': self.epoch, 'epoch_sums': dict(self.epoch_sums),
              'epoch_steps': self.epoch_steps, 'elapsed': self.elapsed,
              'rng': mgr.get_rng_state(), 'stream': self.stream.state(),
              'model': self.cfg['model'], 'version': mg.__version__}
        if self.fresh_stream is not None:
            st['fresh_stream'] = self.fresh_stream.state()
        if self.gan:
            st.update(G=self.G.state_dict(), D=self.D.state_dict(), opt_g=self.opt_g.state_dict(),
                      opt_d=self.opt_d.state_dict(), fixed_noise=self.fixed_noise.numpy())
        else:
            st.update(net=self.net.state_dict(), opt=self.opt.state_dict())
        return st

    def load_state(self, st):
        if st.get('model') != self.cfg['model']:
            raise UsageError(f'the checkpoint is of a {st.get("model")} run, config.json says {self.cfg["model"]}')
        if self.gan:
            self.G.load_state_dict(st['G'])
            self.D.load_state_dict(st['D'])
            self.opt_g.load_state_dict(st['opt_g'])
            self.opt_d.load_state_dict(st['opt_d'])
            self.fixed_noise = mg.tensor(st['fixed_noise']).to(self.device)
        else:
            self.net.load_state_dict(st['net'])
            self.opt.load_state_dict(st['opt'])
        self.step, self.epoch = int(st['step']), int(st['epoch'])
        self.epoch_sums, self.epoch_steps = dict(st['epoch_sums']), int(st['epoch_steps'])
        self.elapsed = float(st['elapsed'])
        self.stream.restore(st['stream'])
        if self.fresh_stream is not None:
            self.fresh_stream.restore(st['fresh_stream'])
        mgr.set_rng_state(st['rng'])

    def _check_weights_finite(self):
        nets = [self.G, self.D] if self.gan else [self.net]
        for net in nets:
            for name, p in net.named_parameters():
                xp = backend.get_array_module(p.array)
                if not bool(xp.isfinite(p.array).all()):
                    raise NonFiniteLoss(f'weight {name}', 'not finite')

    def save_checkpoint(self, epoch_file=False):
        """latest.npz (and epoch_NNN.npz): never with broken weights, never half-written."""
        self._check_weights_finite()
        st = self.state_dict()
        path = checkpoint.save(checkpoint.latest_path(self.run_dir), st)
        if epoch_file:
            checkpoint.save(checkpoint.epoch_path(self.run_dir, self.epoch), st)
        self.last_good = (path, self.step)
        return path

    # -- outputs --
    def sample_grid(self, name):
        from .data import save_grid
        images = generate(self.G, self.fixed_noise)
        path = os.path.join(self.run_dir, 'samples', name)
        save_grid(images, path, nrow=8)
        ratio = runlog.mean_pairwise_distance(images.numpy()) / max(self.real_diversity, 1e-12)
        if self.step >= DIVERSITY_WARMUP and ratio < DIVERSITY_WARN:
            self.warn(f'possible mode collapse at step {self.step}: the fixed-noise samples are only '
                      f'{ratio:.2f} times as diverse as real images (mean pairwise distance); '
                      f'look at {path}')
        return ratio

    def write_plots(self, animation=True):
        """losses.png (and metrics.png with --eval-every); progress.gif too unless animation=False."""
        steps = [r for r in self.records if r.get('type') == 'step']
        epochs = [r for r in self.records if r.get('type') == 'epoch']
        title = f'{self.cfg["model"]} on {self.dataset_info["name"]}'
        runlog.plot_losses(steps, epochs, self.loss_keys, os.path.join(self.run_dir, 'losses.png'),
                           title=title)
        if self.scorer is not None:
            from .evaluate import plot_metric_history
            evals = [r for r in self.records if r.get('type') == 'eval']
            if evals:
                plot_metric_history(evals, os.path.join(self.run_dir, 'metrics.png'), title=title)
        if self.gan and animation:
            frames = sorted(glob.glob(os.path.join(self.run_dir, 'samples', 'step_*.png')))
            if frames:
                runlog.make_gif(frames, os.path.join(self.run_dir, 'progress.gif'))

    def _apply_lr_schedule(self):
        """The learning rate of the coming step: --lr, or --lr times (1 + cos(pi t / T)) / 2 at step t of T."""
        if self.cfg.get('lr_schedule', 'constant') == 'constant':
            return
        t = min(self.step / max(self.planned, 1), 1.0)
        lr = self.cfg['lr'] * 0.5 * (1.0 + math.cos(math.pi * t))
        for opt in self.optimizers:
            for group in opt.param_groups:
                group['lr'] = lr

    def score_samples(self):
        """--eval-every: the sample-quality metrics of G now, as an 'eval' line of metrics.jsonl."""
        t0 = time.perf_counter()
        record = {'type': 'eval', 'epoch': self.epoch + 1, 'step': self.step}
        record.update(self.scorer(self.G))
        record['eval_time'] = time.perf_counter() - t0
        self.log(record)
        body = ' '.join(f'{k} {record[k]:.4g}' for k in ('fd', 'kid', 'classifier_score', 'modes', 'label_kl'))
        self.say(f'eval at step {self.step}: {body} (floor: fd {record["fd_floor"]:.4g}, '
                 f'kid {record["kid_floor"]:.4g})')

    def log(self, record):
        self.records.append(record)
        self.metrics.write(record)

    # -- the loop --
    def run(self):
        os.makedirs(os.path.join(self.run_dir, 'samples'), exist_ok=True)
        checkpoint.remove_stale_temporaries(self.run_dir)
        metrics_path = os.path.join(self.run_dir, 'metrics.jsonl')
        if self.resuming:
            path = checkpoint.find_latest(self.run_dir)
            if path is None:
                raise UsageError(f'{self.run_dir} has no checkpoint to resume from')
            self.fresh_state()
            self.load_state(checkpoint.load(path))
            self.last_good = (path, self.step)
            for f in glob.glob(os.path.join(self.run_dir, 'samples', 'step_*.png')):
                m = re.search(r'step_(\d+)', f)
                if m and int(m.group(1)) > self.step:
                    os.remove(f)                  # grids a crashed run drew after its checkpoint
            self.metrics = runlog.MetricsLog(metrics_path, resume_step=self.step)
            self.records = runlog.read_jsonl(metrics_path)
            self.say(f'resuming {self.run_dir} from {path} at step {self.step} (epoch {self.epoch + 1})')
        else:
            self.fresh_state()
            self.metrics = runlog.MetricsLog(metrics_path)
            self.records = []
        self.write_config()
        if self._finished():
            self.say(f'{self.run_dir} already finished at step {self.step}: raise --epochs or --max-steps '
                     'to train further')
            return 0
        old_handler = signal.getsignal(signal.SIGINT)
        try:
            signal.signal(signal.SIGINT, self._on_sigint)
        except ValueError:                        # not the main thread: Ctrl-C stays a KeyboardInterrupt
            old_handler = None
        try:
            return self._loop()
        finally:
            if old_handler is not None:
                signal.signal(signal.SIGINT, old_handler)
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            self.metrics.close()

    def _on_sigint(self, signum, frame):
        if self.interrupt_requested:
            raise KeyboardInterrupt
        self.interrupt_requested = True
        self.say('\nCtrl-C: finishing this step, then saving a checkpoint (press Ctrl-C again to quit at once)')

    def write_config(self):
        cfg = dict(self.cfg)
        cfg['version'] = mg.__version__
        cfg['resolved_device'] = self.device
        cfg['dataset'] = self.dataset_info
        cfg['numpy'] = np.__version__
        cfg['python'] = platform.python_version()
        cfg['run_dir'] = os.path.abspath(self.run_dir)
        path = os.path.join(self.run_dir, 'config.json')
        with open(path + '.tmp', 'w', encoding='utf-8') as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write('\n')
        os.replace(path + '.tmp', path)

    def _finished(self):
        return self.epoch >= self.cfg['epochs'] or (self.cfg['max_steps'] and self.step >= self.cfg['max_steps'])

    def _progress_bar(self):
        if self.quiet:
            return None
        try:
            from tqdm import tqdm
        except ImportError:
            return None
        return tqdm(total=self.planned, initial=self.step, unit='step', dynamic_ncols=True,
                    desc=f'epoch {self.epoch + 1}/{self.cfg["epochs"]}', file=sys.stderr)

    def _loop(self):
        cfg = self.cfg
        self._bar = self._progress_bar()
        what = 'GAN' if self.gan else 'classifier'
        self.say(f'training {cfg["model"]} ({what}) on {self.dataset_info["name"]}: {len(self.ds)} images '
                 f'{"x".join(map(str, self.ds.image_shape))}, {self.steps_per_epoch} batches of '
                 f'{cfg["batch_size"]} per epoch, {self.planned} steps planned, device {self.device}; '
                 f'run folder {self.run_dir}')
        t_run = time.perf_counter()
        t_images = 0
        while not self._finished():
            if not self.stream.active:
                self.stream.start_epoch()
            self._apply_lr_schedule()
            t0 = time.perf_counter()
            try:
                m = self.trainer.step(self.source, self.step)
            except NonFiniteLoss as e:
                return self._non_finite(e, self.step + 1)
            dt = time.perf_counter() - t0
            self.step += 1
            self.elapsed += dt
            images = m.pop('real_images')
            t_images += images
            record = {'type': 'step', 'epoch': self.epoch + 1, 'step': self.step}
            record.update(m)
            record.update(lr=self.optimizers[0].param_groups[0]['lr'], step_time=dt,
                          images_per_s=images / dt if dt > 0 else 0.0, elapsed=self.elapsed)
            for k, v in m.items():
                self.epoch_sums[k] = self.epoch_sums.get(k, 0.0) + v
            self.epoch_steps += 1
            if self.gan and self.step % cfg['sample_every'] == 0:
                record['diversity'] = self.sample_grid(f'step_{self.step:06d}.png')
            self.log(record)
            self._report(record)
            epoch_done = self.stream.remaining() == 0
            if epoch_done:
                try:
                    self._end_epoch()
                except NonFiniteLoss as e:
                    return self._non_finite(e, self.step)
            elif self.step % cfg['checkpoint_every'] == 0:
                try:
                    self.save_checkpoint()
                except NonFiniteLoss as e:
                    return self._non_finite(e, self.step)
            if self.scorer is not None and self.step % cfg['eval_every'] == 0:
                self.score_samples()
            if self.step % cfg['sample_every'] == 0 and self.gan:
                self.write_plots(animation=False)          # the animation is redrawn once per epoch
            if self.interrupt_requested:
                path = self.save_checkpoint()
                self._close_outputs()
                self.say(f'interrupted at step {self.step}: checkpoint saved to {path}; '
                         f'continue with: python -m minigan.train --resume {self.run_dir}')
                return 0
        wall = time.perf_counter() - t_run
        if self.scorer is not None and self.step % cfg['eval_every'] != 0:
            self.score_samples()                      # the finished generator is always scored
        if self.step != (self.last_good[1] if self.last_good else -1):
            self.save_checkpoint()
        self._close_outputs()
        rate = t_images / wall if wall > 0 else 0.0
        self.say(f'done: {self.step} steps, {self.epoch} epochs complete, {wall:.0f} s this session '
                 f'({rate:.0f} images/s); outputs in {self.run_dir}')
        return 0

    def _close_outputs(self):
        if self.gan:
            last = os.path.join(self.run_dir, 'samples', f'step_{self.step:06d}.png')
            if not os.path.exists(last):
                self.sample_grid(f'step_{self.step:06d}.png')
        else:
            self.confusion()
        self.write_plots()

    def _report(self, record):
        keys = [k for k in ('loss_d', 'loss_g', 'loss', 'acc', 'd_x', 'wasserstein', 'gp') if k in record]
        if self._bar is not None:
            self._bar.set_description(f'epoch {record["epoch"]}/{self.cfg["epochs"]}', refresh=False)
            post = {k: f'{record[k]:.3f}' for k in keys}
            post['img/s'] = f'{record["images_per_s"]:.0f}'
            self._bar.set_postfix(post, refresh=False)
            self._bar.update(1)
        elif self.step % self.cfg['log_every'] == 0 or self.step == 1:
            left = (self.planned - self.step) * self.elapsed / max(self.step, 1)
            body = ' '.join(f'{k} {record[k]:.4f}' for k in keys)
            self.say(f'epoch {record["epoch"]}/{self.cfg["epochs"]} step {self.step}/{self.planned} {body} '
                     f'| {record["images_per_s"]:.0f} img/s | eta {_fmt_time(left)}')

    def _end_epoch(self):
        cfg = self.cfg
        self.epoch += 1
        self.stream.finish_epoch()
        rec = {'type': 'epoch', 'epoch': self.epoch, 'step': self.step, 'steps': self.epoch_steps}
        rec.update({k: v / max(self.epoch_steps, 1) for k, v in self.epoch_sums.items()})
        if self.gan:
            name = f'step_{self.step:06d}.png'
            if self.step % cfg['sample_every'] == 0:          # this step's grid is already drawn
                rec['diversity'] = self.records[-1].get('diversity')
            else:
                rec['diversity'] = self.sample_grid(name)
            shutil.copyfile(os.path.join(self.run_dir, 'samples', name),
                            os.path.join(self.run_dir, 'samples', f'epoch_{self.epoch:03d}.png'))
        else:
            rec['train_acc'] = rec.pop('acc', None)
            rec['test_acc'] = self.evaluate()
        self.log(rec)
        self.epoch_sums, self.epoch_steps = {}, 0
        self.save_checkpoint(epoch_file=True)
        self.write_plots()
        body = ' '.join(f'{k} {v:.4f}' for k, v in rec.items()
                        if k not in ('type', 'epoch', 'step', 'steps') and isinstance(v, float))
        self.say(f'epoch {self.epoch}/{cfg["epochs"]} done at step {self.step}: {body}')
        if self._bar is not None and self.epoch < cfg['epochs']:
            self._bar.set_description(f'epoch {self.epoch + 1}/{cfg["epochs"]}')

    def _non_finite(self, e, step):
        if self.last_good:
            where = f'the last good checkpoint is {self.last_good[0]} (step {self.last_good[1]})'
        else:
            where = 'no checkpoint was written yet'
        msg = (f'{PROG}: error: {e.name} became {e.value} at step {step} (epoch {self.epoch + 1}); '
               f'stopped without saving the broken weights; {where}. Try a lower --lr, then --resume.')
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        print(msg, file=sys.stderr, flush=True)
        try:
            self.write_plots()
        except Exception:
            pass
        return 3

    # -- classifier evaluation --
    def _predict(self):
        logits, labels = [], []
        self.net.eval()
        try:
            with mg.no_grad():
                for x, y in self.test_loader:
                    logits.append(self.net(x).numpy())
                    labels.append(y.numpy())
        finally:
            self.net.train()
        return np.concatenate(logits), np.concatenate(labels)

    def evaluate(self):
        z, y = self._predict()
        correct, count = count_correct(mg.tensor(z), mg.tensor(y), self.multi_label)
        return correct / max(count, 1)

    def confusion(self):
        z, y = self._predict()
        classes = list(self.ds.classes)
        acc = count_correct(mg.tensor(z), mg.tensor(y), self.multi_label)
        acc = acc[0] / max(acc[1], 1)
        if self.multi_label:
            pred, truth = z > 0, y > 0.5
            matrix = np.stack([(pred & truth).sum(0), (pred & ~truth).sum(0),
                               (~pred & truth).sum(0), (~pred & ~truth).sum(0)], axis=1)
            cols = ['TP', 'FP', 'FN', 'TN']
            title = f'per-class counts on {self.test_ds.split or "test"} data (label accuracy {acc:.2%})'
        else:
            matrix = runlog.confusion_matrix(y, z.argmax(axis=1), len(classes))
            cols = classes
            title = f'confusion matrix on {self.test_ds.split or "test"} data (accuracy {acc:.2%})'
        with open(os.path.join(self.run_dir, 'confusion.txt'), 'w', encoding='utf-8') as f:
            f.write(runlog.confusion_text(matrix, classes, cols, title))
        runlog.draw_matrix(matrix, classes, cols, os.path.join(self.run_dir, 'confusion.png'), title,
                           xlabel='predicted' if not self.multi_label else '', ylabel='true')


# ---- entry point ---------------------------------------------------------------------------
def _default_run_dir(cfg):
    name = os.path.basename(os.path.normpath(str(cfg['data']))) or 'data'
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    return os.path.join('runs', f'{cfg["model"]}-{name}-{stamp}')


def _resume_config(args, argv):
    run_dir = args.resume
    path = os.path.join(run_dir, 'config.json')
    if not os.path.isfile(path):
        raise UsageError(f'cannot resume {run_dir}: it has no config.json (is it a minigan run folder?)')
    with open(path, encoding='utf-8') as f:
        cfg = json.load(f)
    given = vars(build_parser(suppress_defaults=True).parse_args(argv))
    given.pop('resume', None)
    if 'out' in given and os.path.abspath(given['out']) != os.path.abspath(run_dir):
        raise UsageError('--resume continues a run in its own folder: leave out --out')
    given.pop('out', None)
    for key, value in given.items():
        if key in RESUME_OVERRIDES:
            cfg[key] = value
        elif cfg.get(key) != value:
            raise UsageError(f'--{key.replace("_", "-")} cannot change when resuming (the run used '
                             f'{cfg.get(key)!r}); only --{", --".join(k.replace("_", "-") for k in RESUME_OVERRIDES)} can')
    for k in ('version', 'resolved_device', 'dataset', 'numpy', 'python', 'run_dir'):
        cfg.pop(k, None)
    return cfg, run_dir


def main(argv=None):
    """The `minigan-train` command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    debug = bool(os.environ.get('MINIGAN_DEBUG'))
    try:
        if args.resume:
            cfg, run_dir = _resume_config(args, argv)
            resume = True
        else:
            cfg = config_from_args(args)
            run_dir = args.out or _default_run_dir(cfg)
            if os.path.exists(os.path.join(run_dir, 'metrics.jsonl')) or checkpoint.find_latest(run_dir):
                raise UsageError(f'{run_dir} already holds a run: continue it with --resume {run_dir}, '
                                 'or choose another --out')
            resume = False
        os.makedirs(run_dir, exist_ok=True)
        run = Run(cfg, run_dir, resume)
        run.setup()
    except KeyboardInterrupt:
        print(f'{PROG}: interrupted before training started', file=sys.stderr)
        return 130
    except Exception as e:              # bad settings, missing data, no GPU: one line, no traceback
        if debug:
            raise
        print(f'{PROG}: error: {_one_line(e)}', file=sys.stderr)
        return 2 if isinstance(e, UsageError) else 1
    try:
        return run.run()
    except KeyboardInterrupt:
        print(f'{PROG}: interrupted twice: quit without saving; the last checkpoint is '
              f'{run.last_good[0] if run.last_good else "(none yet)"}', file=sys.stderr)
        return 130
    except (UsageError, checkpoint.CheckpointError) as e:
        if debug:
            raise
        print(f'{PROG}: error: {_one_line(e)}', file=sys.stderr)
        return 2


def _one_line(e):
    text = str(e).strip() or type(e).__name__
    return ' '.join(text.split())


if __name__ == '__main__':
    sys.exit(main())

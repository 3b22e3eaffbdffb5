"""Everything a run trains with, built from its config: the data, the networks, their optimisers, the step.

    setup = TrainingSetup(cfg)         # seeds minigan, loads the data, builds G and D (or the classifier)
    setup.trainer.step(setup.source, i)   # one training step (gan/trainer.py)
    state = setup.state_dict()         # weights, optimiser moments, data position, random state

The networks and data here are the ones of minigan.models and minigan.data; what a
run writes to disk is the business of run_recorder.py.
"""
import math
import sys

import numpy as np

from .. import __version__, optim
from ..checkpoint import CheckpointError, load_weights, require
from .. import random as mgr
from ..cuda_graph import GraphedGANStep
from ..data import DataLoader, load_dataset
from ..data.fingerprint import fingerprint
from ..gan.sampling import row_labels
from ..gan.sr_quality import comparison_rows, sr_quality
from ..gan.sr_trainer import SRTrainer, classifier_features
from ..gan.trainer import ClassifierTrainer, GANTrainer, count_correct, wgan_critic_iters
from ..models import (build_classifier, build_discriminator, build_generator, build_sr_discriminator,
                      build_upscaler)
from ..run_config import GAN_MODELS, UsageError, resolve_device
from ..run_folder import RunFolderError, load_run_model
from ..runlog import mean_pairwise_distance
from ..tensor import tensor
from ..autograd import no_grad
from . import data_parallel
from .batches import Source, Stream

N_FIXED = 64                           # fixed-noise samples per grid
N_SR_HELD_OUT = 256                    # held-out images of the per-epoch PSNR / SSIM
OPTIMIZERS = {'Adam': optim.Adam, 'RMSprop': optim.RMSprop, 'SGD': optim.SGD}


def make_optimizer(settings, params):
    """The optimiser that config.json's 'optimizer' entry ({'name': 'Adam', 'lr': ..., ...}) describes."""
    s = dict(settings)
    cls = OPTIMIZERS[s.pop('name')]
    if 'betas' in s:
        s['betas'] = tuple(s['betas'])
    return cls(params, **s)


def training_set(cfg):
    """The run's training images: its --data, its --subset (synth generates only that many)."""
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
    return ds


def test_set(cfg, train_ds):
    """The classifier's test images; the training set (with a warning) when the data has no test split."""
    try:
        options = {}
        if str(cfg['data']).lower() == 'synth':          # a test set in proportion to --subset
            options['n'] = min(2000, cfg['subset']) if cfg.get('subset') else 2000
        if cfg.get('labels_file'):
            options['labels_file'] = cfg['labels_file']
        return load_dataset(cfg['data'], root=cfg['data_dir'], split='test', download=True,
                            image_size=cfg['image_size'], **options)
    except Exception as e:                              # no test split: hold out nothing, say so
        print(f'warning: no test split for {cfg["data"]} ({e}); test accuracy is measured on the '
              'training set', file=sys.stderr, flush=True)
        return train_ds


def planned_steps(cfg, steps_per_epoch):
    """Steps in the whole run: generator steps for GANs (a WGAN's critic steps use up batches), batches
    for the classifier; at most --max-steps."""
    n = steps_per_epoch
    if cfg['model'] in ('wgan', 'wgan-gp'):
        g = 0
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


class TrainingSetup:
    """The data streams, networks, optimisers and step object of a run (see the module docstring)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.gan = cfg['model'] in GAN_MODELS
        self.sr = cfg['model'] == 'sr'
        self.device = resolve_device(cfg['device'])
        if cfg.get('distributed'):
            data_parallel.use_device(self.device)
        mgr.manual_seed(cfg['seed'])
        self.ds = ds = training_set(cfg)
        self.nc = ds.image_shape[0]
        self.multi_label = bool(getattr(ds, 'multilabel', False))
        # no background thread on the CPU: a concurrent thread changes how many threads the BLAS
        # uses for a product, hence the rounding, and resumed runs would drift from straight ones
        prefetch = 0 if self.device == 'cpu' else 2
        batches = dict(batch_size=cfg['batch_size'], shuffle=True, drop_last=True, flip=cfg['flip'] == 'on',
                       crop_padding=cfg.get('crop_padding', 0), device=self.device, prefetch=prefetch)
        self.stream = Stream(DataLoader(ds, seed=cfg['seed'], **batches))
        self.fresh_stream = None
        if cfg['model'] == 'ralsgan':
            self.fresh_stream = Stream(DataLoader(ds, seed=cfg['seed'] + 7919, **batches), endless=True)
        self.source = Source(self.stream, self.fresh_stream)
        if self.gan:
            self._build_gan(cfg)
        elif self.sr:
            self._build_sr(cfg)
        else:
            self._build_classifier(cfg, prefetch)
        if cfg.get('distributed'):
            data_parallel.make_data_parallel(self, cfg)
        self.steps_per_epoch = len(self.stream.loader)
        self.planned = planned_steps(cfg, self.steps_per_epoch)
        self.dataset_info = {'name': getattr(ds, 'name', str(cfg['data'])), 'images': len(ds),
                             'image_shape': list(ds.image_shape), 'classes': len(ds.classes),
                             'multi_label': self.multi_label, 'steps_per_epoch': self.steps_per_epoch,
                             'planned_steps': self.planned, 'fingerprint': fingerprint(ds)}

    def _build_gan(self, cfg):
        self.num_classes = None
        if cfg.get('conditional'):
            if self.multi_label:
                raise UsageError('--conditional needs one class per image; this data is multi-label')
            self.num_classes = len(self.ds.classes)
        self.G = build_generator(cfg, self.nc, self.num_classes).to(self.device)
        self.D = build_discriminator(cfg, self.nc, self.num_classes).to(self.device)
        self.opt_g = make_optimizer(cfg['optimizer'], self.G.parameters())
        self.opt_d = make_optimizer(cfg['optimizer'], self.D.parameters())
        self.trainer = GANTrainer(cfg['model'], self.G, self.D, self.opt_g, self.opt_d, nz=cfg['nz'],
                                  clip_value=cfg['clip'], n_critic=cfg['n_critic'], gp_weight=cfg['gp_weight'],
                                  num_classes=self.num_classes)
        if cfg.get('cuda_graph'):
            if self.device != 'cuda' or cfg['model'] != 'dcgan':
                raise UsageError('--cuda-graph needs --device cuda (a GPU) and --model dcgan')
            self.trainer = GraphedGANStep(self.trainer, cfg['batch_size'])
        noise = np.random.default_rng([cfg['seed'], 1]).standard_normal((N_FIXED, cfg['nz'], 1, 1))
        self.fixed_noise = tensor(noise.astype(np.float32)).to(self.device)
        self.fixed_labels = None               # a conditional grid: row r shows class r mod num_classes
        if self.num_classes is not None:
            self.fixed_labels = tensor(row_labels(self.num_classes, N_FIXED).astype(np.int64)).to(self.device)
        ref = self.ds.images[:N_FIXED].astype(np.float64) / 127.5 - 1.0
        self.real_diversity = mean_pairwise_distance(ref)
        self.nets = {'G': self.G, 'D': self.D}
        self.loss_keys = ['loss_d', 'loss_g']
        self.optimizers = [self.opt_g, self.opt_d]

    def _build_sr(self, cfg):
        self.G = build_upscaler(cfg, self.nc).to(self.device)
        self.opt_g = make_optimizer(cfg['optimizer'], self.G.parameters())
        self.D = self.opt_d = None
        self.nets, self.optimizers = {'G': self.G}, [self.opt_g]
        if cfg['adversarial']:
            self.D = build_sr_discriminator(cfg, self.nc).to(self.device)
            self.opt_d = make_optimizer(cfg['optimizer'], self.D.parameters())
            self.nets['D'] = self.D
            self.optimizers.append(self.opt_d)
        self.trainer = SRTrainer(self.G, self.opt_g, cfg['scale'], cfg['content_loss'], self.D, self.opt_d,
                                 feature_weight=cfg['feature_weight'],
                                 adversarial_weight=cfg['adversarial_weight'])
        self.loss_keys = ['loss', 'loss_d'] if cfg['adversarial'] else ['loss']
        if self.ds.image_shape[1] % cfg['scale'] or self.ds.image_shape[2] % cfg['scale']:
            raise UsageError(f'--scale {cfg["scale"]} must divide the image size {self.ds.image_shape[1]}')
        held_out = test_set(cfg, self.ds)
        self.held_out = held_out.images[:N_SR_HELD_OUT]
        if cfg.get('feature_classifier'):
            self.use_feature_classifier(cfg['feature_classifier'])

    def use_feature_classifier(self, run_dir):
        """sr --adversarial: the feature loss looks through the classifier-32 of this classifier run."""
        try:
            net = load_run_model(run_dir, 'classifier', self.device)[0]
        except RunFolderError as e:
            raise UsageError(f'the feature classifier of --adversarial: {e}') from None
        self.trainer.features = classifier_features(net)

    def _build_classifier(self, cfg, prefetch):
        self.n_classes = self.ds.num_classes
        self.net = build_classifier(cfg, self.nc, self.n_classes).to(self.device)
        self.opt = make_optimizer(cfg['optimizer'], self.net.parameters())
        self.trainer = ClassifierTrainer(self.net, self.opt, self.multi_label)
        self.test_ds = test_set(cfg, self.ds)
        self.test_loader = DataLoader(self.test_ds, batch_size=256, shuffle=False, drop_last=False,
                                      flip=False, device=self.device, seed=0, prefetch=prefetch)
        self.nets = {'net': self.net}
        self.loss_keys = ['loss']
        self.optimizers = [self.opt]

    # ---- the learning rate --------------------------------------------------------------------
    def schedule_learning_rate(self, step):
        """The learning rate of the coming step: --lr, or --lr times (1 + cos(pi t / T)) / 2 at step t of T."""
        lr = self.cfg['lr']                     # constant (also after a --resume with a new --lr)
        if self.cfg.get('lr_schedule', 'constant') == 'cosine':
            t = min(step / max(self.planned, 1), 1.0)
            lr = self.cfg['lr'] * 0.5 * (1.0 + math.cos(math.pi * t))
        for opt in self.optimizers:
            for group in opt.param_groups:
                group['lr'] = lr

    def learning_rate(self):
        return self.optimizers[0].param_groups[0]['lr']

    # ---- what an epoch's line reports besides the mean losses --------------------------------------
    def epoch_report(self):
        """{} for a GAN; the classifier's test accuracy; an upscaler's PSNR / SSIM against bicubic."""
        if self.gan:
            return {}
        if self.sr:
            return {'quality': self.sr_quality()}
        return {'test_acc': self.test_accuracy()}

    def sr_quality(self):
        return sr_quality(self.G, self.held_out, self.cfg['scale'])

    def sr_comparison(self):
        """uint8 images of 3 rows of 8 held-out images: bicubic | the upscaler | original."""
        return comparison_rows(self.G, self.held_out[:8], self.cfg['scale'])

    # ---- the classifier on its test split -----------------------------------------------------
    def predict_test(self):
        """(logits, labels) of the classifier on the test split, as NumPy arrays."""
        logits, labels = [], []
        self.net.eval()
        try:
            with no_grad():
                for x, y in self.test_loader:
                    logits.append(self.net(x).numpy())
                    labels.append(y.numpy())
        finally:
            self.net.train()
        return np.concatenate(logits), np.concatenate(labels)

    def test_accuracy(self):
        z, y = self.predict_test()
        correct, count = count_correct(tensor(z), tensor(y), self.multi_label)
        return correct / max(count, 1)

    # ---- checkpoints --------------------------------------------------------------------------
    def state_dict(self):
        """Everything that a resumed run needs besides the step counters: random state, data position,
        weights, optimiser moments (and the fixed noise of the sample grids)."""
        st = {'rng': mgr.get_rng_state(), 'stream': self.stream.state(), 'model': self.cfg['model'],
              'version': __version__}
        if self.fresh_stream is not None:
            st['fresh_stream'] = self.fresh_stream.state()
        if self.gan:
            st.update(G=self.G.state_dict(), D=self.D.state_dict(), opt_g=self.opt_g.state_dict(),
                      opt_d=self.opt_d.state_dict(), fixed_noise=self.fixed_noise.numpy())
        elif self.sr:
            st.update(G=self.G.state_dict(), opt_g=self.opt_g.state_dict())
            if self.D is not None:
                st.update(D=self.D.state_dict(), opt_d=self.opt_d.state_dict())
        else:
            st.update(net=self.net.state_dict(), opt=self.opt.state_dict())
        return st

    def load_state_dict(self, st, path='the checkpoint'):
        """Restore a state_dict() read from `path`; one that does not fit is a CheckpointError naming it."""
        if self.gan:
            nets = ('G', 'D', 'opt_g', 'opt_d', 'fixed_noise')
        elif self.sr:
            nets = ('G', 'opt_g') + (('D', 'opt_d') if self.D is not None else ())
        else:
            nets = ('net', 'opt')
        require(st, ('model', 'stream', 'rng') + nets, path)
        if st.get('model') != self.cfg['model']:
            raise CheckpointError(f'{path} is of a {st.get("model")} run, config.json says {self.cfg["model"]}: '
                                  'use a checkpoint of this run')
        try:
            if self.gan:
                load_weights(self.G, st['G'], path, 'G')
                load_weights(self.D, st['D'], path, 'D')
                load_weights(self.opt_g, st['opt_g'], path, 'optimiser (G)')
                load_weights(self.opt_d, st['opt_d'], path, 'optimiser (D)')
                self.fixed_noise = tensor(st['fixed_noise']).to(self.device)
            elif self.sr:
                load_weights(self.G, st['G'], path, 'G')
                load_weights(self.opt_g, st['opt_g'], path, 'optimiser (G)')
                if self.D is not None:
                    load_weights(self.D, st['D'], path, 'D')
                    load_weights(self.opt_d, st['opt_d'], path, 'optimiser (D)')
            else:
                load_weights(self.net, st['net'], path, 'classifier')
                load_weights(self.opt, st['opt'], path, 'optimiser')
            self.stream.restore(st['stream'])
            if self.fresh_stream is not None:
                self.fresh_stream.restore(st['fresh_stream'])
            mgr.set_rng_state(st['rng'])
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise CheckpointError(f'{path} holds a training state that does not fit this run '
                                  f'({type(e).__name__}: {e}): use a checkpoint of this run') from e

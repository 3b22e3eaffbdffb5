"""Reading a run folder: what `python -m minigan.train` left on disk, loaded back.

    cfg = read_config(run_dir)                          # config.json: settings and facts of the run
    G = load_generator(run_dir, device='cpu')           # a GAN run's generator, latest checkpoint
    net, classes, shape, kind = load_run_model(run_dir) # its classifier (or a GAN run's discriminator)
    images, labels, classes = load_run_data(run_dir, 'test')

A run folder holds config.json, metrics.jsonl, samples/, checkpoints/ (see
checkpoint.py) and the plots. The networks are rebuilt from config.json by
minigan.models' builders and given the checkpoint's weights; building them
leaves minigan's random state as it was (keeping_random_state), so reading a run
in the middle of training another one does not change that one.
"""
import contextlib
import json
import os

from . import checkpoint
from .errors import NonFiniteError, UsageError
from . import random as mgr
from .data import load_dataset
from .models import build_classifier, build_discriminator, build_generator, build_upscaler


class RunFolderError(UsageError):
    """A run folder that cannot be read as asked: reported in one line (exit status 2)."""


def read_config(run_dir):
    """config.json of a run, as a dict."""
    path = os.path.join(run_dir, 'config.json')
    if not os.path.isfile(path):
        raise RunFolderError(f'{run_dir} has no config.json: give the folder of a run written by '
                             'python -m minigan.train')
    try:
        with open(path, encoding='utf-8') as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        raise RunFolderError(f'{path} cannot be read ({e}): restore it from a copy of the run') from e
    if not isinstance(cfg, dict) or 'model' not in cfg or 'dataset' not in cfg:
        raise RunFolderError(f'{path} is not the config.json of a minigan run that began training')
    return cfg


def load_state(run_dir, checkpoint_path=None):
    """(state, path): the run's newest usable checkpoint (or the one at checkpoint_path), loaded.
    Read without a lock: checkpoints are replaced atomically, so a run training now is safe to read.
    NaN or infinite weights are never used (NonFiniteError, exit status 3)."""
    if checkpoint_path is None:
        path, state = checkpoint.load_latest(run_dir)
        if path is None:
            raise RunFolderError(f'{run_dir} has no usable checkpoint yet (checkpoints/latest.npz): train it first')
        return state, path
    state = checkpoint.load(checkpoint_path)
    bad = checkpoint.non_finite(state)
    if bad:
        raise NonFiniteError(f'{checkpoint_path} holds NaN or infinite values ({", ".join(bad[:3])}): '
                             'nothing is drawn from it; leave out --checkpoint to use the newest good one')
    return state, checkpoint_path


def channels(cfg):
    """Colour channels of the run's images (1 or 3)."""
    return int(cfg['dataset']['image_shape'][0])


@contextlib.contextmanager
def keeping_random_state():
    """Run the block without changing minigan's random state (building a model draws its initial
    weights from it, even when a checkpoint replaces them), so loading or training an evaluator
    in the middle of a training run leaves that run as it would have been."""
    state = mgr.get_rng_state()
    try:
        yield
    finally:
        mgr.set_rng_state(state)


def load_generator(run_dir, device='cpu', checkpoint_path=None):
    """The generator of a GAN run, with its latest (or the given) checkpoint's weights; G.nz is set."""
    cfg = read_config(run_dir)
    if cfg['model'] in ('classifier', 'sr'):
        kind = 'classifier' if cfg['model'] == 'classifier' else 'super-resolution'
        raise RunFolderError(f'{run_dir} is a {kind} run: it has no generator; give the folder of a GAN run')
    st, path = load_state(run_dir, checkpoint_path)
    with keeping_random_state():
        G = build_generator(cfg, channels(cfg), int(cfg['dataset']['classes']))
    checkpoint.load_weights(G, checkpoint.require(st, ['G'], path)['G'], path, 'G')
    G.nz = int(cfg['nz'])
    return G.to(device)


def load_upscaler(run_dir, device='cpu', checkpoint_path=None):
    """(SRResNet in eval mode, config) of a super-resolution run, with its latest (or the given)
    checkpoint's weights."""
    cfg = read_config(run_dir)
    if cfg['model'] != 'sr':
        raise RunFolderError(f'{run_dir} is a {cfg["model"]} run, not a super-resolution one: give the '
                             'folder of a python -m minigan.train --model sr run')
    st, _ = load_state(run_dir, checkpoint_path)
    with keeping_random_state():
        G = build_upscaler(cfg, channels(cfg))
    G.load_state_dict(st['G'])
    return G.to(device).eval(), cfg


def load_run_model(run_dir, net='auto', device='cpu', checkpoint_path=None):
    """(model, class_names, image_shape, kind): a classifier run's network, or a GAN run's
    discriminator (kind 'D', whose one score is named 'real'); in eval mode, on `device`."""
    cfg = read_config(run_dir)
    st, path = load_state(run_dir, checkpoint_path)
    nc, shape = channels(cfg), tuple(cfg['dataset']['image_shape'])
    if cfg['model'] == 'classifier':
        if net == 'D':
            raise RunFolderError(f'{run_dir} is a classifier run: it has no discriminator')
        with keeping_random_state():
            model = build_classifier(cfg, nc, int(cfg['dataset']['classes']))
        checkpoint.load_weights(model, checkpoint.require(st, ['net'], path)['net'], path, 'classifier')
        names, kind = class_names(cfg), 'classifier'
    else:
        if net == 'classifier':
            raise RunFolderError(f'{run_dir} is a {cfg["model"]} run: use its discriminator (--net D)')
        if cfg['model'] == 'sr':
            raise RunFolderError(f'{run_dir} is a super-resolution run: it has no classifier or discriminator '
                                 'to look at')
        if cfg.get('conditional'):
            raise RunFolderError(f'{run_dir} is a conditional run: its discriminator judges an image with a '
                                 'class, D(x, y), not an image alone')
        with keeping_random_state():
            model = build_discriminator(cfg, nc, int(cfg['dataset']['classes']))
        checkpoint.load_weights(model, checkpoint.require(st, ['D'], path)['D'], path, 'D')
        names, kind = ['real'], 'D'
    return model.to(device).eval(), names, shape, kind


def class_names(cfg):
    """The class names of a run's data, in label order."""
    if str(cfg['data']).lower() in ('synth', 'svhn', 'mnist'):
        return [str(d) for d in range(10)]
    try:
        return list(load_run_data_cfg(cfg, 'train', n=1)[2])
    except Exception:
        return [str(i) for i in range(int(cfg['dataset']['classes']))]


def load_run_data_cfg(cfg, split='test', root=None, n=None):
    """(images uint8 NCHW, labels, class names) of the run's dataset, as the run loaded it
    (its --subset of the train split); at most n images; nothing is downloaded."""
    options = {}
    name = str(cfg['data'])
    if name.lower() == 'synth':
        default = (cfg.get('subset') or 50_000) if split == 'train' else 10_000
        options['n'] = n or default
    ds = load_dataset(name, root=root or cfg.get('data_dir'), split=split, download=False,
                      image_size=cfg['image_size'], channels=channels(cfg), **options)
    if split == 'train' and cfg.get('subset') and cfg['subset'] < len(ds):
        ds = ds.subset(slice(0, cfg['subset']))
    if n is not None and n < len(ds):
        ds = ds.subset(slice(0, n))
    return ds.images, ds.labels, list(ds.classes)


def load_run_data(run_dir, split='test', root=None, n=None):
    """load_run_data_cfg for a run folder; a dataset without a test split gives its train split."""
    cfg = read_config(run_dir)
    try:
        return load_run_data_cfg(cfg, split, root, n)
    except Exception:
        if split != 'test':
            raise
        return load_run_data_cfg(cfg, 'train', root, n)

"""The settings of a training run: every flag's default, resolved once, recorded in config.json.

    cfg = new_config({'model': 'wgan-gp', 'data': 'svhn'})     # the other settings take their defaults
    cfg = resume_config('runs/mine', {'epochs': 40})           # a run's own settings, with the few that may change

`python -m minigan.train` builds its flags from DEFAULTS; `minigan.evaluate` trains
its evaluator classifier from the same settings without going through the command line.
"""
import json
import os
import platform

import numpy as np

from . import __version__, backend
from .atomic import write_text
from .errors import UsageError

DATASETS = ('synth', 'svhn', 'mnist', 'fashion-mnist', 'cifar10', 'chars74k')
GAN_MODELS = ('dcgan', 'ralsgan', 'wgan', 'wgan-gp')
MODELS = GAN_MODELS + ('classifier', 'sr')
DEFAULT_LR = {'dcgan': 2e-4, 'ralsgan': 2e-4, 'wgan': 5e-5, 'wgan-gp': 1e-4, 'classifier': 1e-3, 'sr': 1e-4}
DEFAULT_EPOCHS = 25
# The quick demo (--data synth with neither --epochs nor --max-steps): DCGAN-32 at half width
# (ngf = ndf = 32, a quarter of the FLOPs) for 6 epochs of the 50,000 synth images, so that it
# draws clear digits in under 10 minutes on a 2-core CPU (the README gives the measured time).
QUICK_EPOCHS = 6
QUICK_WIDTH = 32
FULL_WIDTH = 64

# Every setting of a run, as the flags of `python -m minigan.train` set it (None: resolved in new_config).
DEFAULTS = {
    'data': 'synth', 'data_dir': None, 'model': 'dcgan', 'epochs': None, 'max_steps': None,
    'batch_size': 64, 'lr': None, 'image_size': 32, 'device': 'auto', 'out': None, 'resume': None,
    'seed': 0, 'sample_every': 100, 'checkpoint_every': 500, 'quiet': False, 'log_every': 50,
    'subset': None, 'crop_padding': 0, 'lr_schedule': 'constant', 'eval_every': None,
    'cuda_graph': False, 'eval_n': 2000, 'flip': 'auto', 'labels_file': None, 'nz': 100, 'ngf': None,
    'ndf': None, 'n_critic': 5, 'clip': 0.01, 'gp_weight': 10.0,
    'distributed': False, 'sync_bn': False, 'bucket_mb': None,
    'restart': False, 'allow_changed_data': False,
    'conditional': False, 'cond_d': 'projection', 'scale': 2, 'adversarial': False, 'content_loss': 'l1',
    'sr_channels': 32, 'sr_blocks': 4, 'feature_weight': 0.006, 'adversarial_weight': 1e-3, 'feature_classifier': None,
}
COND_D = ('projection', 'acgan')       # the conditional discriminators (models/conditional.py)
# flags about this invocation, not settings of the run (never in config.json)
SESSION_FLAGS = ('resume', 'restart', 'allow_changed_data')
# settings that may change when a run is resumed (everything else comes from its config.json)
RESUME_OVERRIDES = ('epochs', 'max_steps', 'device', 'quiet', 'sample_every', 'checkpoint_every',
                    'log_every', 'data_dir', 'eval_every', 'eval_n', 'cuda_graph', 'lr', 'distributed',
                    'bucket_mb')
# what config.json records besides the settings: facts about the run, not choices
FACTS = ('version', 'resolved_device', 'dataset', 'numpy', 'python', 'run_dir')


def _check_data_name(name):
    key = str(name).lower()
    if key in DATASETS or key in ('fashion_mnist', 'cifar-10'):
        return
    if os.path.exists(os.path.expanduser(str(name))):
        return
    raise UsageError(f'unknown dataset {name!r}: use one of {", ".join(DATASETS)} or the path of a folder '
                     'of images')


def _is_digits(name):
    """The digit and letter sets, where a mirrored image is not a character (no random flips by default)."""
    return str(name).lower() in ('synth', 'svhn', 'mnist', 'chars74k')


def new_config(settings):
    """Every setting of a new run, defaults resolved (what config.json records).

    `settings` maps flag names (as in DEFAULTS) to values; missing ones take their defaults."""
    given = dict(DEFAULTS, **settings)
    _check_data_name(given['data'])
    cfg = {k: v for k, v in given.items() if k not in SESSION_FLAGS}
    model = given['model']
    cfg['lr'] = given['lr'] if given['lr'] is not None else DEFAULT_LR[model]
    quick = given['data'] == 'synth' and given['epochs'] is None and given['max_steps'] is None
    cfg['epochs'] = given['epochs'] if given['epochs'] is not None else (QUICK_EPOCHS if quick else DEFAULT_EPOCHS)
    for width in ('ngf', 'ndf'):
        if cfg[width] is None:
            cfg[width] = QUICK_WIDTH if quick else FULL_WIDTH
    if cfg['flip'] == 'auto':
        cfg['flip'] = 'off' if _is_digits(given['data']) else 'on'
    if given['labels_file'] is not None and str(given['data']).lower() in DATASETS:
        raise UsageError('--labels-file goes with a folder of images as --data')
    if given['cuda_graph'] and (model != 'dcgan' or given['device'] == 'cpu'):
        raise UsageError('--cuda-graph needs --device cuda (a GPU) and --model dcgan')
    if model == 'classifier' and given['image_size'] != 32:
        raise UsageError('the classifier is classifier-32: use --image-size 32')
    if given['conditional'] and model not in GAN_MODELS:
        raise UsageError(f'--conditional goes with a GAN --model ({", ".join(GAN_MODELS)}), not {model}')
    if given['conditional'] and given['labels_file'] is not None:
        raise UsageError('--conditional needs one class per image: leave out --labels-file')
    if given['cond_d'] not in COND_D:
        raise UsageError(f'unknown --cond-d {given["cond_d"]!r}: use one of {", ".join(COND_D)}')
    if given['cond_d'] != 'projection' and not given['conditional']:
        raise UsageError('--cond-d chooses the discriminator of a --conditional GAN: add --conditional')
    if given['conditional'] and given['cuda_graph']:
        raise UsageError('--cuda-graph captures the unconditional dcgan step: leave out --conditional')
    if model != 'sr' and given['adversarial']:
        raise UsageError('--adversarial is the SRGAN variant of --model sr')
    if model == 'sr' and given['scale'] not in (2, 4):
        raise UsageError(f'--scale is 2 or 4, not {given["scale"]}')
    if model == 'sr' and given['adversarial'] and given['image_size'] != 32:
        raise UsageError('--adversarial takes its feature loss from classifier-32: use --image-size 32')
    if model == 'sr' and given['distributed']:
        raise UsageError('--distributed trains the GANs and the classifier, not --model sr')
    cfg['optimizer'] = optimizer_settings(model, cfg['lr'])
    return cfg


def optimizer_settings(model, lr):
    """The optimiser of each algorithm's paper: Adam with betas (0.5, 0.999) for DCGAN and RaLSGAN,
    RMSprop for WGAN, Adam with betas (0.5, 0.9) for WGAN-GP, plain Adam for the classifier and
    for super-resolution (SRGAN's)."""
    if model in ('dcgan', 'ralsgan'):
        return {'name': 'Adam', 'lr': lr, 'betas': [0.5, 0.999]}
    if model == 'wgan':
        return {'name': 'RMSprop', 'lr': lr, 'alpha': 0.99, 'eps': 1e-8}
    if model == 'wgan-gp':
        return {'name': 'Adam', 'lr': lr, 'betas': [0.5, 0.9]}
    if model == 'sr':
        return {'name': 'Adam', 'lr': lr, 'betas': [0.9, 0.999]}
    return {'name': 'Adam', 'lr': lr, 'betas': [0.9, 0.999]}


def resume_config(run_dir, given):
    """The settings of the run in run_dir, with `given` (the flags typed with --resume) applied:
    only those in RESUME_OVERRIDES may differ from what the run used."""
    cfg = read_settings(run_dir)
    given = {k: v for k, v in given.items() if k not in SESSION_FLAGS}
    if 'out' in given and os.path.abspath(given['out']) != os.path.abspath(run_dir):
        raise UsageError('--resume continues a run in its own folder: leave out --out')
    given.pop('out', None)
    for key, value in given.items():
        if key in RESUME_OVERRIDES:
            cfg[key] = value
        elif cfg.get(key) != value:
            raise UsageError(f'--{key.replace("_", "-")} cannot change when resuming (the run used '
                             f'{cfg.get(key)!r}); only --{", --".join(k.replace("_", "-") for k in RESUME_OVERRIDES)} can')
    for k in FACTS:
        cfg.pop(k, None)
    if 'lr' in given:                           # a new learning rate (after a NaN, say): the optimiser's too
        cfg['optimizer'] = dict(cfg['optimizer'], lr=given['lr'])
    return cfg


def read_settings(run_dir):
    """config.json of the run in run_dir, for --resume (UsageError when it cannot be)."""
    path = os.path.join(run_dir, 'config.json')
    if not os.path.isfile(path):
        raise UsageError(f'cannot resume {run_dir}: it has no config.json, so the run stopped before it began '
                         'training; run the same command as before (without --resume) to start it afresh')
    try:
        with open(path, encoding='utf-8') as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        raise UsageError(f'cannot resume {run_dir}: its config.json cannot be read ({e}); restore it, or start '
                         'the run over with the same command and --restart') from e
    if not isinstance(cfg, dict) or 'model' not in cfg or 'optimizer' not in cfg:
        raise UsageError(f'cannot resume {run_dir}: its config.json is not one minigan.train wrote')
    return cfg


def write_config(run_dir, cfg, device, dataset_info):
    """config.json: the settings, plus the facts of this session (versions, device, dataset), atomically."""
    cfg = dict(cfg)
    cfg['version'] = __version__
    cfg['resolved_device'] = device
    cfg['dataset'] = dataset_info
    cfg['numpy'] = np.__version__
    cfg['python'] = platform.python_version()
    cfg['run_dir'] = os.path.abspath(run_dir)
    write_text(os.path.join(run_dir, 'config.json'), json.dumps(cfg, indent=2, sort_keys=True) + '\n')


def resolve_device(name):
    """'cpu' or 'cuda' for a --device of cpu, cuda or auto (cuda when a GPU is usable)."""
    if name == 'auto':
        return 'cuda' if backend.cuda_available() else 'cpu'
    if name == 'cuda':
        backend.cupy_or_raise()               # a clear error when there is no GPU
    return name

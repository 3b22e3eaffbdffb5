"""Looking inside a trained network.

- class_model_images: for each class, an input image that maximises its score
  (Simonyan, Vedaldi and Zisserman 2013, "Deep inside convolutional networks"):
  gradient ascent on S_c(I) - l2 * |I|^2, with random jitter and an occasional
  Gaussian blur (Yosinski et al. 2015) so the image is not pure high-frequency noise.
- saliency: |d S_c / d I|, the largest over colour channels: which pixels the score
  is most sensitive to.
- activation_maximisation: the same gradient ascent on the mean activation of one
  channel of any named hidden layer (a "deep dream" of that layer).
- first_layer_filters: the first convolution's kernels as small images.

All of it works on a classifier (scores = logits) and on a GAN discriminator (one
score, "realness", class 0). The command line:

    python -m minigan.visualize RUN_DIR [--what classes saliency layer filters] [--layer NAME]
"""
import contextlib
import json
import os
import sys

import numpy as np

import minigan as mg
from .backend import get_array_module
from .atomic import save_image, write_text
from .errors import OneLineParser, UsageError, run_command
from .run_folder import RunFolderError, load_run_data, load_run_model  # noqa: F401


# ---- scores and activations --------------------------------------------------
class _StopForward(Exception):
    """Raised inside a hooked layer to stop the forward pass once its output is known."""


def find_layer(model, name):
    """The sub-module called `name` in model.named_modules() ("3", "main.2", "features.conv1")."""
    layers = dict(model.named_modules())
    if name not in layers:
        names = ', '.join(repr(n) for n in layers if n)
        raise KeyError(f'no layer named {name!r} in {type(model).__name__}; layers: {names}')
    return layers[name]


@contextlib.contextmanager
def capture(model, name, stop=True):
    """Record the output of layer `name` while the model runs (a forward hook built by
    swapping that module's forward). With stop=True the forward pass ends right after
    the layer, so later layers cost nothing; call run(model, x) to get the activation."""
    layer = find_layer(model, name)
    store = {}
    original = layer.forward

    def hooked(*args, **kwargs):
        store['out'] = original(*args, **kwargs)
        if stop:
            raise _StopForward
        return store['out']

    object.__setattr__(layer, 'forward', hooked)
    try:
        yield store
    finally:
        object.__delattr__(layer, 'forward')


def layer_output(model, name, x):
    """The activation of layer `name` for input x (the model runs only up to that layer)."""
    with capture(model, name) as store:
        try:
            model(x)
        except _StopForward:
            pass
    if 'out' not in store:
        raise RuntimeError(f'layer {name!r} was not used by {type(model).__name__}.forward')
    return store['out']


def scores_of(model, x):
    """Class scores (N, K): a classifier's logits, or a discriminator's one logit as (N, 1)."""
    out = model(x)
    return out.reshape(x.shape[0], -1)


def _targets(classes, n):
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    if classes.size == 1:
        classes = np.repeat(classes, n)
    if classes.size != n:
        raise ValueError(f'{classes.size} target classes for {n} images: give one, or one per image')
    return classes


def _select(scores, classes):
    """sum_n scores[n, classes[n]] as a scalar Tensor (each image's own class)."""
    k = scores.shape[1]
    if classes.min() < 0 or classes.max() >= k:
        raise ValueError(f'class index out of range: the model has {k} score(s), asked for '
                         f'{classes.min()}..{classes.max()} (a discriminator has one score, class 0)')
    xp = get_array_module(scores.array)
    onehot = mg.Tensor(xp.asarray(np.eye(k, dtype=np.float64)[classes]).astype(scores.dtype))
    return (scores * onehot).sum()


def _input_tensor(images, device):
    """A float32 Tensor on `device` from images given as an array or a Tensor."""
    if isinstance(images, mg.Tensor):
        return images.detach().to(device, np.float32)
    return mg.tensor(np.asarray(images, np.float32), device=device)


def input_gradient(model, images, classes):
    """d score[class] / d input for each image: an array of the input's shape (N, C, H, W)."""
    x = images if isinstance(images, mg.Tensor) else mg.tensor(np.asarray(images, np.float32))
    x = x.detach().requires_grad_()
    classes = _targets(classes, x.shape[0])
    with mg.enable_grad():
        gx, = mg.grad([_select(scores_of(model, x), classes)], [x])
    return gx.numpy()


def saliency(model, images, classes, reduce='max'):
    """Saliency maps |d score[class] / d input|: (N, H, W) after the largest over channels
    (Simonyan et al.), or the input's shape (N, C, H, W) with reduce=None."""
    g = np.abs(input_gradient(model, images, classes))
    if reduce is None:
        return g
    if reduce != 'max':
        raise ValueError(f"reduce is 'max' or None, got {reduce!r}")
    return g.max(axis=1)


# ---- gradient ascent on the input ---------------------------------------------
def _gaussian_blur(a, sigma):
    """Separable Gaussian blur over the last two axes of an (N, C, H, W) array (reflect edges)."""
    xp = get_array_module(a)
    r = max(1, int(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    for axis in (2, 3):
        pad = [(0, 0)] * 4
        pad[axis] = (r, r)
        p = xp.pad(a, pad, mode='reflect' if a.shape[axis] > r else 'edge')
        n = a.shape[axis]
        a = sum(float(w) * xp.take(p, xp.arange(i, i + n), axis=axis) for i, w in enumerate(k))
    return a


def _ascend(objective, shape, steps, lr, l2, jitter, blur_every, blur_sigma, seed, device, init=None):
    """Gradient ascent on objective(x) - l2 |x|^2 over images x in [-1, 1]."""
    rng = np.random.default_rng(seed)
    x = (rng.normal(0, 0.1, shape) if init is None else np.asarray(init, np.float64)).astype(np.float32)
    xp_x = mg.tensor(x, device=device).array
    xp = get_array_module(xp_x)
    for step in range(steps):
        dy, dx = (rng.integers(-jitter, jitter + 1, 2) if jitter else (0, 0))
        shifted = mg.Tensor(xp.roll(xp_x, (int(dy), int(dx)), axis=(2, 3))).requires_grad_()
        with mg.enable_grad():
            value = objective(shifted) - l2 * (shifted * shifted).sum()
            g, = mg.grad([value], [shifted])
        g = xp.roll(g.array, (-int(dy), -int(dx)), axis=(2, 3))
        scale = xp.abs(g).mean(axis=(1, 2, 3), keepdims=True) + 1e-12     # a step of the same size for every image
        xp_x = xp_x + lr * g / scale
        if blur_every and blur_sigma and (step + 1) % blur_every == 0 and step + 1 < steps:
            xp_x = _gaussian_blur(xp_x, blur_sigma)
        xp_x = xp.clip(xp_x, -1, 1).astype(np.float32)
    return mg.Tensor(xp_x).numpy()


def _image_shape(model, image_shape):
    if image_shape is not None:
        return tuple(image_shape)
    for _, m in model.named_modules():
        w = getattr(m, 'weight', None)
        if w is not None and len(w.shape) == 4:
            return (w.shape[1], 32, 32)
    raise ValueError('cannot tell the input shape from the model: pass image_shape=(C, H, W)')


def _device(model):
    for p in model.parameters():
        return p.device
    return 'cpu'


def class_model_images(model, classes, image_shape=None, steps=200, lr=0.02, l2=1e-4, jitter=2,
                       blur_every=4, blur_sigma=0.5, seed=0):
    """One image per class in `classes` maximising that class's score: (K, C, H, W) in [-1, 1]."""
    classes = _targets(classes, len(np.atleast_1d(classes)))
    shape = (len(classes),) + _image_shape(model, image_shape)
    was_training = model.training
    model.eval()
    try:
        return _ascend(lambda x: _select(scores_of(model, x), classes), shape, steps, lr, l2,
                       jitter, blur_every, blur_sigma, seed, _device(model))
    finally:
        model.train(was_training)


def activation_maximisation(model, layer, channels, image_shape=None, steps=200, lr=0.02, l2=1e-4,
                            jitter=2, blur_every=4, blur_sigma=0.5, seed=0):
    """One image per channel of layer `layer` maximising that channel's mean activation:
    (len(channels), C, H, W) in [-1, 1]. `layer` is a name from model.named_modules()."""
    channels = np.asarray(channels, dtype=np.int64).reshape(-1)
    shape = (len(channels),) + _image_shape(model, image_shape)

    def objective(x):
        a = layer_output(model, layer, x)
        if channels.max() >= a.shape[1]:
            raise ValueError(f'layer {layer!r} has {a.shape[1]} channels, asked for channel {channels.max()}')
        a = a.reshape(a.shape[0], a.shape[1], -1).mean(axis=2)           # (N, channels)
        return _select(a, channels)

    was_training = model.training
    model.eval()
    try:
        return _ascend(objective, shape, steps, lr, l2, jitter, blur_every, blur_sigma, seed, _device(model))
    finally:
        model.train(was_training)


def first_conv(model):
    """(name, module) of the first layer with a 4-D weight (a Conv2d)."""
    for name, m in model.named_modules():
        w = getattr(m, 'weight', None)
        if w is not None and len(w.shape) == 4:
            return name, m
    raise ValueError(f'{type(model).__name__} has no convolution layer')


def first_layer_filters(model):
    """The first convolution's kernels as images (C_out, 3 or 1, kH, kW) in [-1, 1], each
    scaled on its own so its largest weight magnitude reaches the end of the range.
    Kernels over other than 1 or 3 input channels are shown as their channel mean."""
    _, conv = first_conv(model)
    w = conv.weight.numpy().astype(np.float64)
    if w.shape[1] not in (1, 3):
        w = w.mean(axis=1, keepdims=True)
    return w / (np.abs(w).reshape(len(w), -1).max(axis=1)[:, None, None, None] + 1e-12)


# ---- pictures -------------------------------------------------------------------
def _to_uint8_hwc(images):
    """(N, C, H, W) floats in [-1, 1] -> (N, H, W, 3) uint8."""
    a = np.clip(np.rint((np.asarray(images, np.float64) + 1) * 127.5), 0, 255).astype(np.uint8)
    a = a.transpose(0, 2, 3, 1)
    return np.repeat(a, 3, axis=3) if a.shape[3] == 1 else a[..., :3]


def _heat(maps):
    """(N, H, W) non-negative maps -> (N, H, W, 3) uint8, each scaled to its own maximum (black to yellow)."""
    m = np.asarray(maps, np.float64)
    m = m / (m.reshape(len(m), -1).max(axis=1)[:, None, None] + 1e-12)
    return np.stack([np.clip(2 * m, 0, 1), np.clip(2 * m - 0.5, 0, 1), np.clip(2 * m - 1, 0, 1)],
                    axis=-1).__mul__(255).astype(np.uint8)


def image_grid(tiles, labels=None, ncol=8, scale=3, pad=2):
    """A PIL image of (N, H, W, 3) uint8 tiles, enlarged `scale` times, with an optional caption each."""
    from PIL import Image, ImageDraw, ImageFont
    tiles = np.asarray(tiles)
    n, h, w, _ = tiles.shape
    ncol = max(1, min(ncol, n))
    nrow = -(-n // ncol)
    th = 12 if labels is not None else 0
    cw, ch = w * scale + pad, h * scale + pad + th
    img = Image.new('RGB', (ncol * cw + pad, nrow * ch + pad), 'white')
    draw, font = ImageDraw.Draw(img), ImageFont.load_default()
    for i in range(n):
        x0, y0 = pad + (i % ncol) * cw, pad + (i // ncol) * ch
        tile = Image.fromarray(tiles[i]).resize((w * scale, h * scale), Image.NEAREST)
        img.paste(tile, (x0, y0 + th))
        if labels is not None:
            draw.text((x0, y0), str(labels[i])[: max(1, w * scale // 6)], fill='black', font=font)
    return img


def saliency_figure(images, maps, labels=None):
    """Each image beside its saliency map, in pairs."""
    pics, heat = _to_uint8_hwc(images), _heat(maps)
    tiles = np.stack([t for pair in zip(pics, heat) for t in pair])
    names = None if labels is None else [s for lab in labels for s in (str(lab), 'saliency')]
    return image_grid(tiles, names, ncol=8)


# ---- command line ---------------------------------------------------------------
def load_network(run_dir, net='auto', device='cpu'):
    """(model, class_names, image_shape, kind) from a run directory: the classifier of a
    classifier run, or the discriminator of a GAN run (net='D'); net='G' is refused."""
    return load_run_model(run_dir, net=net, device=device)


def _parse_channels(text, n):
    if text in (None, 'all'):
        return list(range(n))
    out = []
    try:
        for part in str(text).split(','):
            a, _, b = part.partition('-')
            out.extend(range(int(a), int(b) + 1) if b else [int(a)])
    except ValueError:
        raise UsageError(f'--channels {text}: write channel numbers like 0-7 or 1,4,9, or all') from None
    return out


def main(argv=None):
    p = OneLineParser(prog='python -m minigan.visualize', description=__doc__.split('\n\n')[0])
    p.add_argument('run_dir', help='a run directory written by python -m minigan.train (classifier or GAN)')
    p.add_argument('--what', nargs='+', default=['classes', 'saliency', 'layer', 'filters'],
                   choices=['classes', 'saliency', 'layer', 'filters'])
    p.add_argument('--net', default='auto', choices=['auto', 'classifier', 'D'],
                   help='which network of the run (a GAN run uses its discriminator D)')
    p.add_argument('--layer', default=None,
                   help='layer for activation maximisation, a name from named_modules() (default: the second conv)')
    p.add_argument('--channels', default='0-15', help='channels of --layer, e.g. 0-7 or 1,4,9 or all')
    p.add_argument('--steps', type=int, default=200)
    p.add_argument('--lr', type=float, default=0.02)
    p.add_argument('--l2', type=float, default=1e-4)
    p.add_argument('--jitter', type=int, default=2)
    p.add_argument('--blur-every', type=int, default=4)
    p.add_argument('--blur-sigma', type=float, default=0.5)
    p.add_argument('--images', type=int, default=8, help='test images for saliency maps')
    p.add_argument('--data-root', default=None, help='where the run\'s dataset lives (default: as trained)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default=None, help='output folder (default RUN_DIR/visualize)')
    p.add_argument('--list-layers', action='store_true', help='print the layer names and exit')
    a = p.parse_args(argv)
    return run_command('minigan.visualize', _visualize, a)     # errors: one line and an exit status


def _visualize(a):
    model, class_names, image_shape, kind = load_network(a.run_dir, a.net, a.device)
    if a.list_layers:
        for name, m in model.named_modules():
            if name:
                print(f'{name:20s} {type(m).__name__}')
        return 0
    out = a.out or os.path.join(a.run_dir, 'visualize')
    os.makedirs(out, exist_ok=True)
    opts = dict(image_shape=image_shape, steps=a.steps, lr=a.lr, l2=a.l2, jitter=a.jitter,
                blur_every=a.blur_every, blur_sigma=a.blur_sigma, seed=a.seed)
    written = []
    if 'classes' in a.what:
        k = len(class_names)
        imgs = class_model_images(model, list(range(k)), **opts)
        with mg.no_grad():
            model.eval()
            final = scores_of(model, _input_tensor(imgs, a.device)).numpy()
        labels = [f'{c}: {final[i, i]:.1f}' for i, c in enumerate(class_names)]
        written.append(_save(image_grid(_to_uint8_hwc(imgs), labels, ncol=min(k, 10)), out, 'class_models.png'))
    if 'saliency' in a.what:
        images, labels = load_run_data(a.run_dir, split='test', root=a.data_root)[:2]
        rng = np.random.default_rng(a.seed)
        idx = rng.choice(len(images), min(a.images, len(images)), replace=False)
        x = images[idx].astype(np.float32) / 127.5 - 1
        model.eval()
        targets = labels[idx] if kind == 'classifier' else np.zeros(len(idx), np.int64)
        maps = saliency(model, _input_tensor(x, a.device), targets)
        names = [class_names[t] for t in targets]
        written.append(_save(saliency_figure(x, maps, names), out, 'saliency.png'))
    if 'layer' in a.what:
        layer = a.layer or _default_layer(model)
        if layer not in dict(model.named_modules()):
            raise UsageError(f'--layer {layer}: {type(model).__name__} has no such layer; '
                             'see them with --list-layers')
        probe = layer_output(model.eval(), layer, _input_tensor(np.zeros((1,) + tuple(image_shape)), a.device))
        channels = [c for c in _parse_channels(a.channels, probe.shape[1]) if c < probe.shape[1]]
        imgs = activation_maximisation(model, layer, channels, **opts)
        written.append(_save(image_grid(_to_uint8_hwc(imgs), [f'ch {c}' for c in channels]),
                             out, f'layer_{layer.replace(".", "_")}.png'))
    if 'filters' in a.what:
        f = first_layer_filters(model)
        written.append(_save(image_grid(_to_uint8_hwc(f), ncol=16, scale=max(2, 24 // f.shape[-1])),
                             out, 'filters.png'))
    for path in written:
        print(path)
    write_text(os.path.join(out, 'visualize.json'),
               json.dumps({'run_dir': a.run_dir, 'kind': kind, 'files': written, 'options': vars(a)}, indent=1))
    return 0


def _default_layer(model):
    """The second convolution's following layer if there is one (past edges and colours)."""
    convs = [n for n, m in model.named_modules() if getattr(m, 'weight', None) is not None
             and len(m.weight.shape) == 4]
    return convs[1] if len(convs) > 1 else convs[0]


def _save(img, folder, name):
    return save_image(img, os.path.join(folder, name))


if __name__ == '__main__':
    sys.exit(main())

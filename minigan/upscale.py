"""`python -m minigan.upscale RUN_DIR --input PICTURE|GAN_RUN_DIR --out OUT.png`: upscale with an SR run.

    python -m minigan.upscale runs/sr-x2 --input grid.png --out grid_x2.png
    python -m minigan.upscale runs/sr-x2 --input runs/dcgan-cifar10 --out samples_x2.png --side-by-side sbs.png

RUN_DIR is a super-resolution run (python -m minigan.train --model sr). The SRResNet is fully
convolutional, so a picture of any size (one image, or a whole sample grid) is upscaled in one
pass, without tiles. Given a GAN run instead of a picture, a grid of its samples is drawn first
(one class per row for a conditional run) and that grid is upscaled. --side-by-side also writes
Pillow's bicubic upscaling next to the network's, for comparison.
"""
import argparse
import os
import sys

import numpy as np

from .data import make_grid
from .gan.sampling import is_conditional, row_labels, sample_generator
from .gan.sr_quality import bicubic_upscale, upscale
from .run_config import resolve_device
from .run_folder import RunFolderError, channels, load_generator, load_upscaler, read_config

PROG = 'minigan-upscale'
MAX_OUTPUT_PIXELS = 4096 * 4096
MODES = {1: 'L', 3: 'RGB'}


class UpscaleError(Exception):
    """A bad input or run for the upscale command: reported in one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f'{self.prog}: error: {message} (see --help)\n')


def build_parser():
    p = _Parser(prog=PROG, allow_abbrev=False,
                description='Upscale a picture, or the samples of a GAN run, with the SRResNet of a '
                            'super-resolution run (python -m minigan.train --model sr).')
    p.add_argument('run_dir', metavar='RUN_DIR', help='a super-resolution run folder')
    p.add_argument('--input', required=True, metavar='PICTURE|GAN_RUN_DIR',
                   help='a PNG/JPEG picture (one image or a whole sample grid: write grids with '
                        'python -m minigan.sample --scale 1), or a GAN run folder whose samples to upscale')
    p.add_argument('--out', required=True, metavar='OUT.png', help='the upscaled picture to write')
    p.add_argument('--side-by-side', default=None, metavar='PNG',
                   help='also write bicubic | minigan side by side to this file (default: none)')
    p.add_argument('--convert', action='store_true',
                   help='convert a picture of another mode (grey, RGBA, palette) to the run\'s RGB or grey '
                        'instead of refusing it (default: off)')
    p.add_argument('--n', type=int, default=64,
                   help='with a GAN run as --input: samples in the grid (default: 64)')
    p.add_argument('--nrow', type=int, default=8, help='with a GAN run as --input: images per row (default: 8)')
    p.add_argument('--seed', type=int, default=0, help='with a GAN run as --input: seed of the noise (default: 0)')
    p.add_argument('--checkpoint', default=None, metavar='PATH',
                   help='checkpoint of the SR run (default: RUN_DIR/checkpoints/latest.npz)')
    p.add_argument('--device', default='auto', choices=('cpu', 'cuda', 'auto'),
                   help='where to run the networks (default: auto)')
    return p


def read_picture(path, nc, convert=False):
    """uint8 (nc, H, W) of a picture file; a picture of another mode is refused unless convert."""
    from PIL import Image, UnidentifiedImageError
    if not os.path.isfile(path):
        raise UpscaleError(f'{path} is neither a picture file nor a run folder')
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError) as e:
        raise UpscaleError(f'{path} is not a picture Pillow can read ({" ".join(str(e).split())})') from None
    want = MODES[nc]
    if img.mode != want:
        if not convert:
            raise UpscaleError(f"{path} is a picture of mode {img.mode}, the run upscales {want} ones: convert it, "
                               'or pass --convert')
        img = img.convert(want)
    a = np.asarray(img)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def gan_grid(gan_dir, nc, n, nrow, seed, device):
    """uint8 (nc, H, W): a grid of n samples of a GAN run (one class per row when conditional)."""
    cfg = read_config(gan_dir)
    if channels(cfg) != nc:
        raise UpscaleError(f'{gan_dir} makes {MODES[channels(cfg)]} images, the SR run upscales {MODES[nc]} ones')
    G = load_generator(gan_dir, device)
    labels = row_labels(G.num_classes, n, nrow) if is_conditional(G) else None
    samples = sample_generator(G, n, seed=seed, labels=labels)
    return make_grid(samples, nrow=nrow).transpose(2, 0, 1)


def save_picture(a, path):
    """Write uint8 (C, H, W) as a PNG (folders made)."""
    from PIL import Image
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0), MODES[a.shape[0]]).save(path)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.n < 1 or args.nrow < 1:
            raise UpscaleError('--n and --nrow must be at least 1')
        device = resolve_device(args.device)
        G, cfg = load_upscaler(args.run_dir, device, args.checkpoint)
        nc, scale = G.nc, G.scale
        if os.path.isdir(args.input):
            picture = gan_grid(args.input, nc, args.n, args.nrow, args.seed, device)
            what = f'a grid of {args.n} samples of {args.input}'
        else:
            picture = read_picture(args.input, nc, args.convert)
            what = args.input
        h, w = picture.shape[1:]
        if h * w * scale * scale > MAX_OUTPUT_PIXELS:
            raise UpscaleError(f'{what} is {w}x{h}: its x{scale} upscaling would exceed '
                               f'{MAX_OUTPUT_PIXELS // 1_000_000} megapixels; crop it first')
        ours = upscale(G, picture[None], batch_size=1)[0]
        save_picture(ours, args.out)
        if args.side_by_side:
            bicubic = bicubic_upscale(picture[None], scale)[0]
            gap = np.zeros((nc, ours.shape[1], 8), np.uint8)
            save_picture(np.concatenate([bicubic, gap, ours], axis=2), args.side_by_side)
    except (UpscaleError, RunFolderError, ValueError, OSError) as e:
        if os.environ.get('MINIGAN_DEBUG'):
            raise
        print(f'{PROG}: error: {" ".join(str(e).split())}', file=sys.stderr)
        return 2
    print(f'upscaled {what} ({w}x{h}) x{scale} to {args.out} ({w * scale}x{h * scale})'
          + (f'; bicubic | minigan in {args.side_by_side}' if args.side_by_side else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())

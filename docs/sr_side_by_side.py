"""The README's super-resolution picture: bicubic | minigan | original, on held-out images.

    python docs/sr_side_by_side.py runs/sr-cifar10-x2 docs/results/sr_side_by_side.png [--n 8] [--zoom 4]

--n held-out images of the SR run's data, spread evenly over its test split: each one is
averaged over scale x scale boxes, then upscaled back by Pillow's bicubic resize (top row) and
by the run's SRResNet (middle row); the bottom row is the original. The figure is enlarged by --zoom (nearest neighbour) to be seen.
It also prints the PSNR / SSIM of both on all the held-out images it was given (--eval-n).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from minigan.data import save_grid  # noqa: E402
from minigan.gan.sr_quality import comparison_rows, sr_quality  # noqa: E402
from minigan.run_folder import load_run_data, load_upscaler  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('run_dir')
    p.add_argument('out')
    p.add_argument('--n', type=int, default=8, help='held-out images shown (default: 8)')
    p.add_argument('--zoom', type=int, default=4, help='enlargement of the figure (default: 4)')
    p.add_argument('--eval-n', type=int, default=500, help='held-out images measured (default: 500)')
    a = p.parse_args(argv)
    G, cfg = load_upscaler(a.run_dir)
    images = load_run_data(a.run_dir, 'test')[0]
    q = sr_quality(G, images[:a.eval_n], cfg['scale'])
    print(f'{min(a.eval_n, len(images))} held-out images, x{cfg["scale"]}: PSNR {q["psnr"]:.2f} dB '
          f'(bicubic {q["psnr_bicubic"]:.2f}), SSIM {q["ssim"]:.4f} (bicubic {q["ssim_bicubic"]:.4f})')
    shown = np.linspace(0, len(images) - 1, a.n).round().astype(int)   # spread over the split (its classes)
    rows = comparison_rows(G, images[shown], cfg['scale'])
    save_grid(rows, a.out, nrow=a.n, scale=a.zoom)
    print(f'wrote {a.out}: rows bicubic | minigan | original')


if __name__ == '__main__':
    main()

"""A stand-in for MNIST where MNIST cannot be downloaded: white printed digits on black.

    python bench/printed_digits.py OUT_DIR [--per-class 600] [--seed 0]

Writes OUT_DIR/0 ... OUT_DIR/9, each with --per-class 28x28 grayscale PNGs: one digit drawn with
a font found on this machine (minigan.data.fonts), a random size and stroke, rotated by up to
15 degrees, sheared and shifted. Train on it as a folder: `python -m minigan.train --data OUT_DIR`.
It is easier than MNIST's handwriting (fonts vary less than hands) and is used in
bench/RESULTS.md to compare the conditional discriminators.
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from minigan.data import fonts  # noqa: E402


def draw_digit(digit, font_path, rng):
    font = ImageFont.truetype(font_path, int(rng.integers(40, 56)))
    im = Image.new('L', (64, 64), 0)
    ImageDraw.Draw(im).text((32, 32), str(digit), fill=255, font=font, anchor='mm',
                            stroke_width=int(rng.integers(0, 3)), stroke_fill=255)
    im = im.rotate(float(rng.uniform(-15, 15)), resample=Image.BILINEAR,
                   translate=(float(rng.uniform(-4, 4)), float(rng.uniform(-4, 4))))
    shear = float(rng.uniform(-0.3, 0.3))
    im = im.transform((64, 64), Image.AFFINE, (1, shear, -shear * 32, 0, 1, 0), resample=Image.BILINEAR)
    return im.resize((28, 28), Image.LANCZOS)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('out')
    p.add_argument('--per-class', type=int, default=600)
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args(argv)
    paths = [f for f in fonts.resolve_fonts('auto') if f != fonts.BUNDLED]
    if not paths:
        sys.exit('printed_digits: no TrueType font found on this machine (see minigan/data/fonts.py)')
    rng = np.random.default_rng(a.seed)
    for digit in range(10):
        os.makedirs(os.path.join(a.out, str(digit)), exist_ok=True)
        for i in range(a.per_class):
            draw_digit(digit, paths[rng.integers(len(paths))], rng).save(os.path.join(a.out, str(digit), f'{i:04d}.png'))


if __name__ == '__main__':
    main()

"""Does a conditional generator still use z? The spread of its images within each class.

    python bench/class_spread.py RUN_DIR [--n 50]

spread = the mean over pixels of the standard deviation across images of one class (pixels in
[-1, 1]), for --n samples per class and for the run's real test images of that class; a
generator that ignores z draws one image per class and its spread falls towards 0.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from minigan.gan.sampling import sample_generator  # noqa: E402
from minigan.run_folder import load_generator, load_run_data  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('run_dir')
    p.add_argument('--n', type=int, default=50, help='samples per class (default: 50)')
    a = p.parse_args(argv)
    G = load_generator(a.run_dir)
    images, labels, _ = load_run_data(a.run_dir, split='test')
    real = images.astype(np.float32) / 127.5 - 1.0
    asked = np.repeat(np.arange(G.num_classes), a.n)
    fake = sample_generator(G, len(asked), labels=asked, seed=1)
    rows = [(real[labels == c].std(axis=0).mean(), fake[asked == c].std(axis=0).mean())
            for c in range(G.num_classes) if (labels == c).sum() >= 2]
    r, g = np.array(rows).T
    print(f'within-class spread: real {r.mean():.3f}, generated {g.mean():.3f} (ratio {g.mean() / r.mean():.2f}); '
          f'per class generated / real: ' + ' '.join(f'{x:.2f}' for x in g / r))


if __name__ == '__main__':
    main()

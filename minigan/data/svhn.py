""""svhn": the Street View House Numbers cropped digits (format 2, 32x32).

Official files (http://ufldl.stanford.edu/housenumbers/): train_32x32.mat,
test_32x32.mat and extra_32x32.mat, MATLAB 5 files holding X uint8
(32, 32, 3, N) and y (N, 1) with 1..10, where 10 means the digit 0. They are
read with scipy.io.loadmat; images become NCHW, label 10 becomes 0.

Files are looked for in <root>/svhn/ and then <root>/; a download goes to
<root>/svhn/. Checksums: a downloaded file must match the official MD5 (else
it is discarded and an error raised). A file that was already there and
differs from the official MD5 (a subset, a re-save) is used if it parses, with
a warning; pass verify=True to make that an error instead.
"""
import numpy as np

from .errors import DatasetError

URL = 'http://ufldl.stanford.edu/housenumbers/'
FILES = {
    'train': ('train_32x32.mat', 'e26dedcc434d2e4c54c9b2d4a06d8373'),
    'test': ('test_32x32.mat', 'eb5a983be6a315427106f1b164d9cef3'),
    'extra': ('extra_32x32.mat', 'a93ce644f1a588dc4d68dda5feec44a7'),
}
CLASSES = [str(d) for d in range(10)]


def read_mat(path):
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) from an SVHN .mat file."""
    import scipy.io
    try:
        mat = scipy.io.loadmat(str(path), variable_names=['X', 'y'])
    except NotImplementedError as e:     # MATLAB 7.3 (HDF5) files
        raise DatasetError(f'{path}: MATLAB 7.3 (HDF5) .mat files are not supported ({e}); '
                           'use the official file, or re-save it with savemat(..., format="5")') from e
    except Exception as e:               # truncated/corrupt: scipy raises many kinds of errors
        raise DatasetError(f'{path}: not a readable SVHN .mat file, it may be truncated or corrupt '
                           f'({type(e).__name__}: {e}). Download it again (move the bad copy '
                           'away first).') from e
    missing = [k for k in ('X', 'y') if k not in mat]
    if missing:
        raise DatasetError(f'{path}: no variable {" or ".join(missing)} in this .mat file; an SVHN '
                           'cropped-digit file holds X (32, 32, 3, N) and y (N, 1)')
    x, y = mat['X'], np.asarray(mat['y']).reshape(-1)
    if x.ndim != 4 or x.shape[2] != 3 or x.dtype != np.uint8:
        raise DatasetError(f'{path}: X is {x.dtype} {x.shape}, expected uint8 (32, 32, 3, N)')
    if len(y) != x.shape[3]:
        raise DatasetError(f'{path}: {len(y)} labels in y for {x.shape[3]} images in X')
    y = y.astype(np.int64)
    if len(y) and (y.min() < 0 or y.max() > 10):
        raise DatasetError(f'{path}: labels must be 1..10 (10 meaning 0), found {y.min()}..{y.max()}')
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1))    # (H, W, C, N) -> (N, C, H, W)
    return images, y % 10

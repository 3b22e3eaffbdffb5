""""mnist" and "fashion-mnist": the official idx files, gzipped or not.

Files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-...) are looked
for with and without ".gz" in <root>/<name>/, <root>/<name>/raw/, torchvision's
<root>/MNIST/raw/ (FashionMNIST/raw/) and, for "mnist" only, <root>/ itself.
A download fetches the .gz files into <root>/<name>/ and checks their MD5s.
Images are 28x28 grey; load_dataset's image_size=32 pads them (fit="pad",
the default) or resizes them (fit="resize"), and channels=3 repeats the grey
channel for the 3-channel DCGAN-32 models.
"""
import gzip
import zlib

import numpy as np

from .errors import DatasetError

SOURCES = {
    'mnist': {
        'urls': ['https://ossci-datasets.s3.amazonaws.com/mnist/', 'http://yann.lecun.com/exdb/mnist/'],
        'torch_dir': 'MNIST',
        'files': {
            'train-images-idx3-ubyte.gz': 'f68b3c2dcbeaaa9fbdd348bbdeb94873',
            'train-labels-idx1-ubyte.gz': 'd53e105ee54ea40749a09fcbcd1e9432',
            't10k-images-idx3-ubyte.gz': '9fb629c4189551a2d022fa330f9573f3',
            't10k-labels-idx1-ubyte.gz': 'ec29112dd5afa0611ce80d1b7f02629c',
        },
        'classes': [str(d) for d in range(10)],
    },
    'fashion-mnist': {
        'urls': ['http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',
                 'https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/'],
        'torch_dir': 'FashionMNIST',
        'files': {
            'train-images-idx3-ubyte.gz': '8d4fb7e6c68d591d4c3dfef9ec88bf0d',
            'train-labels-idx1-ubyte.gz': '25c81989df183df01b3e8a0aad5dffbe',
            't10k-images-idx3-ubyte.gz': 'bef4ecab320f06d8554ea6380940ec79',
            't10k-labels-idx1-ubyte.gz': 'bb300cfdad3c16e7a12a480ee83cd310',
        },
        'classes': ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
                    'Sneaker', 'Bag', 'Ankle boot'],
    },
}
PREFIX = {'train': 'train', 'test': 't10k'}

_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: '>i2', 0x0C: '>i4', 0x0D: '>f4', 0x0E: '>f8'}


def read_idx(path):
    """The array stored in an idx file (gzipped when its name ends in .gz or its bytes say so)."""
    try:
        with open(path, 'rb') as f:
            raw = f.read()
        if raw[:2] == b'\x1f\x8b':
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f'{path}: the gzip stream is truncated or corrupt ({e}); download the '
                           'file again (move the bad copy away first)') from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise DatasetError(f'{path}: not an idx file (its first bytes are {raw[:4].hex() or "missing"}, '
                           'expected 00 00 08 0N)')
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DatasetError(f'{path}: idx header truncated ({len(raw)} bytes)')
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim)]
    dtype = np.dtype(_TYPES[raw[2]])
    need = header + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != need:
        raise DatasetError(f'{path}: idx file of shape {tuple(dims)} needs {need:,} bytes, '
                           f'found {len(raw):,}: the file is truncated or corrupt; download it again')
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def read_pair(images_path, labels_path):
    """(images uint8 (N, 1, 28, 28), labels int64 (N,)) from an images and a labels idx file."""
    x = read_idx(images_path)
    y = read_idx(labels_path)
    if x.ndim != 3 or x.dtype != np.uint8:
        raise DatasetError(f'{images_path}: expected uint8 images (N, H, W), found {x.dtype} {x.shape}')
    if y.ndim != 1:
        raise DatasetError(f'{labels_path}: expected labels (N,), found shape {y.shape}')
    if len(x) != len(y):
        raise DatasetError(f'{images_path} holds {len(x)} images but {labels_path} {len(y)} labels')
    return np.ascontiguousarray(x[:, None]), y.astype(np.int64)

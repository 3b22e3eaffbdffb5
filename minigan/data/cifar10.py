""""cifar10": the official python version, cifar-10-python.tar.gz.

The archive (or its extracted folder cifar-10-batches-py/) is looked for in
<root>/cifar10/ and <root>/; batches are read straight from the archive, no
extraction. The pickles are read by a restricted unpickler that admits only
NumPy arrays and plain Python values, so a doctored file cannot run code.
The JPEG repackaging of CIFAR-10 (train/<class>/, test/<class>/) is a folder
of images: give its path to load_dataset.
"""
import io
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from .errors import DatasetError

URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz'
ARCHIVE = 'cifar-10-python.tar.gz'
MD5 = 'c58f30108f718f92721af3b95e74349a'
FOLDER = 'cifar-10-batches-py'
BATCHES = {'train': [f'data_batch_{i}' for i in range(1, 6)], 'test': ['test_batch']}
CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']

_ALLOWED = {('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
            ('numpy', 'ndarray'), ('numpy', 'dtype'), ('numpy.core.multiarray', 'scalar'),
            ('numpy._core.multiarray', 'scalar'), ('copy_reg', '_reconstructor'),
            ('copyreg', '_reconstructor'), ('__builtin__', 'object'), ('builtins', 'object'),
            ('_codecs', 'encode')}          # how protocol-2 pickles from Python 3 store bytes


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            if module.startswith('numpy.core') and hasattr(np, '_core'):
                module = 'numpy._core' + module[len('numpy.core'):]   # NumPy 2 renamed it
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f'refusing to load {module}.{name}: a CIFAR batch holds only '
                                     'arrays, lists and strings')


def _unpickle(data, where):
    try:
        return _SafeUnpickler(io.BytesIO(data), encoding='bytes').load()
    except Exception as e:
        raise DatasetError(f'{where}: not a readable CIFAR-10 batch, it may be truncated or corrupt '
                           f'({type(e).__name__}: {e})') from e


def _get(d, key):
    return d.get(key.encode(), d.get(key)) if isinstance(d, dict) else None


def _batch(obj, where):
    data, labels = _get(obj, 'data'), _get(obj, 'labels')
    if data is None or labels is None:
        raise DatasetError(f'{where}: a CIFAR-10 batch is a dict with "data" and "labels"; this one '
                           f'has {sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__}')
    data, labels = np.asarray(data), np.asarray(labels, dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DatasetError(f'{where}: data is {data.dtype} {data.shape}, expected uint8 (N, 3072)')
    if len(labels) != len(data):
        raise DatasetError(f'{where}: {len(labels)} labels for {len(data)} images')
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DatasetError(f'{where}: labels must be 0..9, found {labels.min()}..{labels.max()}')
    return data.reshape(-1, 3, 32, 32), labels


def _read_members(path, names, optional=('batches.meta',)):
    """{name: bytes} for the batch files inside the archive `path` (or the folder `path`)."""
    path = Path(path)
    if path.is_dir():
        out = {}
        for n in list(names) + list(optional):
            f = path / n
            if f.is_file():
                out[n] = f.read_bytes()
            elif n in names:
                raise DatasetError(f'{path}: the batch file {n} is missing')
        return out
    wanted = set(names) | set(optional)
    out = {}
    try:
        with tarfile.open(path, 'r:*') as tar:
            for m in tar:
                base = m.name.rsplit('/', 1)[-1]
                if m.isfile() and base in wanted and base not in out:
                    out[base] = tar.extractfile(m).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DatasetError(f'{path}: the archive is truncated or corrupt ({type(e).__name__}: {e}); '
                           'download it again (move the bad copy away first)') from e
    missing = [n for n in names if n not in out]
    if missing:
        raise DatasetError(f'{path}: the archive lacks {", ".join(missing)}: is it '
                           f'{ARCHIVE} (the python version)?')
    return out


def read(path, split):
    """(images uint8 (N, 3, 32, 32), labels int64 (N,), class names) of a split."""
    names = BATCHES[split]
    blobs = _read_members(path, names)
    images, labels = [], []
    for n in names:
        x, y = _batch(_unpickle(blobs[n], f'{path}:{n}'), f'{path}:{n}')
        images.append(x)
        labels.append(y)
    classes = CLASSES
    if 'batches.meta' in blobs:
        meta = _unpickle(blobs['batches.meta'], f'{path}:batches.meta')
        names_ = _get(meta, 'label_names')
        if names_ is not None and len(names_) == 10:
            classes = [c.decode() if isinstance(c, bytes) else str(c) for c in names_]
    return np.concatenate(images), np.concatenate(labels), classes

"""SVHN .mat, MNIST/Fashion-MNIST idx and CIFAR-10 pickle archives, written here in their official
layouts; their corrupt and truncated versions; names, splits, checksums and the cache."""
import gzip
import io
import os
import pickle
import tarfile
import warnings

import numpy as np
import pytest

from minigan.data import DatasetError, DatasetWarning, load_dataset, md5sum


# ---------------------------------------------------------------- writers (official layouts)
def write_svhn(path, n=37, seed=0):
    scipy_io = pytest.importorskip('scipy.io')
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)            # (H, W, C, N)
    y = rng.integers(1, 11, (n, 1)).astype(np.uint8)                     # 1..10, 10 meaning 0
    y[:3, 0] = [10, 1, 9]
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy_io.savemat(str(path), {'X': x, 'y': y}, do_compression=True)
    return x, y


def write_idx(path, array, gz=True):
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + b''.join(
        int(d).to_bytes(4, 'big') for d in array.shape)
    raw = header + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if gz else raw)


def write_mnist(folder, split='train', n=25, seed=0, gz=True):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, n).astype(np.uint8)
    prefix = 'train' if split == 'train' else 't10k'
    ext = '.gz' if gz else ''
    write_idx(folder / f'{prefix}-images-idx3-ubyte{ext}', x, gz)
    write_idx(folder / f'{prefix}-labels-idx1-ubyte{ext}', y, gz)
    return x, y


def write_cifar(path, n_per_batch=6, seed=0):
    """cifar-10-python.tar.gz as the original: python-2 style pickles with bytes keys."""
    rng = np.random.default_rng(seed)
    batches = {}
    for name in [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']:
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n_per_batch)]
        batches[name] = {b'batch_label': name.encode(), b'labels': labels, b'data': data,
                         b'filenames': [b'x.png'] * n_per_batch}
    meta = {b'label_names': [c.encode() for c in ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog',
                                                   'frog', 'horse', 'ship', 'truck']],
            b'num_cases_per_batch': n_per_batch, b'num_vis': 3072}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, 'w:gz') as tar:
        for name, obj in list(batches.items()) + [('batches.meta', meta)]:
            blob = pickle.dumps(obj, protocol=2)        # the original's protocol, and NumPy 1's module
            blob = blob.replace(b'cnumpy._core.multiarray\n', b'cnumpy.core.multiarray\n')
            info = tarfile.TarInfo(f'cifar-10-batches-py/{name}')
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return batches


def quiet_load(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DatasetWarning)
        return load_dataset(*args, **kw)


# ---------------------------------------------------------------- svhn
def test_svhn_mat_becomes_nchw_with_label_10_as_0(tmp_path):
    x, y = write_svhn(tmp_path / 'svhn' / 'test_32x32.mat')
    with pytest.warns(DatasetWarning, match='differs from the official'):
        ds = load_dataset('svhn', root=tmp_path, split='test')
    assert ds.images.dtype == np.uint8 and ds.images.shape == (37, 3, 32, 32)
    np.testing.assert_array_equal(ds.images, x.transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(ds.labels, y[:, 0] % 10)
    assert ds.labels.dtype == np.int64 and list(ds.labels[:3]) == [0, 1, 9]
    assert ds.classes == [str(d) for d in range(10)] and len(ds) == 37


def test_svhn_flat_root_and_verify(tmp_path):
    write_svhn(tmp_path / 'train_32x32.mat')
    with pytest.raises(DatasetError, match='differs from the official'):
        load_dataset('svhn', root=tmp_path, split='train', verify=True)
    assert len(quiet_load('svhn', root=tmp_path, split='train')) == 37


def test_svhn_missing_file_says_where_and_how(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_dataset('svhn', root=tmp_path, split='test')
    msg = str(e.value)
    assert 'test_32x32.mat' in msg and 'download=True' in msg and str(tmp_path) in msg
    assert 'http://ufldl.stanford.edu/housenumbers/test_32x32.mat' in msg


@pytest.mark.parametrize('damage', ['truncate', 'garbage', 'no_y'])
def test_svhn_corrupt_mat_is_an_error_naming_the_file(tmp_path, damage):
    path = tmp_path / 'svhn' / 'test_32x32.mat'
    write_svhn(path)
    if damage == 'truncate':
        path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    elif damage == 'garbage':
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    else:
        import scipy.io
        scipy.io.savemat(str(path), {'X': np.zeros((32, 32, 3, 2), np.uint8)})
    before = path.read_bytes()
    with pytest.raises(DatasetError, match='test_32x32.mat'):
        load_dataset('svhn', root=tmp_path, split='test')
    assert path.read_bytes() == before                                   # nothing the user had is touched


# ---------------------------------------------------------------- mnist / fashion-mnist
@pytest.mark.parametrize('gz', [True, False])
def test_mnist_idx_gz_or_raw(tmp_path, gz):
    x, y = write_mnist(tmp_path / 'mnist', 'test', gz=gz)
    ds = quiet_load('mnist', root=tmp_path, split='test')
    assert ds.images.shape == (25, 1, 28, 28)
    np.testing.assert_array_equal(ds.images[:, 0], x)
    np.testing.assert_array_equal(ds.labels, y)


def test_mnist_pad_resize_and_three_channels(tmp_path):
    x, _ = write_mnist(tmp_path / 'mnist', 'train')
    padded = quiet_load('mnist', root=tmp_path, image_size=32, channels=3)
    assert padded.images.shape == (25, 3, 32, 32)
    np.testing.assert_array_equal(padded.images[:, 1, 2:30, 2:30], x)
    assert padded.images[:, :, :2].max() == 0 and padded.images[:, :, :, 30:].max() == 0
    assert np.array_equal(padded.images[:, 0], padded.images[:, 2])
    resized = quiet_load('mnist', root=tmp_path, image_size=32, fit='resize')
    assert resized.images.shape == (25, 1, 32, 32) and resized.images[:, :, :2].max() > 0
    with pytest.raises(DatasetError, match='fit'):
        load_dataset('mnist', root=tmp_path, fit='stretch')


def test_fashion_mnist_classes_and_torchvision_layout(tmp_path):
    write_mnist(tmp_path / 'FashionMNIST' / 'raw', 'train', seed=1)
    ds = quiet_load('fashion-mnist', root=tmp_path)
    assert ds.classes[0] == 'T-shirt/top' and ds.classes[9] == 'Ankle boot' and len(ds) == 25


@pytest.mark.parametrize('damage', ['truncate', 'magic', 'count', 'gzip'])
def test_corrupt_idx_is_an_error_naming_the_file(tmp_path, damage):
    write_mnist(tmp_path / 'mnist', 'train')
    path = tmp_path / 'mnist' / 'train-images-idx3-ubyte.gz'
    raw = gzip.decompress(path.read_bytes())
    if damage == 'truncate':
        path.write_bytes(gzip.compress(raw[:len(raw) // 2]))
    elif damage == 'magic':
        path.write_bytes(gzip.compress(b'\x12\x34' + raw[2:]))
    elif damage == 'count':
        write_idx(tmp_path / 'mnist' / 'train-labels-idx1-ubyte.gz', np.zeros(24, np.uint8))
    else:
        path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DatasetError, match='idx1-ubyte|idx3-ubyte'):
        load_dataset('mnist', root=tmp_path)


# ---------------------------------------------------------------- cifar10
def test_cifar10_archive_read_without_extracting(tmp_path):
    batches = write_cifar(tmp_path / 'cifar10' / 'cifar-10-python.tar.gz')
    train = quiet_load('cifar10', root=tmp_path, split='train')
    test = quiet_load('cifar10', root=tmp_path, split='test')
    assert train.images.shape == (30, 3, 32, 32) and test.images.shape == (6, 3, 32, 32)
    want = np.concatenate([batches[f'data_batch_{i}'][b'data'] for i in range(1, 6)]).reshape(-1, 3, 32, 32)
    np.testing.assert_array_equal(train.images, want)
    np.testing.assert_array_equal(test.labels, batches['test_batch'][b'labels'])
    assert train.classes[:2] == ['airplane', 'automobile']
    assert sorted(os.listdir(tmp_path / 'cifar10')) == ['cifar-10-python.tar.gz']   # nothing extracted


def test_cifar10_truncated_or_hostile_archive(tmp_path):
    path = tmp_path / 'cifar-10-python.tar.gz'
    write_cifar(path)
    full = path.read_bytes()
    path.write_bytes(full[:len(full) // 2])
    with pytest.raises(DatasetError, match='cifar-10-python.tar.gz'):
        load_dataset('cifar10', root=tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.system, ('echo pwned',))
    blob = pickle.dumps({b'data': Evil(), b'labels': []}, protocol=2)
    with tarfile.open(path, 'w:gz') as tar:
        for name in [f'data_batch_{i}' for i in range(1, 6)]:
            info = tarfile.TarInfo(f'cifar-10-batches-py/{name}')
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    with pytest.raises(DatasetError, match='refusing to load'):
        quiet_load('cifar10', root=tmp_path)


# ---------------------------------------------------------------- names, splits, cache
def test_unknown_name_and_split(tmp_path):
    with pytest.raises(DatasetError, match='unknown dataset .*svhn.*mnist'):
        load_dataset('imagenet-9000', root=tmp_path)
    with pytest.raises(DatasetError, match='splits'):
        load_dataset('mnist', root=tmp_path, split='extra')
    with pytest.raises(DatasetError, match='unknown option'):
        load_dataset('synth', root=tmp_path, colour='red')
    with pytest.raises(DatasetError, match='channels'):
        load_dataset('synth', root=tmp_path, channels=2)


def test_cache_is_used_then_rebuilt_when_the_source_changes(tmp_path):
    write_mnist(tmp_path / 'mnist', 'train', seed=0)
    a = quiet_load('mnist', root=tmp_path)
    entries = list((tmp_path / 'cache').glob('mnist-*.npz'))
    assert len(entries) == 1
    x, _ = write_mnist(tmp_path / 'mnist', 'train', seed=1)            # new content, new mtime
    st = os.stat(tmp_path / 'mnist' / 'train-images-idx3-ubyte.gz')
    os.utime(tmp_path / 'mnist' / 'train-images-idx3-ubyte.gz', ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    b = quiet_load('mnist', root=tmp_path)
    np.testing.assert_array_equal(b.images[:, 0], x)
    assert not np.array_equal(a.images, b.images)
    assert len(list((tmp_path / 'cache').glob('mnist-*.npz'))) == 1       # replaced, not piled up


def test_md5_of_the_other_dataset_is_caught(tmp_path, monkeypatch):
    from minigan.data import mnist
    write_mnist(tmp_path / 'mnist', 'train')
    path = tmp_path / 'mnist' / 'train-images-idx3-ubyte.gz'
    files = dict(mnist.SOURCES['fashion-mnist']['files'], **{path.name: md5sum(path)})
    monkeypatch.setitem(mnist.SOURCES['fashion-mnist'], 'files', files)
    with pytest.raises(DatasetError, match='not the mnist file'):
        load_dataset('mnist', root=tmp_path)

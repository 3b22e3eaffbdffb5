"""The real samples under ../shared/data (or $MINIGAN_SHARED_DATA); skipped when absent."""
import shutil
import tarfile
import time
import warnings

import numpy as np
import pytest

from minigan.data import DatasetWarning, load_dataset
from test_data_common import need_slow, shared_data

SHARED = shared_data()
pytestmark = [pytest.mark.data,
              pytest.mark.skipif(SHARED is None, reason='no ../shared/data next to the repository')]

CIFAR_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']


def test_svhn_first_1083_loads_as_train_32x32_mat(tmp_path):
    src = SHARED / 'svhn' / 'train_32x32_first1083.mat'
    if not src.exists():
        pytest.skip('svhn sample absent')
    (tmp_path / 'svhn').mkdir()
    shutil.copy(src, tmp_path / 'svhn' / 'train_32x32.mat')
    with pytest.warns(DatasetWarning, match='differs from the official e26dedcc434d2e4c54c9b2d4a06d8373'):
        ds = load_dataset('svhn', root=tmp_path, split='train', download=False)
    assert ds.images.shape == (1083, 3, 32, 32) and ds.images.dtype == np.uint8
    assert list(ds.labels[:10]) == [1, 9, 2, 3, 2, 5, 9, 3, 3, 1]
    # SOURCES.md: counts of the labels 1..10 (10 meaning 0) are 227 141 134 110 112 78 70 78 67 66
    assert list(ds.counts()) == [66, 227, 141, 134, 110, 112, 78, 70, 78, 67]
    ref = SHARED / 'svhn' / 'svhn_train_first1083.npz'
    if ref.exists():
        with np.load(ref) as f:
            np.testing.assert_array_equal(ds.images, f['X'].transpose(0, 3, 1, 2))
    t = time.perf_counter()
    again = load_dataset('svhn', root=tmp_path, split='train')          # cached: no second warning
    assert time.perf_counter() - t < 1.0 and np.array_equal(again.images, ds.images)


def test_chars74k_sample_has_ten_classes_of_twenty(tmp_path):
    folder = SHARED / 'chars74k-sample'
    if not folder.exists():
        pytest.skip('chars74k sample absent')
    with pytest.warns(DatasetWarning, match='MD5SUMS'):
        ds = load_dataset(folder, root=tmp_path, image_size=32)
    assert ds.classes == [f'Sample{i:03d}' for i in range(1, 11)]
    assert list(ds.counts()) == [20] * 10 and ds.images.shape == (200, 3, 32, 32)
    assert 40 < ds.images.mean() < 215 and ds.images.std() > 20       # real photographs


def _cifar_archive():
    path = SHARED / 'cifar10-jpg' / 'cifar-10-jpg.tar.gz'
    if not path.exists():
        pytest.skip('cifar10-jpg archive absent')
    return path


def test_cifar10_jpg_class_folders_through_the_folder_loader(tmp_path):
    # the default run decodes two class folders extracted from the real archive
    want = {'train/airplane': 150, 'train/automobile': 150}
    got = {k: 0 for k in want}
    with tarfile.open(_cifar_archive(), 'r:gz') as tar:
        for m in tar:
            cls = m.name.rsplit('/', 1)[0]
            if m.isfile() and cls in got and got[cls] < want[cls]:
                target = tmp_path / 'cifar' / m.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(m).read())
                got[cls] += 1
            if got == want:
                break
    ds = load_dataset(tmp_path / 'cifar', root=tmp_path / 'data', split='train')
    assert ds.classes == ['airplane', 'automobile'] and list(ds.counts()) == [150, 150]
    assert ds.images.shape == (300, 3, 32, 32)
    first = np.asarray(__import__('PIL.Image', fromlist=['Image']).open(
        tmp_path / 'cifar' / 'train' / 'airplane' / '0000.jpg').convert('RGB'))
    np.testing.assert_array_equal(ds.images[0], first.transpose(2, 0, 1))   # 32x32 kept as decoded


@pytest.mark.slow
def test_cifar10_jpg_full_archive(tmp_path, request):
    need_slow(request)
    archive = _cifar_archive()
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter('error', DatasetWarning)
        train = load_dataset(archive.parent, root=tmp_path, split='train')
    decode = time.perf_counter() - t
    test = load_dataset(archive.parent, root=tmp_path, split='test')
    assert train.classes == test.classes == CIFAR_CLASSES
    assert list(train.counts()) == [5000] * 10 and list(test.counts()) == [1000] * 10
    mean = train.images.reshape(50_000, 3, -1).mean(axis=(0, 2)) / 255
    np.testing.assert_allclose(mean, [0.4914, 0.4822, 0.4465], atol=0.002)   # the known CIFAR-10 mean
    t = time.perf_counter()
    again = load_dataset(archive.parent, root=tmp_path, split='train')
    cached = time.perf_counter() - t
    assert np.array_equal(again.images, train.images)
    assert cached < 1.5, f'cached load {cached:.2f} s (decode {decode:.1f} s)'

"""No silent loss in the data layer: truncated tar archives, out-of-range labels, changed datasets."""
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from minigan.data import load_dataset
from minigan.data.dataset import Dataset
from minigan.data.errors import DatasetError
from minigan.data.fingerprint import check, differences, fingerprint
from minigan.errors import DATA, exit_code

from test_data_formats import write_idx, write_mnist


def _image_tar(tmp_path, n=12, fmt=tarfile.USTAR_FORMAT, long_names=False):
    src = tmp_path / 'src' / 'shapes'
    rng = np.random.default_rng(0)
    for i in range(n):
        cls = src / ('round' if i % 2 else 'square')
        cls.mkdir(parents=True, exist_ok=True)
        name = f'{i:03d}' + ('x' * 110 if long_names else '') + '.png'
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(cls / name)
    path = tmp_path / 'shapes.tar'
    with tarfile.open(path, 'w', format=fmt) as tar:
        tar.add(src, arcname='shapes')
    with tarfile.open(path) as tar:
        offsets = [m.offset for m in tar.getmembers() if m.isfile()]
    return path, offsets


@pytest.mark.parametrize('long_names', [False, True])     # the fast reader, and tarfile's (GNU long names)
def test_a_tar_cut_short_is_refused_not_half_loaded(tmp_path, long_names):
    fmt = tarfile.GNU_FORMAT if long_names else tarfile.USTAR_FORMAT
    path, offsets = _image_tar(tmp_path, fmt=fmt, long_names=long_names)
    ds = load_dataset(path, root=None, image_size=16, cache=False)
    assert len(ds) == 12
    raw = path.read_bytes()
    end = raw.rstrip(b'\0')
    end_of_members = len(end) + (-len(end)) % 512
    for cut in (offsets[5], offsets[-1], end_of_members, end_of_members + 512):   # member boundaries,
        cut_path = tmp_path / f'cut{cut}.tar'                                    # one zero block of two
        cut_path.write_bytes(raw[:cut])
        with pytest.raises(DatasetError, match='cut short|truncated') as err:
            load_dataset(cut_path, root=None, image_size=16, cache=False)
        assert str(cut_path) in str(err.value) and exit_code(err.value) == DATA


def test_mnist_labels_out_of_range_are_an_error_naming_the_file(tmp_path):
    folder = tmp_path / 'mnist'
    write_mnist(folder, 'train', n=20, gz=False)
    y = np.arange(20, dtype=np.uint8) % 10
    y[7] = 12
    write_idx(folder / 'train-labels-idx1-ubyte', y, gz=False)
    with pytest.raises(DatasetError, match=r'label 12 of image 7 .*outside the 10 classes'):
        load_dataset('mnist', root=tmp_path, cache=False)
    with pytest.raises(DatasetError, match='label -1'):
        Dataset(np.zeros((2, 1, 4, 4), np.uint8), np.array([0, -1]), ['a', 'b'], 'toy')


def _ds(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return Dataset(rng.integers(0, 255, (n, 1, 8, 8), dtype=np.uint8), rng.integers(0, 3, n),
                   ['a', 'b', 'c'], 'toy')


def test_fingerprint_tells_a_changed_dataset():
    base = _ds()
    fp = fingerprint(base)
    assert fp == fingerprint(_ds()) and fp['images'] == 40 and fp['image_shape'] == [1, 8, 8]
    assert differences(fp, fingerprint(_ds())) == []
    shrunk = base.subset(slice(0, 30))
    assert differences(fp, fingerprint(shrunk)) == ['it had 40 images, now 30']
    replaced = _ds(seed=1)
    assert differences(fp, fingerprint(replaced)) == ['the same number of images, but different images or labels']
    relabelled = Dataset(base.images, (base.labels + 1) % 3, base.classes, 'toy')
    assert differences(fp, fingerprint(relabelled)) != []
    one_pixel = base.images.copy()
    one_pixel[-1, 0, 0, 0] ^= 1                                   # the last image is always hashed
    assert differences(fp, fingerprint(Dataset(one_pixel, base.labels, base.classes))) != []
    with pytest.raises(DatasetError, match='changed since the run began: it had 40 images, now 30.*'
                                           '--allow-changed-data'):
        check(fp, fingerprint(shrunk), 'runs/x')
    assert check(fp, fingerprint(shrunk), 'runs/x', allow_changed=True) == ['it had 40 images, now 30']
    assert check(None, fingerprint(shrunk), 'runs/x') == []       # runs from before fingerprints

"""Chars74K's English/Img layout: 62 classes in the official order (0-9, A-Z, a-z), GoodImg only,
from a folder or from the EnglishImg.tgz archive read in place; every tenth image per class is test."""
import io
import tarfile

import numpy as np
import pytest
from PIL import Image

from minigan.data import DatasetError, DatasetWarning, load_dataset
from minigan.data import chars74k
from test_data_common import shared_data

SHARED = shared_data()


def png(seed, size=(12, 17), mode='RGB'):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).convert(mode).save(buf, format='PNG')
    return buf.getvalue()


def make_archive(path, per_class):
    """EnglishImg.tgz's layout: GoodImg/Bmp, GoodImg/Msk and BadImag/Bmp; only GoodImg/Bmp counts."""
    with tarfile.open(path, 'w:gz') as tar:
        for sample, n in per_class.items():
            for i in range(n):
                for part in ('GoodImg/Bmp', 'GoodImg/Msk', 'BadImag/Bmp'):
                    name = f'English/Img/{part}/Sample{sample:03d}/img{sample:03d}-{i + 1:05d}.png'
                    data = png(sample * 100 + i, mode='L' if i == 1 else 'RGB')   # a grey photo too
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


def test_classes_are_the_62_characters_in_official_order():
    assert len(chars74k.CLASSES) == 62
    assert chars74k.CLASSES[:11] == list('0123456789A') and chars74k.CLASSES[35:37] == ['Z', 'a']
    assert chars74k.CLASSES[-1] == 'z'


def test_archive_is_read_in_place_with_a_fixed_split(tmp_path):
    make_archive(tmp_path / 'EnglishImg.tgz', {1: 11, 12: 3, 62: 10})     # '0', 'B', 'z'
    with pytest.warns(DatasetWarning, match='differs from the official 85d157e0c58f998e1cda8def62bcda0d'):
        train = load_dataset('chars74k', root=tmp_path, split='train', image_size=16)
    with pytest.warns(DatasetWarning, match='differs from the official'):
        test = load_dataset('chars74k', root=tmp_path, split='test', image_size=16)
    assert train.images.shape == (11 - 1 + 3 + 10 - 1, 3, 16, 16) and train.images.dtype == np.uint8
    assert list(test.labels) == [0, 61]                        # the 10th image of '0' and of 'z'
    assert list(np.bincount(train.labels, minlength=62)[[0, 11, 61]]) == [10, 3, 9]
    assert train.classes == chars74k.CLASSES and train.classes[train.labels[-1]] == 'z'


def test_missing_files_say_where_to_put_them(tmp_path):
    with pytest.raises(DatasetError, match='EnglishImg.tgz not found.*download=True'):
        load_dataset('chars74k', root=tmp_path)


def test_a_folder_without_sample_folders_is_refused(tmp_path):
    (tmp_path / 'English/Img/GoodImg/Bmp/Other').mkdir(parents=True)
    (tmp_path / 'English/Img/GoodImg/Bmp/Other/x.png').write_bytes(png(0))
    with pytest.raises(DatasetError, match='no GoodImg/Bmp/SampleNNN'):
        load_dataset('chars74k', root=tmp_path)


@pytest.mark.data
@pytest.mark.skipif(SHARED is None or not (SHARED / 'chars74k-sample').is_dir(),
                    reason='no ../shared/data/chars74k-sample next to the repository')
def test_the_shared_sample_loads_as_digits(tmp_path):
    (tmp_path / 'chars74k').symlink_to(SHARED / 'chars74k-sample', target_is_directory=True)
    train = load_dataset('chars74k', root=tmp_path, split='train')
    test = load_dataset('chars74k', root=tmp_path, split='test')
    # SOURCES.md: the first 20 photos of each digit class, Sample001 ('0') to Sample010 ('9')
    assert len(train) == 180 and len(test) == 20 and train.images.shape[1:] == (3, 32, 32)
    assert list(np.bincount(train.labels, minlength=62)[:11]) == [18] * 10 + [0]
    assert [train.classes[i] for i in sorted(set(test.labels))] == list('0123456789')
    assert train.images.std() > 20                               # real photos, not blank images

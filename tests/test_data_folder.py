"""Folders of images: formats and colour modes, resize + centre crop, layout rules, bad files,
multi-label CSV files, archives and the cache."""
import tarfile
import time
import warnings

import numpy as np
import pytest
from PIL import Image

from minigan.data import DatasetError, DatasetWarning, load_dataset


def _rgb(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def make_folder(root):
    """cat/ and dog/ in every format and colour mode, plus a corrupt JPEG and a text file."""
    (root / 'cat').mkdir(parents=True)
    (root / 'dog' / 'puppies').mkdir(parents=True)
    Image.fromarray(_rgb(40, 60, 0)).save(root / 'cat' / 'a.png')
    Image.fromarray(_rgb(50, 50, 1)).save(root / 'cat' / 'b.jpg', quality=90)
    Image.fromarray(_rgb(33, 47, 2)).convert('L').save(root / 'cat' / 'c.bmp')
    Image.fromarray(_rgb(20, 30, 3)).convert('P').save(root / 'cat' / 'd.gif')
    Image.fromarray(_rgb(64, 32, 4)).save(root / 'dog' / 'e.webp')
    rgba = np.dstack([_rgb(32, 32, 5), np.full((32, 32), 255, np.uint8)])
    Image.fromarray(rgba, 'RGBA').save(root / 'dog' / 'f.png')
    Image.fromarray((np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 60)).save(root / 'dog' / 'g.png')
    Image.fromarray(_rgb(100, 80, 6)).save(root / 'dog' / 'puppies' / 'h.jpeg')
    (root / 'dog' / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 this is not really a jpeg')
    (root / 'cat' / 'notes.txt').write_text('not an image')
    (root / '.hidden.png').write_bytes(b'skipped silently')
    return root


def test_class_folders_formats_and_one_warning(tmp_path):
    folder = make_folder(tmp_path / 'pets')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        ds = load_dataset(folder, root=tmp_path / 'data')
    ours = [w for w in caught if issubclass(w.category, DatasetWarning)]
    assert len(ours) == 1
    msg = str(ours[0].message)
    assert 'skipped 2 of 10' in msg and 'broken.jpg' in msg and 'notes.txt' in msg
    assert ds.classes == ['cat', 'dog'] and len(ds) == 8
    assert ds.images.shape == (8, 3, 32, 32) and ds.images.dtype == np.uint8
    assert list(ds.labels) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert ds.name == 'pets'
    with pytest.warns(DatasetWarning, match='skipped 2'):
        grey = load_dataset(folder, root=tmp_path / 'data', image_size=64, channels=1)
    assert grey.images.shape == (8, 1, 64, 64)


def test_resize_shorter_side_then_centre_crop(tmp_path):
    img = np.zeros((32, 64, 3), np.uint8)                    # wide: red | green | green | blue
    img[:, :16] = (255, 0, 0)
    img[:, 16:48] = (0, 255, 0)
    img[:, 48:] = (0, 0, 255)
    (tmp_path / 'x').mkdir()
    Image.fromarray(img).save(tmp_path / 'x' / 'wide.png')
    ds = load_dataset(tmp_path / 'x', root=tmp_path / 'data', image_size=16)
    out = ds.images[0].astype(int)
    assert out.shape == (3, 16, 16)
    assert np.abs(out[:, :, 2:-2] - np.array([0, 255, 0])[:, None, None]).max() <= 3   # the centre only
    up = load_dataset(tmp_path / 'x', root=tmp_path / 'data', image_size=128).images[0]
    assert up.shape == (3, 128, 128) and abs(int(up[1, 64, 64]) - 255) <= 3


def test_transparent_and_palette_images_become_rgb_on_white(tmp_path):
    (tmp_path / 'x').mkdir()
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[8:24, 8:24] = (200, 0, 0, 255)                       # opaque red square, transparent around
    Image.fromarray(rgba, 'RGBA').save(tmp_path / 'x' / 'a.png')
    ds = load_dataset(tmp_path / 'x', root=tmp_path / 'data')
    assert tuple(ds.images[0, :, 0, 0]) == (255, 255, 255)
    assert tuple(ds.images[0, :, 16, 16]) == (200, 0, 0)
    grey = load_dataset(tmp_path / 'x', root=tmp_path / 'data', channels=1).images
    assert grey[0, 0, 0, 0] == 255 and grey[0, 0, 16, 16] == round(0.299 * 200)


def test_flat_folder_is_one_class_and_split_folders(tmp_path):
    flat = tmp_path / 'bicycles'
    flat.mkdir()
    for i in range(3):
        Image.fromarray(_rgb(32, 32, i)).save(flat / f'{i}.png')
    ds = load_dataset(flat, root=tmp_path / 'data')
    assert ds.classes == ['bicycles'] and list(ds.labels) == [0, 0, 0]
    with pytest.raises(DatasetError, match='no test/ sub-folder'):
        load_dataset(flat, root=tmp_path / 'data', split='test')

    split = tmp_path / 'split'
    for part, n in [('train', 3), ('test', 2)]:
        for cls in ['a', 'b']:
            (split / part / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(_rgb(32, 32, i)).save(split / part / cls / f'{i}.png')
    train = load_dataset(split, root=tmp_path / 'data', split='train')
    test = load_dataset(split, root=tmp_path / 'data', split='test')
    assert (len(train), len(test)) == (6, 4) and train.classes == test.classes == ['a', 'b']
    with pytest.raises(DatasetError, match='split'):
        load_dataset(split, root=tmp_path / 'data', split='val')


def test_leading_folders_shared_by_every_image_are_looked_through(tmp_path):
    deep = tmp_path / 'English' / 'Img' / 'Good'
    for cls in ['Sample001', 'Sample002']:
        (deep / cls).mkdir(parents=True)
        Image.fromarray(_rgb(32, 32, 0)).save(deep / cls / 'x.png')
    (tmp_path / 'README').write_text('about the data')
    with pytest.warns(DatasetWarning, match='README'):
        ds = load_dataset(tmp_path, root=tmp_path / 'data_cache')
    assert ds.classes == ['Sample001', 'Sample002']


def test_empty_text_only_and_undecodable_folders_are_errors(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DatasetError, match='empty'):
        load_dataset(tmp_path / 'empty', root=tmp_path / 'data')
    (tmp_path / 'texts').mkdir()
    for i in range(3):
        (tmp_path / 'texts' / f'{i}.txt').write_text('hello')
    with pytest.raises(DatasetError, match='no images in .*texts'):
        load_dataset(tmp_path / 'texts', root=tmp_path / 'data')
    (tmp_path / 'bad').mkdir()
    (tmp_path / 'bad' / 'x.jpg').write_bytes(b'nope')
    with pytest.raises(DatasetError, match='no readable images'):
        load_dataset(tmp_path / 'bad', root=tmp_path / 'data')
    with pytest.raises(DatasetError, match='unknown dataset'):
        load_dataset(tmp_path / 'missing', root=tmp_path / 'data')


def _labelled_folder(tmp_path):
    folder = tmp_path / 'illusions'
    (folder / 'more').mkdir(parents=True)
    for name in ['a.png', 'b.png', 'more/c.png']:
        Image.fromarray(_rgb(32, 32, len(name))).save(folder / name)
    return folder


def test_multilabel_csv_gives_multi_hot_rows(tmp_path):
    folder = _labelled_folder(tmp_path)
    csv = tmp_path / 'labels.csv'
    csv.write_text('filename,labels\na.png,spiral;motion\nmore/c.png,colour\nb.png,motion\n')
    ds = load_dataset(folder, root=tmp_path / 'data', labels_file=csv)
    assert ds.multilabel and ds.labels.dtype == np.float32 and ds.classes == ['spiral', 'motion', 'colour']
    np.testing.assert_array_equal(ds.labels, [[1, 1, 0], [0, 0, 1], [0, 1, 0]])
    # one column per class, 0/1, with a header; a labels file inside the folder is not an image
    (folder / 'labels.csv').write_text('file,spiral,motion\na.png,1,0\nc.png,1,1\n')
    with pytest.warns(DatasetWarning, match='not named in'):
        ds = load_dataset(folder, root=tmp_path / 'data', labels_file=folder / 'labels.csv')
    np.testing.assert_array_equal(ds.labels, [[1, 0], [1, 1]])
    assert ds.classes == ['spiral', 'motion']


def test_labels_file_naming_missing_images_is_an_error(tmp_path):
    folder = _labelled_folder(tmp_path)
    csv = tmp_path / 'labels.csv'
    csv.write_text('a.png,x\nghost.png,y\n')
    with pytest.raises(DatasetError, match=r'labels.csv names 1 image\(s\) not found.*ghost.png'):
        load_dataset(folder, root=tmp_path / 'data', labels_file=csv)
    with pytest.raises(DatasetError, match='not found'):
        load_dataset(folder, root=tmp_path / 'data', labels_file=tmp_path / 'nope.csv')


def test_an_archive_reads_like_its_folder(tmp_path):
    folder = make_folder(tmp_path / 'pets')
    with tarfile.open(tmp_path / 'pets.tar.gz', 'w:gz') as tar:
        tar.add(folder, arcname='pets')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DatasetWarning)
        a = load_dataset(folder, root=tmp_path / 'data')
        b = load_dataset(tmp_path / 'pets.tar.gz', root=tmp_path / 'data')
        holder = tmp_path / 'holder'
        holder.mkdir()
        (tmp_path / 'pets.tar.gz').rename(holder / 'pets.tar.gz')   # a folder holding only an archive
        c = load_dataset(holder, root=tmp_path / 'data')
    assert a.classes == b.classes == c.classes
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, c.labels)


def test_second_load_comes_from_the_cache_and_notices_changes(tmp_path):
    folder = tmp_path / 'imgs'
    (folder / 'k').mkdir(parents=True)
    for i in range(300):
        Image.fromarray(_rgb(48, 48, i)).save(folder / 'k' / f'{i}.jpg')
    t = time.perf_counter()
    a = load_dataset(folder, root=tmp_path / 'data', workers=2)
    first = time.perf_counter() - t
    t = time.perf_counter()
    b = load_dataset(folder, root=tmp_path / 'data')
    assert time.perf_counter() - t < min(1.0, first)
    np.testing.assert_array_equal(a.images, b.images)
    Image.fromarray(_rgb(48, 48, 999)).save(folder / 'k' / 'new.jpg')
    c = load_dataset(folder, root=tmp_path / 'data')
    assert len(c) == 301
    serial = load_dataset(folder, root=tmp_path / 'data', workers=0, cache=False)
    np.testing.assert_array_equal(serial.images, c.images)           # the pool changes nothing

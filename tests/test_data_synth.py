"""The embedded "synth" set: shapes, balance, determinism, content, caching, and the grid."""
import time

import numpy as np
import pytest

from minigan.data import DatasetError, DatasetWarning, load_dataset, save_grid
from minigan.data import synth

from test_data_common import need_slow


def test_shapes_dtype_and_balanced_classes():
    x, y = synth.generate(1000, 'train', seed=0, workers=0)
    assert x.shape == (1000, 3, 32, 32) and x.dtype == np.uint8
    assert y.shape == (1000,) and y.dtype == np.int64
    assert np.array_equal(np.bincount(y, minlength=10), np.full(10, 100))


def test_deterministic_whatever_the_number_of_workers():
    a, ya = synth.generate(1000, 'train', seed=3, workers=0)
    b, yb = synth.generate(1000, 'train', seed=3, workers=2)
    assert np.array_equal(a, b) and np.array_equal(ya, yb)


def test_seed_and_split_change_the_images():
    a, _ = synth.generate(500, 'train', seed=0, workers=0)
    b, _ = synth.generate(500, 'train', seed=1, workers=0)
    c, _ = synth.generate(500, 'test', seed=0, workers=0)
    assert (a != b).mean() > 0.5 and (a != c).mean() > 0.5


def test_a_smaller_set_is_the_start_of_a_larger_one():
    a, ya = synth.generate(500, 'train', seed=0, workers=0)
    b, yb = synth.generate(1000, 'train', seed=0, workers=0)
    assert np.array_equal(a, b[:500]) and np.array_equal(ya, yb[:500])


def test_images_have_contrast_and_varied_colours():
    x, _ = synth.generate(500, 'test', seed=0, workers=0)
    xf = x.astype(np.float32)
    assert (xf.std(axis=(1, 2, 3)) > 8).mean() > 0.95          # a digit on a background, not blank
    means = xf.mean(axis=(2, 3))                               # (N, 3) average colours
    assert means.std(axis=0).min() > 20                         # backgrounds vary
    assert (x == 0).mean() < 0.05 and (x == 255).mean() < 0.05  # not clipped flat


def _features(x):
    g = x.astype(np.float32).mean(1)[:, 4:28, 8:24]
    g = (g - g.mean(axis=(1, 2), keepdims=True)) / (g.std(axis=(1, 2), keepdims=True) + 1e-6)
    g *= np.sign((g ** 3).mean(axis=(1, 2)))[:, None, None]      # make the strokes bright
    return g.reshape(len(g), -1)


def test_the_label_is_the_centre_digit():
    # a nearest-centroid classifier on raw pixels beats chance (0.1) clearly: labels carry the digit
    x, y = synth.generate(2000, 'train', seed=0, workers=2)
    xt, yt = synth.generate(500, 'test', seed=0, workers=0)
    f, ft = _features(x), _features(xt)
    centroids = np.stack([f[y == k].mean(0) for k in range(10)])
    accuracy = (np.argmax(ft @ centroids.T, 1) == yt).mean()
    assert accuracy > 0.18, accuracy


def test_bundled_font_only_and_other_sizes():
    x, y = synth.generate(100, 'test', seed=0, image_size=64, fonts='bundled', workers=0)
    assert x.shape == (100, 3, 64, 64)
    with pytest.raises(DatasetError, match='font file'):
        synth.generate(10, fonts=['/no/such/font.ttf'])
    with pytest.raises(DatasetError, match='splits'):
        synth.generate(10, split='extra')


def test_load_dataset_synth_is_cached(tmp_path):
    t = time.perf_counter()
    a = load_dataset('synth', root=tmp_path, split='test', n=1000)
    build = time.perf_counter() - t
    assert len(a) == 1000 and a.classes == [str(d) for d in range(10)]
    assert a.images.shape == (1000, 3, 32, 32) and a.labels.dtype == np.int64
    files = list((tmp_path / 'cache').glob('synth-*.npz'))
    assert len(files) == 1
    t = time.perf_counter()
    b = load_dataset('synth', root=tmp_path, split='test', n=1000)
    assert time.perf_counter() - t < max(1.0, build / 2)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    grey = load_dataset('synth', root=tmp_path, split='test', n=1000, channels=1)
    assert grey.images.shape == (1000, 1, 32, 32)


def test_a_corrupt_cache_is_rebuilt_not_trusted(tmp_path):
    a = load_dataset('synth', root=tmp_path, split='test', n=500)
    (entry,) = (tmp_path / 'cache').glob('synth-*.npz')
    raw = bytearray(entry.read_bytes())
    raw[len(raw) // 2] ^= 0xFF                                  # one flipped byte inside the images
    entry.write_bytes(bytes(raw))
    with pytest.warns(DatasetWarning, match='rebuilding'):
        b = load_dataset('synth', root=tmp_path, split='test', n=500)
    assert np.array_equal(a.images, b.images)
    entry.write_bytes(entry.read_bytes()[:1000])                # truncated
    with pytest.warns(DatasetWarning, match='rebuilding'):
        c = load_dataset('synth', root=tmp_path, split='test', n=500)
    assert np.array_equal(a.images, c.images)


def test_save_grid_writes_a_png(tmp_path):
    from PIL import Image
    x, _ = synth.generate(20, 'test', seed=0, workers=0)
    path = save_grid(x, tmp_path / 'g.png', nrow=8, padding=2)
    with Image.open(path) as img:
        assert img.size == (8 * 34 + 2, 3 * 34 + 2) and img.mode == 'RGB'
        tile = np.asarray(img)[2:34, 2:34].transpose(2, 0, 1)
    assert np.array_equal(tile, x[0])
    floats = x.astype(np.float32) / 127.5 - 1                   # the [-1, 1] range round-trips
    save_grid(floats, tmp_path / 'f.png', nrow=8)
    with Image.open(tmp_path / 'f.png') as img:
        assert np.array_equal(np.asarray(img)[2:34, 2:34].transpose(2, 0, 1), x[0])


@pytest.mark.slow
def test_50000_images_in_under_20_seconds(request):
    need_slow(request)
    t = time.perf_counter()
    x, y = synth.generate(50_000, 'train', seed=0)
    took = time.perf_counter() - t
    assert x.shape == (50_000, 3, 32, 32)
    assert np.array_equal(np.bincount(y), np.full(10, 5000))
    assert took < 20, f'{took:.1f} s'

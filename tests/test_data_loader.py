"""DataLoader: batches, scaling to [-1, 1], shuffling, augmentation, resuming, the thread, overhead."""
import threading
import time

import numpy as np
import pytest

import minigan as mg
from minigan.data import DataLoader, Dataset, DatasetError


def _dataset(n=103, c=3, h=8, w=6, seed=0, multilabel=False):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, c, h, w), dtype=np.uint8)
    images[0, 0, 0, 0], images[0, 0, 0, 1] = 0, 255                     # both ends of the range
    labels = (rng.random((n, 4)) < 0.3).astype(np.float32) if multilabel else rng.integers(0, 10, n)
    return Dataset(images, labels, [str(i) for i in range(4 if multilabel else 10)], 'toy', 'train')


def _scaled(u8):
    """uint8 -> the nearest float32 to x / 127.5 - 1 (what the loader gives)."""
    return (np.asarray(u8, dtype=np.float64) / 127.5 - 1).astype(np.float32)


def _collect(loader):
    return [(x.numpy(), y.numpy()) for x, y in loader]


def test_batches_in_order_scaled_exactly_to_minus_one_one():
    ds = _dataset()
    loader = DataLoader(ds, batch_size=16, shuffle=False, device='cpu')
    assert len(loader) == 7                                               # ceil(103 / 16)
    batches = _collect(loader)
    assert [len(x) for x, _ in batches] == [16] * 6 + [7]
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    assert x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(x, _scaled(ds.images))
    assert x.min() == -1.0 and x.max() == 1.0
    np.testing.assert_array_equal(y, ds.labels)


def test_drop_last_and_tensor_types():
    ds = _dataset()
    loader = DataLoader(ds, batch_size=16, shuffle=True, drop_last=True, seed=1)
    assert len(loader) == 6
    got = list(loader)
    assert len(got) == 6
    images, labels = got[0]
    assert isinstance(images, mg.Tensor) and isinstance(labels, mg.Tensor)
    assert images.shape == (16, 3, 8, 6) and images.device == 'cpu' and not images.requires_grad


def test_shuffle_covers_every_image_once_and_changes_each_epoch():
    ds = _dataset(n=96)
    ds.labels = np.arange(96)                                            # labels identify images
    loader = DataLoader(ds, batch_size=32, shuffle=True, seed=5)
    e0 = np.concatenate([y for _, y in _collect(loader)])
    e1 = np.concatenate([y for _, y in _collect(loader)])
    assert sorted(e0) == list(range(96)) and sorted(e1) == list(range(96))
    assert not np.array_equal(e0, e1) and not np.array_equal(e0, np.arange(96))
    again = DataLoader(ds, batch_size=32, shuffle=True, seed=5)
    assert np.array_equal(np.concatenate([y for _, y in _collect(again)]), e0)
    other = DataLoader(ds, batch_size=32, shuffle=True, seed=6)
    assert not np.array_equal(np.concatenate([y for _, y in _collect(other)]), e0)


def test_default_seed_follows_manual_seed():
    ds = _dataset(n=64)
    ds.labels = np.arange(64)
    mg.manual_seed(11)
    a = np.concatenate([y for _, y in _collect(DataLoader(ds, batch_size=8, shuffle=True))])
    mg.manual_seed(11)
    b = np.concatenate([y for _, y in _collect(DataLoader(ds, batch_size=8, shuffle=True))])
    assert np.array_equal(a, b)


def test_flip_mirrors_about_half_the_images():
    ds = _dataset(n=400, h=5, w=7)
    ds.labels = np.arange(400)
    x = np.concatenate([b[0] for b in _collect(DataLoader(ds, batch_size=64, flip=True, seed=0))])
    orig = _scaled(ds.images)
    same = (x == orig).all(axis=(1, 2, 3))
    mirrored = (x == orig[..., ::-1]).all(axis=(1, 2, 3))
    assert (same | mirrored).all()
    assert 140 < mirrored.sum() < 260


@pytest.mark.parametrize('mode', ['constant', 'reflect'])
def test_random_crop_is_a_window_of_the_padded_image(mode):
    ds = _dataset(n=50, h=6, w=5)
    p = 2
    x = np.concatenate([b[0] for b in _collect(DataLoader(ds, batch_size=16, crop_padding=p,
                                                          padding_mode=mode, seed=2))])
    padded = _scaled(np.pad(ds.images, ((0, 0), (0, 0), (p, p), (p, p)), mode=mode))
    shifts = []
    for i in range(50):
        hits = [(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)
                if np.array_equal(padded[i, :, dy:dy + 6, dx:dx + 5], x[i])]
        assert hits, f'image {i} is no window of its padded original'
        shifts.append(hits[0])
    assert len(set(shifts)) > 5                                         # the windows vary


def test_state_dict_resumes_with_the_same_batches():
    ds = _dataset(n=100)
    kw = dict(batch_size=8, shuffle=True, flip=True, crop_padding=1, seed=4)
    reference = DataLoader(ds, **kw)
    full = _collect(reference) + _collect(reference)                    # epochs 0 and 1
    run = DataLoader(ds, **kw)
    seen = []
    for i, (x, y) in enumerate(run):
        seen.append((x.numpy(), y.numpy()))
        if i == 4:
            break
    state = run.state_dict()
    assert state['epoch'] == 0 and state['batch'] == 5
    resumed = DataLoader(ds, batch_size=8, shuffle=True, flip=True, crop_padding=1, seed=999)
    resumed.load_state_dict(state)
    rest = _collect(resumed) + _collect(resumed)
    combined = seen + rest
    assert len(combined) == len(full)
    for (a, b), (c, d) in zip(combined, full):
        assert np.array_equal(a, c) and np.array_equal(b, d)
    assert resumed.state_dict() == {'seed': 4, 'epoch': 2, 'batch': 0}


def test_epoch_argument_and_set_epoch():
    ds = _dataset(n=40)
    a = DataLoader(ds, batch_size=8, shuffle=True, seed=3)
    _collect(a)
    epoch1 = _collect(a)
    b = DataLoader(ds, batch_size=8, shuffle=True, seed=3, epoch=1)
    assert all(np.array_equal(p[1], q[1]) for p, q in zip(_collect(b), epoch1))
    c = DataLoader(ds, batch_size=8, shuffle=True, seed=3)
    c.set_epoch(1)
    assert all(np.array_equal(p[1], q[1]) for p, q in zip(_collect(c), epoch1))
    d = DataLoader(ds, batch_size=8, shuffle=True)
    d.load_state_dict({'seed': 3, 'epoch': 0, 'batch': len(d)})         # a finished epoch 0
    assert d.state_dict() == {'seed': 3, 'epoch': 1, 'batch': 0}
    assert all(np.array_equal(p[1], q[1]) for p, q in zip(_collect(d), epoch1))


def test_prefetch_thread_gives_the_same_batches_and_stops():
    ds = _dataset(n=90)
    kw = dict(batch_size=8, shuffle=True, flip=True, seed=7)
    sync = _collect(DataLoader(ds, prefetch=0, **kw))
    threaded = _collect(DataLoader(ds, prefetch=3, **kw))
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(sync, threaded))
    before = threading.active_count()
    loader = DataLoader(ds, batch_size=8, prefetch=2, seed=0)
    for i, _ in enumerate(loader):
        if i == 1:
            break
    list(loader)                                                        # a new pass closes the old one
    deadline = time.time() + 5
    while threading.active_count() > before and time.time() < deadline:
        time.sleep(0.02)
    assert threading.active_count() <= before


def test_errors_in_the_background_thread_reach_the_loop():
    ds = _dataset(n=20)
    loader = DataLoader(ds, batch_size=4)
    loader.make_batch = lambda idx, epoch, b: (_ for _ in ()).throw(RuntimeError('broken batch'))
    with pytest.raises(RuntimeError, match='broken batch'):
        next(iter(loader))


def test_multilabel_batches_are_float32():
    ds = _dataset(n=20, multilabel=True)
    x, y = next(iter(DataLoader(ds, batch_size=5)))
    assert y.dtype == np.float32 and y.shape == (5, 4)
    np.testing.assert_array_equal(y.numpy(), ds.labels[:5])


def test_batches_on_the_device(device):
    ds = _dataset(n=20)
    x, y = next(iter(DataLoader(ds, batch_size=5, device=device)))
    assert x.device == device and y.device == device
    np.testing.assert_allclose(x.numpy(), ds.images[:5] / 127.5 - 1, rtol=0, atol=1e-6)


def test_bad_arguments_are_explained():
    ds = _dataset(n=10)
    with pytest.raises(DatasetError, match='batch_size'):
        DataLoader(ds, batch_size=0)
    with pytest.raises(DatasetError, match='larger than the dataset'):
        DataLoader(ds, batch_size=11, drop_last=True)
    with pytest.raises(DatasetError, match='uint8'):
        DataLoader((ds.images.astype(np.float32), ds.labels))
    with pytest.raises(DatasetError, match='labels'):
        DataLoader((ds.images, ds.labels[:5]))
    with pytest.raises(DatasetError, match='padding_mode'):
        DataLoader(ds, crop_padding=2, padding_mode='wrap')
    with pytest.raises(ValueError, match='device'):
        DataLoader(ds, device='tpu')
    with pytest.raises(DatasetError, match='state'):
        DataLoader(ds).load_state_dict({'epoch': 1})


def test_overhead_is_small_next_to_a_training_step():
    # a DCGAN-32 step at batch 64 takes 200-400 ms; preparing a batch must cost under 5% of that
    rng = np.random.default_rng(0)
    ds = Dataset(rng.integers(0, 256, (5000, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, 5000),
                 [str(i) for i in range(10)])
    loader = DataLoader(ds, batch_size=64, shuffle=True, drop_last=True, flip=True, crop_padding=2,
                        seed=0, prefetch=0)
    it = iter(loader)
    next(it)
    t = time.perf_counter()
    for _ in range(20):
        next(it)
    per_batch = (time.perf_counter() - t) / 20
    assert per_batch < 0.05 * 0.2, f'{per_batch * 1e3:.2f} ms per batch'
    # with the thread, the loop waits for (almost) nothing while it "trains"
    waits = []
    loader = DataLoader(ds, batch_size=64, shuffle=True, drop_last=True, flip=True, seed=0)
    it = iter(loader)
    for _ in range(10):
        t = time.perf_counter()
        next(it)
        waits.append(time.perf_counter() - t)
        time.sleep(0.02)                                                # the training step
    assert np.median(waits[1:]) < 0.005

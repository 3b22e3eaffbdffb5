"""Conditional GANs end to end: `train --conditional`, `sample --class`, `evaluate`'s per-class scores.

Runs use 24 synth images of 32x32, batch 4, ngf = ndf = 4, nz = 8 (a step takes a fraction of a
second), on a tiny folder dataset of three classes, and on the Chars74K excerpt of ../shared.
"""
import json
import os

import numpy as np
import pytest
from PIL import Image

import minigan as mg
from minigan import checkpoint, runlog
from minigan import evaluate as evaluate_mod
from minigan import random as mgr
from minigan import sample as sample_mod
from minigan import train as train_mod
from minigan.evaluation import per_class_metrics
from minigan.gan import losses
from minigan.gan.sampling import row_labels
from minigan.models import ProjectionDiscriminator
from test_data_common import shared_data
from test_data_formats import write_cifar, write_mnist, write_svhn


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp('data'))


def tiny(data_dir, out, *extra, model='dcgan', data='synth'):
    return ['--data', data, '--data-dir', data_dir, '--subset', '24', '--batch-size', '4', '--nz', '8',
            '--ngf', '4', '--ndf', '4', '--quiet', '--device', 'cpu', '--seed', '3', '--model', model,
            '--conditional', '--out', str(out)] + [str(a) for a in extra]


def records(run_dir, kind=None):
    rs = runlog.read_jsonl(os.path.join(run_dir, 'metrics.jsonl'))
    return [r for r in rs if kind is None or r['type'] == kind]


@pytest.mark.parametrize('model', ['dcgan', 'ralsgan', 'wgan', 'wgan-gp'])
def test_every_gan_trains_conditionally_and_records_it(model, data_dir, tmp_path):
    out = tmp_path / 'run'
    assert train_mod.main(tiny(data_dir, out, '--max-steps', '2', '--sample-every', '1', model=model)) == 0
    for r in records(out, 'step'):
        assert np.isfinite(r['loss_d']) and np.isfinite(r['loss_g'])
    cfg = json.loads((out / 'config.json').read_text())
    assert cfg['conditional'] is True and cfg['dataset']['classes'] == 10
    st = checkpoint.load(checkpoint.latest_path(str(out)))
    assert st['G']['embed.weight'].shape == (10, 8)            # one learned vector per class, joined to z
    assert st['D']['embed.weight'].shape[0] == 10              # the projection's class vectors
    assert (out / 'samples' / 'step_000002.png').is_file()


@pytest.mark.parametrize('model,total,half,epochs', [('dcgan', 9, 4, 2), ('ralsgan', 5, 2, 1),
                                                     ('wgan-gp', 4, 1, 2)])
def test_conditional_resume_equals_a_straight_run(model, total, half, epochs, data_dir, tmp_path):
    """N steps straight vs N/2 then --resume to N: the same metrics (timing aside) and weights, with the
    fake classes drawn from minigan's random state, which the checkpoint restores."""
    from minigan import dispatch
    a, b = tmp_path / 'straight', tmp_path / 'resumed'
    common = ['--epochs', epochs, '--sample-every', '3', '--checkpoint-every', '1000']
    with dispatch.conv_backend('numpy'):
        assert train_mod.main(tiny(data_dir, a, *common, '--max-steps', total, model=model)) == 0
        assert train_mod.main(tiny(data_dir, b, *common, '--max-steps', half, model=model)) == 0
        assert train_mod.main(['--resume', str(b), '--max-steps', str(total), '--quiet']) == 0
    ra = [runlog.without_timing(r) for r in records(a)]
    rb = [runlog.without_timing(r) for r in records(b)]
    assert ra == rb and len(records(a, 'step')) == total
    sa = checkpoint.load(checkpoint.latest_path(str(a)))
    sb = checkpoint.load(checkpoint.latest_path(str(b)))
    for net in ('G', 'D'):
        for k in sa[net]:
            np.testing.assert_array_equal(sa[net][k], sb[net][k])


@pytest.mark.parametrize('model,message', [('classifier', '--conditional goes with a GAN'),
                                           ('sr', '--conditional goes with a GAN')])
def test_conditional_is_refused_for_models_without_a_generator_of_classes(model, message, data_dir, tmp_path,
                                                                          capsys):
    assert train_mod.main(tiny(data_dir, tmp_path / 'r', '--max-steps', '1', model=model)) == 2
    err = capsys.readouterr().err
    assert message in err and 'Traceback' not in err and len(err.strip().splitlines()) == 1


def test_batch_randint_draws_the_same_labels_on_any_number_of_processes():
    mgr.manual_seed(11)
    whole = mgr.batch_randint(0, 10, 8).numpy()
    shards = []
    try:
        for k in range(2):
            mgr.manual_seed(11)
            mgr.set_batch_shard(k, 2)
            shards.append(mgr.batch_randint(0, 10, 4).numpy())
    finally:
        mgr.set_batch_shard(0, 1)
    np.testing.assert_array_equal(np.concatenate(shards), whole)
    assert whole.dtype == np.int64 and whole.min() >= 0 and whole.max() < 10


def test_grid_rows_cycle_over_the_classes():
    np.testing.assert_array_equal(row_labels(10, 64)[::8], np.arange(8))
    np.testing.assert_array_equal(row_labels(3, 24)[::8], [0, 1, 2])
    assert (row_labels(3, 24).reshape(3, 8) == np.array([[0], [1], [2]])).all()


def test_conditional_penalty_stays_per_example():
    """The WGAN-GP penalty of a projection critic on a batch is the mean of each example's penalty
    taken alone (same mixing weight, same class): no example's gradient depends on another's."""
    mg.manual_seed(0)
    D = ProjectionDiscriminator(5, nc=1, ndf=4, batch_norm=False)
    real, fake = mg.randn(3, 1, 32, 32), mg.randn(3, 1, 32, 32)
    y = mg.tensor(np.array([0, 3, 4]))
    alpha = mg.tensor(np.array([0.2, 0.5, 0.9], np.float32))
    whole = losses.gradient_penalty(lambda x: D(x, y), real, fake, alpha).item()
    alone = [losses.gradient_penalty(lambda x, i=i: D(x, y[i:i + 1]), real[i:i + 1], fake[i:i + 1],
                                     alpha[i:i + 1]).item() for i in range(3)]
    np.testing.assert_allclose(whole, np.mean(alone), rtol=1e-5)
    w = D.embed.weight                                          # the penalty reaches the class vectors
    gp = losses.gradient_penalty(lambda x: D(x, y), real, fake, alpha)
    g, = mg.autograd.grad([gp], [w])
    assert np.abs(g.numpy()[[0, 3, 4]]).sum() > 0 and np.abs(g.numpy()[[1, 2]]).sum() == 0


# ---- sample --class ------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def cond_run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp('cond') / 'run'
    assert train_mod.main(tiny(data_dir, out, '--max-steps', '3')) == 0
    return out


def test_sample_draws_the_asked_class(cond_run, tmp_path):
    a, b, c = tmp_path / 'a.png', tmp_path / 'b.png', tmp_path / 'c.png'
    for path, klass in ((a, '7'), (b, '7'), (c, '3')):
        assert sample_mod.main([str(cond_run), '--class', klass, '--seed', '1', '--n', '8', '--scale', '1',
                                '--device', 'cpu', '--out', str(path)]) == 0
    pa, pb, pc = (np.asarray(Image.open(p)) for p in (a, b, c))
    np.testing.assert_array_equal(pa, pb)                     # seeded
    assert np.abs(pa.astype(int) - pc).mean() > 0             # the class changes the images


def test_sample_default_grid_has_a_row_per_class(cond_run, tmp_path):
    out = tmp_path / 'g.png'
    assert sample_mod.main([str(cond_run), '--scale', '1', '--device', 'cpu', '--out', str(out)]) == 0
    w, h = Image.open(out).size
    assert (w, h) == (8 * 34 + 2, 10 * 34 + 2)                # 10 classes, 8 per row, 2 px padding


@pytest.mark.parametrize('args,expect', [(['--class', 'cat'], "unknown class 'cat'"),
                                         (['--class', '12'], 'one of the class names: 0, 1, 2')])
def test_sample_refuses_an_unknown_class(cond_run, args, expect, capsys):
    assert sample_mod.main([str(cond_run), '--device', 'cpu'] + args) == 2
    err = capsys.readouterr().err
    assert expect in err and 'Traceback' not in err


def test_sample_refuses_a_class_for_a_run_that_is_not_conditional(data_dir, tmp_path, capsys):
    out = tmp_path / 'plain'
    args = [a for a in tiny(data_dir, out, '--max-steps', '1') if a != '--conditional']
    assert train_mod.main(args) == 0
    assert sample_mod.main([str(out), '--class', '3', '--device', 'cpu']) == 2
    assert 'is not a conditional run' in capsys.readouterr().err


# ---- evaluate ------------------------------------------------------------------------------------
def test_per_class_metrics_of_known_features():
    class Ref:
        pass
    rng = np.random.default_rng(0)
    ref = Ref()
    ref.labels = np.repeat([0, 1], 50)
    ref.features = rng.standard_normal((100, 3)) + ref.labels[:, None] * 5
    labels = np.repeat([0, 1], 50)
    probs = np.eye(2)[np.r_[np.zeros(40, int), np.ones(10, int), np.ones(50, int)]]
    rows = per_class_metrics(ref.features, probs, labels, ref, ['a', 'b'])
    assert [r['class'] for r in rows] == ['a', 'b']
    assert rows[0]['accuracy'] == pytest.approx(0.8) and rows[1]['accuracy'] == 1.0
    assert abs(rows[0]['fd']) < 1e-6 and rows[0]['n'] == rows[0]['n_real'] == 50   # the same features: fd 0


def test_evaluate_reports_per_class_accuracy_and_fd(cond_run, tmp_path, capsys):
    out = tmp_path / 'ev'
    assert evaluate_mod.main([str(cond_run), '--n', '40', '--evaluator-epochs', '1', '--cache-dir',
                              str(tmp_path / 'cache'), '--kid-subsets', '2', '--out', str(out)]) == 0
    text = capsys.readouterr().out
    assert 'read as the class asked for' in text
    m = json.loads((out / 'metrics.json').read_text())
    assert [r['index'] for r in m['per_class']] == list(range(10))
    assert all(r['n'] == 4 and 0 <= r['accuracy'] <= 1 for r in m['per_class'])
    assert 0 <= m['class_accuracy'] <= 1 and m['mean_class_fd'] >= 0
    np.testing.assert_allclose(m['class_accuracy'], np.mean([r['accuracy'] for r in m['per_class']]))


# ---- other labelled datasets -----------------------------------------------------------------------
def test_conditional_on_a_folder_dataset_and_sampling_a_class_by_name(tmp_path):
    root = tmp_path / 'shapes'
    rng = np.random.default_rng(0)
    for k, name in enumerate(('circle', 'square', 'star')):
        (root / name).mkdir(parents=True)
        for i in range(8):
            a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) // (k + 1)
            Image.fromarray(a).save(root / name / f'{i}.png')
    out = tmp_path / 'run'
    assert train_mod.main(tiny(str(tmp_path), out, '--max-steps', '2', data=str(root))) == 0
    assert json.loads((out / 'config.json').read_text())['dataset']['classes'] == 3
    assert sample_mod.main([str(out), '--class', 'square', '--n', '4', '--device', 'cpu',
                            '--out', str(tmp_path / 's.png')]) == 0
    assert sample_mod.main([str(out), '--class', 'dog', '--device', 'cpu']) == 2


@pytest.mark.filterwarnings('ignore::minigan.data.DatasetWarning')      # not the official files
@pytest.mark.parametrize('name,write,klass', [
    ('mnist', lambda root: write_mnist(root / 'mnist', 'train', n=24), '7'),
    ('svhn', lambda root: write_svhn(root / 'svhn' / 'train_32x32.mat', n=24), '0'),
    ('cifar10', lambda root: write_cifar(root / 'cifar10' / 'cifar-10-python.tar.gz', n_per_batch=5), 'cat')])
def test_conditional_on_the_official_archives(name, write, klass, tmp_path):
    """MNIST idx, SVHN .mat and CIFAR-10 pickles, written in their official layouts (random pixels):
    a conditional run learns their 10 classes and draws one by name."""
    write(tmp_path)
    out = tmp_path / 'run'
    assert train_mod.main(tiny(str(tmp_path), out, '--max-steps', '2', data=name)) == 0
    cfg = json.loads((out / 'config.json').read_text())
    assert cfg['conditional'] is True and cfg['dataset']['classes'] == 10
    st = checkpoint.load(checkpoint.latest_path(str(out)))
    assert st['G']['embed.weight'].shape[0] == 10 and st['D']['embed.weight'].shape[0] == 10
    picture = tmp_path / 'k.png'
    assert sample_mod.main([str(out), '--class', klass, '--n', '4', '--scale', '1', '--device', 'cpu',
                            '--out', str(picture)]) == 0
    assert Image.open(picture).size == (4 * 34 + 2, 34 + 2)     # one row of four 32x32 images


def test_conditional_on_chars74k(tmp_path, capsys):
    shared = shared_data()
    if shared is None or not (shared / 'chars74k-sample').is_dir():
        pytest.skip('the Chars74K excerpt ../shared/data/chars74k-sample is not here')
    (tmp_path / 'data').mkdir()
    os.symlink(shared / 'chars74k-sample', tmp_path / 'data' / 'chars74k')
    out = tmp_path / 'run'
    assert train_mod.main(tiny(str(tmp_path / 'data'), out, '--max-steps', '2', data='chars74k')) == 0
    assert json.loads((out / 'config.json').read_text())['dataset']['classes'] == 62
    for klass in ('A', '7', 'z'):
        assert sample_mod.main([str(out), '--class', klass, '--n', '4', '--device', 'cpu',
                                '--out', str(tmp_path / f'{klass}.png')]) == 0
    assert sample_mod.main([str(out), '--class', 'AA', '--device', 'cpu']) == 2
    assert "unknown class 'AA'" in capsys.readouterr().err


def test_a_folder_without_a_test_split_holds_out_images_of_every_class(tmp_path):
    """A folder lists its images class by class: the held-out test images are every 5th image, so
    each class has some, and the evaluator trains on all the images (seed 0, 3 classes x 10)."""
    from minigan.evaluation import real_splits
    root = tmp_path / 'shapes'
    rng = np.random.default_rng(0)
    for name in ('circle', 'square', 'star'):
        (root / name).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / name / f'{i}.png')
    cfg = {'data': str(root), 'data_dir': None, 'image_size': 32, 'dataset': {'image_shape': [3, 32, 32]}}
    split = real_splits(cfg)
    assert sorted(np.bincount(split.test_y).tolist()) == [2, 2, 2]        # every class held out alike
    assert len(split.train_x) == 24 and len(split.test_x) == 6 and split.n_evaluator == 30
    assert 'every 5th' in split.note

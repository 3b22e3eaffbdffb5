"""minigan.evaluate: generator metrics through an evaluator network, real-vs-real floors,
nearest-neighbour memorisation check, and the command line on a small run folder."""
import json
import os

import numpy as np
import pytest

import minigan as mg
import minigan.nn as nn
from minigan import evaluate as E

K, SHAPE = 5, (3, 8, 8)


def class_images(labels, rng, noise=0.3):
    """Images of K classes: class k is a fixed random pattern plus noise, in [-1, 1]."""
    templates = np.random.default_rng(123).uniform(-0.6, 0.6, (K,) + SHAPE)
    x = templates[labels] + noise * rng.normal(size=(len(labels),) + SHAPE)
    return np.clip(x, -1, 1).astype(np.float32)


def template_evaluator():
    """Features = correlation with each class template (Linear 1), logits = 4 x features (Linear 2)."""
    templates = np.random.default_rng(123).uniform(-0.6, 0.6, (K,) + SHAPE).reshape(K, -1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(templates.shape[1], K), nn.Linear(K, K))
    model[1].load_state_dict({'weight': templates / 10, 'bias': np.zeros(K)})
    model[2].load_state_dict({'weight': np.eye(K) * 4, 'bias': np.zeros(K)})
    return model


class DataGenerator(nn.Module):
    """A stand-in generator: each z picks an image of a class drawn from `probs` (a perfect
    generator when probs is uniform, a collapsed one when it is one-hot)."""

    def __init__(self, probs, noise=0.3):
        super().__init__()
        self.nz, self.probs, self.noise = 4, np.asarray(probs, np.float64), noise
        self.weight = nn.Parameter(np.zeros((4, 1), np.float32))      # something for .parameters()

    def forward(self, z):
        seed = int(abs(z.numpy()).sum() * 1e6) % 2 ** 32
        rng = np.random.default_rng(seed)
        labels = rng.choice(K, z.shape[0], p=self.probs)
        return mg.tensor(class_images(labels, rng, self.noise))


@pytest.fixture(scope='module')
def reference():
    rng = np.random.default_rng(0)
    test_y, train_y = rng.integers(0, K, 600), rng.integers(0, K, 600)
    return E.RealReference(template_evaluator(), class_images(test_y, rng), test_y,
                           class_images(train_y, rng), batch_size=256, kid_subsets=10, kid_subset_size=300)


def test_evaluator_features_are_the_input_of_the_last_linear():
    model = template_evaluator()
    x = class_images(np.arange(7) % K, np.random.default_rng(1))
    feats, probs = E.evaluator_outputs(model, x, batch_size=3)
    with mg.no_grad():
        f = model[1](model[0](mg.tensor(x))).numpy()
        logits = model(mg.tensor(x)).numpy()
    np.testing.assert_allclose(feats, f, rtol=1e-6)
    e = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs, e / e.sum(1, keepdims=True), rtol=1e-6)


def test_a_perfect_generator_scores_near_the_floor_and_a_collapsed_one_does_not(reference):
    ev = template_evaluator()
    good = E.evaluate_generator(DataGenerator(np.full(K, 1 / K)), ev, reference, n=600, floors=True,
                                kid_subsets=10, kid_subset_size=300)
    assert set(good) == {'fd', 'classifier_score', 'kid', 'modes', 'label_kl', 'fd_floor',
                         'classifier_score_floor', 'kid_floor', 'modes_floor', 'label_kl_floor'}
    assert good['modes'] == good['modes_floor'] == K
    assert good['fd'] < 3 * good['fd_floor'] + 1e-3
    assert abs(good['kid']) < 1e-2 and good['label_kl'] < 0.05
    assert good['classifier_score'] == pytest.approx(good['classifier_score_floor'], rel=0.1)
    bad = E.evaluate_generator(DataGenerator(np.eye(K)[2]), ev, reference, n=600,
                               kid_subsets=10, kid_subset_size=300)
    assert bad['modes'] == 1
    assert bad['classifier_score'] < 1.3 < good['classifier_score']
    assert bad['fd'] > 20 * good['fd'] and bad['kid'] > 20 * abs(good['kid'])
    assert bad['label_kl'] > 1
    half = E.evaluate_generator(DataGenerator([0.5, 0.5, 0, 0, 0]), ev, reference, n=600,
                                kid_subsets=10, kid_subset_size=300)
    assert half['modes'] == 2 and good['fd'] < half['fd'] < bad['fd']


def test_evaluate_generator_leaves_random_state_modes_and_buffers_alone():
    mg.manual_seed(5)
    G = nn.Sequential(nn.ConvTranspose2d(4, 3, 8, 1, 0), nn.BatchNorm2d(3), nn.Tanh())
    G.nz = 4
    ev = template_evaluator().train()
    rng = np.random.default_rng(2)
    test = class_images(rng.integers(0, K, 50), rng)
    state = mg.random.get_rng_state()
    before = [b.numpy() for b in G.buffers()]
    r1 = E.evaluate_generator(G, ev, test, n=40, kid_subsets=3, kid_subset_size=20)
    assert mg.random.get_rng_state() == state
    assert G.training and ev.training
    for b, old in zip(G.buffers(), before):
        np.testing.assert_array_equal(b.numpy(), old)
    r2 = E.evaluate_generator(G, ev, test, n=40, kid_subsets=3, kid_subset_size=20)
    assert r1 == r2                                   # same seed, same numbers
    assert E.latent_size(nn.Sequential(nn.ConvTranspose2d(7, 3, 4, 1, 0))) == 7


def test_nearest_neighbours_match_brute_force():
    rng = np.random.default_rng(3)
    pool = rng.integers(0, 256, (50, 3, 4, 4)).astype(np.uint8)
    queries = np.r_[pool[[7, 30]], rng.integers(0, 256, (3, 3, 4, 4)).astype(np.uint8)]
    idx = E.nearest_neighbours(queries, pool, k=3, chunk=16)
    d = ((queries.reshape(5, 1, -1).astype(float) - pool.reshape(1, 50, -1)) ** 2).sum(-1)
    np.testing.assert_array_equal(idx, np.argsort(d, axis=1, kind='stable')[:, :3])
    assert idx[0, 0] == 7 and idx[1, 0] == 30               # a training image finds itself
    fig = E.memorisation_figure(queries.astype(np.float32) / 127.5 - 1, pool, idx, scale=2, blocks=2)
    assert fig.size[0] > 2 * 4 * 8 and fig.size[1] > 3 * 8


def test_plot_metric_history(tmp_path):
    recs = [{'step': s, 'fd': 10 / s, 'fd_floor': 0.1, 'classifier_score': 1 + s / 100, 'kid': 1 / s,
             'modes': min(10, s), 'label_kl': 1 / s} for s in (1, 5, 20)]
    path = E.plot_metric_history(recs, str(tmp_path / 'm.png'))
    assert os.path.getsize(path) > 500


# ---- the command line on a hand-made run folder ----------------------------------------------
def write_run(run_dir, cfg, state):
    from minigan import checkpoint
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, 'config.json'), 'w') as f:
        json.dump(cfg, f)
    checkpoint.save(checkpoint.latest_path(run_dir), state)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    from minigan.models import Classifier32, build_discriminator, build_generator
    root = tmp_path_factory.mktemp('runs')
    base = {'data': 'synth', 'data_dir': None, 'image_size': 32, 'subset': 120, 'labels_file': None,
            'dataset': {'image_shape': [3, 32, 32], 'classes': 10}}
    gan = dict(base, model='dcgan', nz=16, ngf=8, ndf=8)
    mg.manual_seed(0)
    G, D = build_generator(gan, 3), build_discriminator(gan, 3)
    write_run(str(root / 'gan'), gan, {'model': 'dcgan', 'G': G.state_dict(), 'D': D.state_dict()})
    clf = Classifier32(3, 10)
    write_run(str(root / 'clf'), dict(base, model='classifier'), {'model': 'classifier', 'net': clf.state_dict()})
    return str(root / 'gan'), str(root / 'clf')


def test_command_line_on_a_gan_run(runs, tmp_path, capsys):
    gan, clf = runs
    out = tmp_path / 'm.json'
    assert E.main([gan, '--n', '40', '--n-test', '60', '--classifier', clf, '--json', str(out),
                   '--kid-subsets', '3', '--out', str(tmp_path / 'eval')]) == 0
    result = json.loads(out.read_text())
    assert set(result) == {'fd', 'classifier_score', 'kid', 'modes', 'label_kl', 'fd_floor',
                           'classifier_score_floor', 'kid_floor', 'modes_floor', 'label_kl_floor'}
    assert all(np.isfinite(v) for v in result.values())
    assert isinstance(result['modes'], int) and 1 <= result['modes'] <= 10
    text = capsys.readouterr().out
    assert 'real floor' in text and 'classifier_score' in text
    for name in ('samples.png', 'memorisation.png', 'metrics.json'):
        assert (tmp_path / 'eval' / name).is_file()
    details = json.loads((tmp_path / 'eval' / 'metrics.json').read_text())
    assert details['n'] == 40 and details['n_test'] == 60


def test_command_line_on_a_classifier_run(runs, tmp_path):
    _, clf = runs
    out = tmp_path / 'c.json'
    assert E.main([clf, '--json', str(out), '--out', str(tmp_path / 'eval')]) == 0
    result = json.loads(out.read_text())
    assert 0 <= result['accuracy'] <= 1 and set(result['per_class']) == {str(d) for d in range(10)}
    assert (tmp_path / 'eval' / 'confusion.png').is_file()


def test_command_line_errors(tmp_path, capsys):
    assert E.main([str(tmp_path), '--n', '10']) == 2
    assert 'config.json' in capsys.readouterr().err


def test_visualize_command_on_a_gan_discriminator(runs, tmp_path):
    from minigan import visualize as V
    gan, _ = runs
    assert V.main([gan, '--what', 'classes', 'saliency', 'layer', 'filters', '--steps', '3', '--channels', '0-1',
                   '--out', str(tmp_path / 'vis')]) == 0
    files = sorted(os.listdir(tmp_path / 'vis'))
    assert 'class_models.png' in files and 'filters.png' in files and 'saliency.png' in files and any(f.startswith('layer_') for f in files)


def test_evaluator_is_trained_once_and_cached(tmp_path):
    cfg = {'data': 'synth', 'data_dir': None, 'image_size': 32, 'dataset': {'image_shape': [3, 32, 32]}}
    state = mg.random.get_rng_state()
    run = E.get_evaluator(cfg, 64, cache_dir=str(tmp_path), epochs=1, say=lambda m: None)
    assert mg.random.get_rng_state() == state
    ckpt = os.path.join(run, 'checkpoints', 'latest.npz')
    stamp = os.path.getmtime(ckpt)
    assert E.get_evaluator(cfg, 64, cache_dir=str(tmp_path), epochs=1, say=pytest.fail) == run
    assert os.path.getmtime(ckpt) == stamp
    model = E.load_run_model(run, 'classifier')[0]
    assert model.n_classes == 10 and E.evaluator_accuracy(run) is not None


def test_multi_label_classifier_trains_and_reports_per_class_scores_at_a_threshold(tmp_path):
    """A folder of 16 images with a labels CSV (each image tagged 'red' and/or 'top', from how it was
    drawn): the classifier trains with a sigmoid + BCE per class, and `minigan.evaluate` reports
    precision, recall and F1 per class at the --threshold given."""
    from PIL import Image
    from minigan import train
    rng = np.random.default_rng(0)
    folder, rows = tmp_path / 'tags', ['file,red,top']
    folder.mkdir()
    for i in range(16):
        red, top = i % 2, (i // 2) % 2
        img = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
        img[..., 0] += np.uint8(180 * red)
        img[:16] += np.uint8(60 * top)
        Image.fromarray(img).save(folder / f'{i:02d}.png')
        rows.append(f'{i:02d}.png,{red},{top}')
    (tmp_path / 'tags.csv').write_text('\n'.join(rows) + '\n')
    run = tmp_path / 'run'
    assert train.main(['--model', 'classifier', '--data', str(folder), '--labels-file', str(tmp_path / 'tags.csv'),
                       '--data-dir', str(tmp_path / 'cache'), '--epochs', '2', '--batch-size', '8', '--quiet',
                       '--device', 'cpu', '--out', str(run)]) == 0
    out = tmp_path / 'scores.json'
    assert E.main([str(run), '--json', str(out), '--threshold', '0.3', '--out', str(tmp_path / 'eval')]) == 0
    result = json.loads(out.read_text())
    assert result['threshold'] == 0.3 and set(result['per_class']) == {'red', 'top'}
    for scores in result['per_class'].values():
        assert {'precision', 'recall', 'f1', 'support'} <= set(scores)
        assert all(0.0 <= scores[k] <= 1.0 for k in ('precision', 'recall', 'f1'))
        assert scores['support'] == 8

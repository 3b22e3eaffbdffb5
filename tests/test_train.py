"""The training command and its steps: `python -m minigan.train` on tiny data.

Every run here uses 24 synth images of 32x32, batch 4, and a generator and
discriminator 16 times narrower than DCGAN-32 (ngf = ndf = 4, nz = 8), so a
step takes a fraction of a second; the seed is fixed in each test.
"""
import json
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import minigan as mg
from minigan import checkpoint, run_config, run_recorder, runlog
from minigan import train as train_mod
from minigan.training import make_optimizer
from minigan.gan import losses
from minigan.gan.trainer import GANTrainer, wgan_critic_iters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp('data'))


def tiny(data_dir, out, *extra, model='dcgan'):
    return ['--data', 'synth', '--data-dir', data_dir, '--subset', '24', '--batch-size', '4',
            '--nz', '8', '--ngf', '4', '--ndf', '4', '--quiet', '--device', 'cpu', '--seed', '3',
            '--model', model, '--out', str(out)] + [str(a) for a in extra]


def records(run_dir, kind=None):
    rs = runlog.read_jsonl(os.path.join(run_dir, 'metrics.jsonl'))
    return [r for r in rs if kind is None or r['type'] == kind]


LOSS_KEYS = {'dcgan': ('loss_d', 'loss_g', 'd_x', 'd_g_z1', 'd_g_z2'),
             'ralsgan': ('loss_d', 'loss_g', 'c_real', 'c_fake'),
             'wgan': ('loss_d', 'loss_g', 'wasserstein'),
             'wgan-gp': ('loss_d', 'loss_g', 'wasserstein', 'gp'),
             'classifier': ('loss', 'acc')}


# ---- whole runs ---------------------------------------------------------------------------
@pytest.mark.parametrize('model', ['dcgan', 'ralsgan', 'wgan', 'wgan-gp', 'classifier'])
def test_every_model_trains_a_few_steps_and_writes_its_run_folder(model, data_dir, tmp_path):
    """One epoch of 6 batches: finite losses every step, and every file the issue lists."""
    out = tmp_path / 'run'
    args = tiny(data_dir, out, '--epochs', '1', '--sample-every', '2', model=model)
    if model == 'classifier':
        args += ['--max-steps', '3']
    assert train_mod.main(args) == 0
    steps = records(out, 'step')
    assert len(steps) >= 1
    for r in steps:
        for k in LOSS_KEYS[model]:
            assert math.isfinite(r[k]), (k, r)
        assert r['step_time'] > 0 and r['images_per_s'] > 0
    cfg = json.loads((out / 'config.json').read_text())
    assert cfg['seed'] == 3 and cfg['model'] == model and cfg['version'] == mg.__version__
    assert (out / 'checkpoints' / 'latest.npz').is_file()
    assert (out / 'losses.png').is_file()
    if model == 'classifier':
        assert (out / 'confusion.png').is_file()
        text = (out / 'confusion.txt').read_text()
        assert 'true' in text and 'accuracy' in text
    else:
        epochs = records(out, 'epoch')
        assert len(epochs) == 1 and (out / 'checkpoints' / 'epoch_001.npz').is_file()
        assert (out / 'samples' / 'epoch_001.png').is_file()
        assert (out / 'progress.gif').is_file()
        assert 0 < epochs[0]['diversity'] < 10
        for k in LOSS_KEYS[model]:                 # the epoch line holds the means of the step lines
            np.testing.assert_allclose(epochs[0][k], np.mean([r[k] for r in steps]), rtol=1e-9)
    if model == 'wgan':                             # 6 batches: all taken by the first (100-step) critic loop
        assert [r['critic_steps'] for r in steps] == [6]
    if model == 'wgan-gp':
        assert [r['critic_steps'] for r in steps] == [5, 1]


def test_classifier_reports_train_and_test_accuracy_per_epoch(data_dir, tmp_path):
    out = tmp_path / 'clf'
    assert train_mod.main(tiny(data_dir, out, '--epochs', '1', '--batch-size', '8', model='classifier')) == 0
    (ep,) = records(out, 'epoch')
    assert 0 <= ep['train_acc'] <= 1 and 0 <= ep['test_acc'] <= 1 and math.isfinite(ep['loss'])
    lines = (out / 'confusion.txt').read_text().splitlines()
    assert sum(1 for line in lines if line.split() and line.split()[0] in [str(d) for d in range(10)]) == 10


@pytest.mark.parametrize('model,total,half,epochs', [('dcgan', 9, 4, 2), ('ralsgan', 5, 2, 1),
                                                     ('wgan-gp', 4, 1, 2)])
def test_resume_continues_exactly_like_an_uninterrupted_run(model, total, half, epochs, data_dir, tmp_path):
    """N steps straight vs N/2, then --resume to N: the same metrics (timing aside) and weights.
    dcgan crosses an epoch boundary after resuming mid-epoch; ralsgan restores its second (fresh
    real batch) stream; wgan-gp its critic schedule and the penalty's random mixing weights."""
    from minigan import dispatch
    a, b = tmp_path / 'straight', tmp_path / 'resumed'
    common = ['--epochs', epochs, '--sample-every', '3', '--checkpoint-every', '1000']
    # the NumPy conv kernels: bit-for-bit repeatable (the C++/OpenMP ones are not, see the report)
    with dispatch.conv_backend('numpy'):
        assert train_mod.main(tiny(data_dir, a, *common, '--max-steps', total, model=model)) == 0
        assert train_mod.main(tiny(data_dir, b, *common, '--max-steps', half, model=model)) == 0
        assert len(records(b, 'step')) == half
        assert train_mod.main(['--resume', str(b), '--max-steps', str(total), '--quiet']) == 0
    ra = [runlog.without_timing(r) for r in records(a)]
    rb = [runlog.without_timing(r) for r in records(b)]
    assert len(ra) == len(rb) and len(records(a, 'step')) == total
    assert ra == rb
    sa = checkpoint.load(checkpoint.latest_path(str(a)))
    sb = checkpoint.load(checkpoint.latest_path(str(b)))
    for net in ('G', 'D'):
        for k in sa[net]:
            np.testing.assert_array_equal(sa[net][k], sb[net][k])
    assert sa['step'] == sb['step'] == total


def test_resume_refuses_changed_settings_and_finished_runs(data_dir, tmp_path, capsys):
    out = tmp_path / 'r'
    assert train_mod.main(tiny(data_dir, out, '--max-steps', '1')) == 0
    assert train_mod.main(['--resume', str(out), '--seed', '1']) == 2
    assert '--seed cannot change' in capsys.readouterr().err
    assert train_mod.main(['--resume', str(out), '--quiet']) == 0      # max-steps 1 reached: nothing to do
    assert 'already finished' in capsys.readouterr().out
    assert train_mod.main(tiny(data_dir, out, '--max-steps', '1')) == 2  # will not overwrite a run
    assert 'already holds a run' in capsys.readouterr().err
    assert train_mod.main(['--resume', str(tmp_path / 'nothing')]) == 2


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(data_dir, tmp_path, monkeypatch, capsys):
    """SIGINT during step 2: the step finishes, latest.npz is written at step 2, exit status 130,
    and --resume carries on from there."""
    out = tmp_path / 'run'
    real_step = GANTrainer.step
    calls = []

    def step(self, source, i=0):
        calls.append(i)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)      # as if the user pressed Ctrl-C now
        return real_step(self, source, i)

    monkeypatch.setattr(GANTrainer, 'step', step)
    assert train_mod.main(tiny(data_dir, out, '--epochs', '2')) == 130
    captured = capsys.readouterr()
    assert 'interrupted at step 2' in captured.out and 'Traceback' not in captured.err
    assert checkpoint.load(checkpoint.latest_path(str(out)))['step'] == 2
    assert len(records(out, 'step')) == 2
    monkeypatch.setattr(GANTrainer, 'step', real_step)
    assert train_mod.main(['--resume', str(out), '--max-steps', '3', '--quiet']) == 0
    assert [r['step'] for r in records(out, 'step')] == [1, 2, 3]


def test_nan_guard_stops_and_keeps_the_last_good_checkpoint(data_dir, tmp_path, monkeypatch, capsys):
    """A NaN generator loss at step 5: exit status 3, a message naming step 5 and the step-4
    checkpoint, which is left as it was (no broken weights written)."""
    out = tmp_path / 'run'
    real_g_loss = losses.dcgan_g_loss
    calls = []

    def g_loss(d_fake):
        calls.append(1)
        loss = real_g_loss(d_fake)
        return loss * float('nan') if len(calls) == 5 else loss

    monkeypatch.setattr(losses, 'dcgan_g_loss', g_loss)
    assert train_mod.main(tiny(data_dir, out, '--epochs', '3', '--checkpoint-every', '2')) == 3
    err = capsys.readouterr().err
    latest = checkpoint.latest_path(str(out))
    assert 'loss_g became nan at step 5' in err and f'{latest} (step 4)' in err
    assert 'Traceback' not in err
    state = checkpoint.load(latest)
    assert state['step'] == 4
    for net in ('G', 'D'):
        assert all(np.isfinite(v).all() for v in state[net].values())
    assert [r['step'] for r in records(out, 'step')] == [1, 2, 3, 4]


def test_mode_collapse_watch_logs_diversity_and_warns(data_dir, tmp_path, monkeypatch, capsys):
    """Identical samples have diversity 0: logged at each grid, with a warning once past warm-up."""
    out = tmp_path / 'run'
    monkeypatch.setattr(run_recorder, 'DIVERSITY_WARMUP', 0)
    real_generate = run_recorder.generate

    def collapsed(G, z, chunk=None):
        x = real_generate(G, z)
        return mg.tensor(np.broadcast_to(x.numpy()[:1], x.shape).copy())

    monkeypatch.setattr(run_recorder, 'generate', collapsed)
    assert train_mod.main(tiny(data_dir, out, '--max-steps', '2', '--sample-every', '1')) == 0
    assert [r['diversity'] for r in records(out, 'step')] == [pytest.approx(0.0, abs=1e-6)] * 2
    assert 'possible mode collapse' in capsys.readouterr().err


def test_sample_command_draws_grids_and_walks(data_dir, tmp_path):
    from PIL import Image
    from minigan import sample
    out = tmp_path / 'run'
    assert train_mod.main(tiny(data_dir, out, '--max-steps', '1')) == 0
    grid = tmp_path / 'grid.png'
    assert sample.main([str(out), '--n', '16', '--out', str(grid), '--scale', '1', '--seed', '1']) == 0
    assert Image.open(grid).size == (8 * 34 + 2, 2 * 34 + 2)      # 8 per row, 2 px padding
    walk = tmp_path / 'walk.png'
    assert sample.main([str(out), '--interpolate', '--n', '12', '--steps', '6', '--out', str(walk),
                        '--scale', '1']) == 0
    assert Image.open(walk).size == (6 * 34 + 2, 2 * 34 + 2)
    assert sample.main([str(tmp_path / 'missing')]) == 2
    # a walk starts and ends at its endpoints
    rng = np.random.default_rng(0)
    z = sample.latent_walks(3, 5, 8, rng)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 8)), rng.standard_normal((3, 8))
    np.testing.assert_allclose(z.reshape(3, 5, 8)[:, 0], a, rtol=1e-12)
    np.testing.assert_allclose(z.reshape(3, 5, 8)[:, -1], b, rtol=1e-12, atol=1e-12)


# ---- the command line ------------------------------------------------------------------------
def _cli(*args):
    return subprocess.run([sys.executable, '-m', 'minigan.train', *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_help_documents_every_flag_with_its_default():
    r = _cli('--help')
    assert r.returncode == 0
    text = ' '.join(r.stdout.split())
    for flag in ('--data', '--data-dir', '--model', '--epochs', '--max-steps', '--batch-size', '--lr',
                 '--image-size', '--device', '--out', '--resume', '--seed', '--sample-every',
                 '--checkpoint-every', '--quiet'):
        assert flag + ' ' in text
    parser = train_mod.build_parser()
    for action in parser._actions:
        if action.option_strings and action.dest != 'help':
            assert '(default:' in action.help, action.option_strings


@pytest.mark.parametrize('args,expect', [
    (['--data', 'no-such-set'], 'unknown dataset'),
    (['--model', 'vae'], "invalid choice: 'vae'"),
    (['--no-such-flag'], 'unrecognized arguments: --no-such-flag'),
    (['--epochs', '0'], 'must be positive'),
    (['--device', 'tpu'], "invalid choice: 'tpu'"),
    (['--labels-file', 'tags.csv'], '--labels-file goes with a folder'),
    (['--model', 'classifier', '--image-size', '64'], 'classifier-32'),
    (['--cuda-graph', '--device', 'cpu'], '--cuda-graph needs --device cuda'),
    (['--cuda-graph', '--model', 'wgan'], '--cuda-graph needs --device cuda'),
])
def test_bad_arguments_exit_non_zero_with_one_line_and_no_traceback(args, expect, tmp_path):
    r = _cli(*args, '--out', str(tmp_path / 'x'))
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0] and 'Traceback' not in r.stderr, r.stderr


# ---- the steps themselves ----------------------------------------------------------------------
class ListSource:
    """Batches from a fixed list; remaining() counts down like an epoch."""

    def __init__(self, batches, batch_size=4):
        self.batches, self.batch_size, self.i = batches, batch_size, 0

    def remaining(self):
        return len(self.batches) - self.i

    def next(self):
        b = self.batches[self.i % len(self.batches)]
        self.i += 1
        return b, None

    fresh = next


def _tiny_gan(algorithm, seed=0, lr=None, ndf=4):
    from minigan.models import Discriminator32, Generator32
    mg.manual_seed(seed)
    G = Generator32(nz=8, ngf=4, nc=1)
    D = Discriminator32(nc=1, ndf=ndf, batch_norm=algorithm != 'wgan-gp')
    settings = run_config.optimizer_settings(algorithm, lr or run_config.DEFAULT_LR[algorithm])
    return GANTrainer(algorithm, G, D, make_optimizer(settings, G.parameters()),
                      make_optimizer(settings, D.parameters()), nz=8)


def _real(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return mg.tensor(np.tanh(rng.standard_normal((n, 1, 32, 32)).astype(np.float32)))


@pytest.mark.parametrize('algorithm', ['dcgan', 'ralsgan', 'wgan', 'wgan-gp'])
def test_discriminator_loss_falls_when_the_generator_is_frozen(algorithm, monkeypatch):
    """G's optimiser does nothing: D (or the critic) learns to tell the fixed real batch from G's samples."""
    tr = _tiny_gan(algorithm, lr={'wgan': 5e-3}.get(algorithm, 2e-3))
    monkeypatch.setattr(tr.opt_g, 'step', lambda *a: None)
    if algorithm == 'wgan':
        tr.clip_critic()                              # start inside the clipping box, as after any step
    g_before = [p.numpy() for p in tr.G.parameters()]
    tr.n_critic = 2                                   # (speed: 2 critic steps per G step)
    real = _real()
    first = last = None
    for i in range(10):
        src = ListSource([real] * 2)
        m = tr.step(src, 30 + i)                      # past WGAN's 100-critic-step warm-up
        first = m['loss_d'] if first is None else first
        last = m['loss_d']
    assert last < first - 0.05 * abs(first) - 1e-4, (first, last)
    for p, before in zip(tr.G.parameters(), g_before):
        np.testing.assert_array_equal(p.numpy(), before)


def test_wgan_clips_every_critic_parameter_after_every_critic_step():
    """With a learning rate that moves weights far past 0.01 in one step, every critic parameter
    (batch-norm included) is inside [-0.01, 0.01] whenever a critic step or the G step begins."""
    tr = _tiny_gan('wgan', lr=0.05)
    assert max(float(np.abs(p.numpy()).max()) for p in tr.d_params) > 0.01   # BN gamma ~ 1 at init
    checks = []

    class Checking(ListSource):
        def next(self):
            if self.i > 0:                            # a critic step has just finished
                checks.append(max(float(np.abs(p.numpy()).max()) for p in tr.d_params))
            return super().next()

    real_update = tr._update

    def update(loss, params, opt):                    # before the G step: the last critic step's clip
        if params is tr.g_params:
            checks.append(max(float(np.abs(p.numpy()).max()) for p in tr.d_params))
        return real_update(loss, params, opt)

    tr._update = update
    m = tr.step(Checking([_real(seed=s) for s in range(7)]), 40)
    assert m['critic_steps'] == 5 and len(checks) == 5
    assert max(checks) <= 0.01 + 1e-7
    # the step itself moved the weights a lot: without the clip they would be outside
    tr2 = _tiny_gan('wgan', lr=0.05)
    tr2.clip_critic = lambda: None
    tr2.step(ListSource([_real(seed=s) for s in range(7)]), 40)
    assert max(float(np.abs(p.numpy()).max()) for p in tr2.d_params) > 0.05


def test_wgan_critic_schedule():
    assert [wgan_critic_iters(g) for g in (0, 1, 24)] == [100, 100, 100]
    assert [wgan_critic_iters(g) for g in (25, 26, 499, 501)] == [5, 5, 5, 5]
    assert [wgan_critic_iters(g) for g in (500, 1000)] == [100, 100]


def test_generator_step_does_not_compute_discriminator_weight_gradients(monkeypatch):
    """Count the conv weight-gradient kernels by weight shape during one DCGAN step: each D weight's
    gradient is computed twice (real and fake branch of the D step), never in the G step."""
    conv = pytest.importorskip('minigan.functional.conv')
    if not hasattr(conv, 'Conv2dGradWeight'):
        pytest.skip('the conv implementation has no separate weight-gradient Function')
    tr = _tiny_gan('dcgan', ndf=6)                    # ndf 6: no D weight has the shape of a G weight
    seen = []
    real_forward = conv.Conv2dGradWeight.forward

    def forward(self, x, gy):
        seen.append(tuple(self.w_shape))
        return real_forward(self, x, gy)

    monkeypatch.setattr(conv.Conv2dGradWeight, 'forward', forward)
    tr.step(ListSource([_real()]), 0)
    d_shapes = [tuple(p.shape) for p in tr.d_params if p.ndim == 4]
    g_shapes = [tuple(p.shape) for p in tr.g_params if p.ndim == 4]
    assert not set(d_shapes) & set(g_shapes)
    for s in d_shapes:
        assert seen.count(s) == 2, (s, seen)
    for s in g_shapes:
        assert seen.count(s) == 1, (s, seen)


# ---- checkpoints ------------------------------------------------------------------------------
def _state(seed):
    rng = np.random.default_rng(seed)
    return {'step': seed, 'w': rng.standard_normal((3, 4)).astype(np.float32),
            'opt': {'state': {0: {'step': 2, 'exp_avg': rng.standard_normal(5)}},
                    'param_groups': [{'lr': 1e-3, 'betas': (0.5, 0.999), 'params': [0]}]},
            'rng': np.random.default_rng(seed).bit_generator.state, 'none': None, 't': mg.tensor([1.0, 2.0])}


def test_checkpoint_round_trip_keeps_types_and_values(tmp_path):
    st = _state(7)
    path = checkpoint.save(tmp_path / 'c.npz', st)
    back = checkpoint.load(path)
    np.testing.assert_array_equal(back['w'], st['w'])
    assert back['w'].dtype == np.float32
    assert back['opt']['param_groups'][0]['betas'] == (0.5, 0.999)           # tuples stay tuples
    assert list(back['opt']['state']) == [0]                                  # int keys stay ints
    assert back['rng'] == st['rng'] and back['none'] is None and back['step'] == 7
    np.testing.assert_array_equal(back['t'].numpy(), [1.0, 2.0])


def test_crash_during_checkpoint_write_leaves_the_previous_one_loadable(tmp_path, monkeypatch):
    path = tmp_path / 'checkpoints' / 'latest.npz'
    checkpoint.save(path, _state(1))
    real_savez = np.savez

    def dying_savez(f, **arrays):                      # half the bytes, then the "power cut"
        real_savez(f, **arrays)
        f.seek(f.tell() // 2)
        f.truncate()
        raise OSError('No space left on device')

    monkeypatch.setattr(np, 'savez', dying_savez)
    with pytest.raises(OSError):
        checkpoint.save(path, _state(2))
    monkeypatch.setattr(np, 'savez', real_savez)
    back = checkpoint.load(path)
    assert back['step'] == 1
    np.testing.assert_array_equal(back['w'], _state(1)['w'])
    assert sorted(os.listdir(path.parent)) == ['latest.npz']            # no temporary left behind
    # a process killed mid-write leaves a temporary: it is never read, and the next run removes it
    (path.parent / 'latest.npz.tmp.12345').write_bytes(b'PK\x03\x04garbage')
    assert checkpoint.find_latest(str(tmp_path)) == str(path)
    checkpoint.remove_stale_temporaries(str(tmp_path))
    assert sorted(os.listdir(path.parent)) == ['latest.npz']
    path.write_bytes(b'not a zip')
    with pytest.raises(checkpoint.CheckpointError, match='damaged'):
        checkpoint.load(path)


def test_diversity_measure():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3, 2, 2))
    d = [np.linalg.norm((x[i] - x[j]).ravel()) for i in range(5) for j in range(i + 1, 5)]
    np.testing.assert_allclose(runlog.mean_pairwise_distance(x), np.mean(d), rtol=1e-9)
    assert runlog.mean_pairwise_distance(np.repeat(x[:1], 4, axis=0)) == pytest.approx(0.0, abs=1e-6)


def test_classifier_step_single_and_multi_label():
    """Cross-entropy for class indices; sigmoid + BCE per class (mean over all entries) for multi-hot rows."""
    import minigan.nn as nn
    from minigan import optim
    from minigan.gan.trainer import ClassifierTrainer, count_correct
    torch = pytest.importorskip('torch')
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 1, 2, 2)).astype(np.float32)
    w = rng.standard_normal((3, 4)).astype(np.float32)
    y_multi = (rng.random((6, 3)) < 0.5).astype(np.float32)
    y_single = rng.integers(0, 3, 6)
    for multi, y in ((True, y_multi), (False, y_single)):
        net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3, bias=False))
        net.load_state_dict({'1.weight': w})
        tr = ClassifierTrainer(net, optim.SGD(net.parameters(), lr=0.1), multi_label=multi)
        m = tr.step(_Pairs([(mg.tensor(x), mg.tensor(y))]))
        tw = torch.tensor(w, requires_grad=True)
        logits = torch.tensor(x).reshape(6, 4) @ tw.T
        if multi:
            ref = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor(y))
        else:
            ref = torch.nn.functional.cross_entropy(logits, torch.tensor(y))
        ref.backward()
        np.testing.assert_allclose(m['loss'], ref.item(), rtol=1e-5)
        np.testing.assert_allclose(net[1].weight.numpy(), (tw - 0.1 * tw.grad).detach().numpy(), rtol=1e-5,
                                   atol=1e-6)
        right, count = count_correct(mg.tensor(logits.detach().numpy()), mg.tensor(y), multi)
        z = logits.detach().numpy()
        expect = ((z > 0) == (y > 0.5)).sum() if multi else (z.argmax(1) == y).sum()
        assert right == expect and count == (18 if multi else 6)
        assert m['acc'] == pytest.approx(right / count)


class _Pairs(ListSource):
    def next(self):
        b = self.batches[self.i]
        self.i += 1
        return b


# ---- learning-rate schedule, augmentation, evaluation during training ------------------------------
@pytest.mark.parametrize('schedule', ['constant', 'cosine'])
def test_learning_rate_schedule(schedule, data_dir, tmp_path):
    """12 steps (24 images, batch 4, 2 epochs) at --lr 0.001: constant keeps it; cosine gives
    0.001 (1 + cos(pi t / 12)) / 2 at step t = 0..11, for both networks' optimisers."""
    out = tmp_path / 'run'
    assert train_mod.main(tiny(data_dir, out, '--epochs', '2', '--lr', '0.001', '--lr-schedule', schedule)) == 0
    lrs = [r['lr'] for r in records(out, 'step')]
    t = np.arange(12)
    expected = np.full(12, 0.001) if schedule == 'constant' else 0.001 * 0.5 * (1 + np.cos(np.pi * t / 12))
    np.testing.assert_allclose(lrs, expected, rtol=1e-12, atol=0)
    state = checkpoint.load(checkpoint.latest_path(str(out)))
    for opt in ('opt_g', 'opt_d'):
        assert state[opt]['param_groups'][0]['lr'] == pytest.approx(expected[-1], rel=1e-12)


def test_classifier_with_crops_and_cosine_schedule_resumes_exactly(data_dir, tmp_path, monkeypatch):
    """Random crops of padded images and the cosine rate are functions of (seed, epoch, batch, step),
    so 8 steps straight equal 3 steps, Ctrl-C, then --resume (the same plan of 8 steps)."""
    from minigan import dispatch
    from minigan.gan.trainer import ClassifierTrainer
    a, b = tmp_path / 'straight', tmp_path / 'resumed'
    common = ['--epochs', '2', '--crop-padding', '3', '--lr-schedule', 'cosine', '--batch-size', '6']
    real_step = ClassifierTrainer.step

    def step(self, source, i=0):
        if i == 2:
            os.kill(os.getpid(), signal.SIGINT)      # Ctrl-C during the third step
        return real_step(self, source, i)

    with dispatch.conv_backend('numpy'):
        assert train_mod.main(tiny(data_dir, a, *common, model='classifier')) == 0
        monkeypatch.setattr(ClassifierTrainer, 'step', step)
        assert train_mod.main(tiny(data_dir, b, *common, model='classifier')) == 130     # interrupted
        monkeypatch.setattr(ClassifierTrainer, 'step', real_step)
        assert len(records(b, 'step')) == 3
        assert train_mod.main(['--resume', str(b), '--quiet']) == 0
    ra = [runlog.without_timing(r) for r in records(a)]
    rb = [runlog.without_timing(r) for r in records(b)]
    assert len(records(a, 'step')) == 8 and ra == rb
    assert json.loads((a / 'config.json').read_text())['crop_padding'] == 3


def test_crop_padding_moves_the_training_images(data_dir):
    """--crop-padding P: each image is its padded self cropped at a random offset in [0, 2P]."""
    from minigan.data import DataLoader, load_dataset
    ds = load_dataset('synth', root=data_dir, split='train', n=24)
    plain = next(iter(DataLoader(ds, batch_size=8, seed=1, prefetch=0)))[0].numpy()
    moved = next(iter(DataLoader(ds, batch_size=8, seed=1, crop_padding=2, prefetch=0)))[0].numpy()
    padded = np.pad(plain, ((0, 0), (0, 0), (2, 2), (2, 2)), constant_values=-1.0)
    for i in range(8):
        hits = [(dy, dx) for dy in range(5) for dx in range(5)
                if np.array_equal(padded[i, :, dy:dy + 32, dx:dx + 32], moved[i])]
        assert hits, f'image {i} is no crop of its padded original'
    assert not np.array_equal(plain, moved)


def test_eval_every_logs_sample_metrics_and_plots_them(data_dir, tmp_path, monkeypatch):
    """--eval-every 4 on a 6-step run: eval lines at steps 4 and 6 (the end) with the five
    metrics and their floors; metrics.png; the training itself is the same as without it."""
    from minigan import dispatch
    from minigan.evaluate import METRIC_KEYS
    monkeypatch.setenv('MINIGAN_EVAL_CACHE', str(tmp_path / 'evaluators'))
    a, b = tmp_path / 'plain', tmp_path / 'scored'
    with dispatch.conv_backend('numpy'):
        assert train_mod.main(tiny(data_dir, a, '--epochs', '1')) == 0
        assert train_mod.main(tiny(data_dir, b, '--epochs', '1', '--eval-every', '4', '--eval-n', '30')) == 0
    evals = records(b, 'eval')
    assert [r['step'] for r in evals] == [4, 6]
    for r in evals:
        for k in METRIC_KEYS:
            assert math.isfinite(r[k]) and math.isfinite(r[k + '_floor']), (k, r)
        assert 1 <= r['modes'] <= 10
    assert (b / 'metrics.png').is_file()
    assert ([runlog.without_timing(r) for r in records(a, 'step')]
            == [runlog.without_timing(r) for r in records(b, 'step')])


def test_eval_every_is_for_gans_only(data_dir, tmp_path, capsys):
    assert train_mod.main(tiny(data_dir, tmp_path / 'c', '--eval-every', '2', model='classifier')) == 2
    assert '--eval-every scores a generator' in capsys.readouterr().err


def test_the_command_line_only_wires_the_training_loop(data_dir, tmp_path):
    """train.main(flags) and training.train_run(run_config.new_config(settings)) of the same settings
    write the same metrics.jsonl (the wall-clock fields aside) and the same weights."""
    from minigan.training import train_run
    by_cli, by_call = tmp_path / 'cli', tmp_path / 'call'
    assert train_mod.main(tiny(data_dir, by_cli, '--max-steps', '3', model='wgan-gp')) == 0
    settings = {'data': 'synth', 'data_dir': data_dir, 'subset': 24, 'batch_size': 4, 'nz': 8, 'ngf': 4,
                'ndf': 4, 'quiet': True, 'device': 'cpu', 'seed': 3, 'model': 'wgan-gp', 'max_steps': 3,
                'out': str(by_call)}
    assert train_run(run_config.new_config(settings), str(by_call)) == 0
    a, b = records(by_cli), records(by_call)
    assert len(a) == 4 and [runlog.without_timing(r) for r in a] == [runlog.without_timing(r) for r in b]
    wa = checkpoint.load(checkpoint.latest_path(str(by_cli)))['G']
    wb = checkpoint.load(checkpoint.latest_path(str(by_call)))['G']
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)

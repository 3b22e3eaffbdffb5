"""Runs you can trust, through the commands: one owner per run folder, one sentence per failure
(with its exit code, see minigan/errors.py), no silent loss, no dead ends.

Every run is the tiny one of test_train.py (24 synth images, batch 4, ngf = ndf = 4), so a step
takes a fraction of a second.
"""
import glob
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest
from PIL import Image

from minigan import atomic, checkpoint, errors, runlog
from minigan import sample as sample_mod
from minigan import train as train_mod
from minigan.gan import losses
from minigan.gan.trainer import GANTrainer

from test_atomic_writes import _FullDiskFile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp('data'))


def tiny(data_dir, out, *extra, data=('--data', 'synth', '--subset', '24')):
    return [*data, '--data-dir', data_dir, '--batch-size', '4', '--nz', '8', '--ngf', '4', '--ndf', '4',
            '--quiet', '--device', 'cpu', '--seed', '3', '--out', str(out)] + [str(a) for a in extra]


def steps(run_dir):
    return [r['step'] for r in runlog.read_jsonl(os.path.join(run_dir, 'metrics.jsonl')) if r['type'] == 'step']


def one_line(err):
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith('warning:')]
    assert len(lines) == 1 and 'Traceback' not in err, err
    return lines[0]


def temporaries(run_dir):
    return glob.glob(os.path.join(str(run_dir), '**', '*.tmp*'), recursive=True)


# ---- one owner per run folder ----------------------------------------------------------------
def test_a_live_run_has_one_owner_readers_are_safe_and_sigterm_saves(data_dir, tmp_path, capsys):
    """A training in another process: a second start on its --out and a --resume of it are refused
    naming its pid (exit 6); sample reads it meanwhile; SIGTERM makes it save a checkpoint and exit
    143; the run then resumes with every step logged once."""
    out = tmp_path / 'live'
    cmd = [sys.executable, '-m', 'minigan.train', *tiny(data_dir, out, '--epochs', '1000',
                                                         '--checkpoint-every', '2', '--sample-every', '1000')]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not (os.path.isfile(checkpoint.latest_path(str(out))) and len(steps(out)) >= 3):
            assert p.poll() is None and time.time() < deadline, p.communicate()
            time.sleep(0.1)
        assert train_mod.main(tiny(data_dir, out, '--max-steps', '3')) == errors.BUSY == 6
        msg = one_line(capsys.readouterr().err)
        assert f'process {p.pid}' in msg and f'kill {p.pid}' in msg
        assert train_mod.main(['--resume', str(out), '--quiet']) == errors.BUSY
        assert f'process {p.pid}' in capsys.readouterr().err
        grid = tmp_path / 'grid.png'
        assert sample_mod.main([str(out), '--n', '4', '--out', str(grid), '--device', 'cpu']) == 0
        assert Image.open(grid).size[0] > 0
        seen = steps(out)
        assert seen == list(range(1, len(seen) + 1))
    finally:
        p.send_signal(signal.SIGTERM)
        stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == errors.TERMINATED == 143, stderr
    assert 'checkpoint saved' in stdout and 'Traceback' not in stderr
    last = steps(out)[-1]
    assert checkpoint.load(checkpoint.latest_path(str(out)))['step'] == last
    assert train_mod.main(['--resume', str(out), '--max-steps', str(last + 2), '--quiet']) == 0
    assert steps(out) == list(range(1, last + 3))


def test_out_that_is_not_a_run_folder_is_refused_and_left_alone(data_dir, tmp_path, capsys):
    mine = tmp_path / 'mine'
    mine.mkdir()
    (mine / 'config.json').write_text('{"mine": true}')
    assert train_mod.main(tiny(data_dir, mine, '--max-steps', '1')) == errors.USAGE
    assert 'not a minigan run folder' in one_line(capsys.readouterr().err)
    assert os.listdir(mine) == ['config.json'] and (mine / 'config.json').read_text() == '{"mine": true}'
    assert train_mod.main(['--resume', str(mine)]) == errors.USAGE
    assert train_mod.main(['--resume', str(tmp_path / 'missing')]) == errors.USAGE
    capsys.readouterr()
    for command in (sample_mod.main, __import__('minigan.evaluate').evaluate.main,
                    __import__('minigan.visualize').visualize.main):
        assert command([str(tmp_path / 'missing')]) == errors.USAGE
        assert str(tmp_path / 'missing') in one_line(capsys.readouterr().err)


# ---- no dead ends ------------------------------------------------------------------------------
def test_a_run_that_failed_before_its_first_checkpoint_is_simply_rerun(data_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / 'crashed'
    real_step = GANTrainer.step

    def crashing(self, source, i=0):
        if i == 2:
            raise MemoryError('out of memory (simulated)')
        return real_step(self, source, i)

    monkeypatch.setattr(GANTrainer, 'step', crashing)
    args = tiny(data_dir, out, '--max-steps', '4', '--checkpoint-every', '1000')
    assert train_mod.main(args) == errors.INTERNAL
    assert 'MemoryError' in one_line(capsys.readouterr().err)
    assert steps(out) == [1, 2] and not checkpoint.has_checkpoint(str(out))
    monkeypatch.setattr(GANTrainer, 'step', real_step)
    assert train_mod.main(['--resume', str(out)]) == errors.USAGE
    assert 'run the same command as before' in one_line(capsys.readouterr().err)
    (out / 'checkpoints').mkdir(exist_ok=True)
    (out / 'checkpoints' / 'latest.npz.tmp.99999').write_bytes(b'half')     # a killed writer's leftovers
    assert train_mod.main(args) == 0                                          # the same command again
    assert steps(out) == [1, 2, 3, 4] and not temporaries(out)
    capsys.readouterr()
    assert train_mod.main(args) == errors.USAGE                               # now it has checkpoints
    assert '--restart' in one_line(capsys.readouterr().err)
    assert train_mod.main(args[:-2] + ['--max-steps', '2', '--restart']) == 0
    assert steps(out) == [1, 2]
    assert checkpoint.load(checkpoint.latest_path(str(out)))['step'] == 2


def test_nan_advice_names_a_command_that_works(data_dir, tmp_path, monkeypatch, capsys):
    """NaN at step 5: exit 3, and the message's command (--resume RUN --lr X) trains on from step 4."""
    out = tmp_path / 'nan'
    real_g_loss = losses.dcgan_g_loss
    calls = []

    def g_loss(d_fake):
        calls.append(1)
        loss = real_g_loss(d_fake)
        return loss * float('nan') if len(calls) == 5 else loss

    monkeypatch.setattr(losses, 'dcgan_g_loss', g_loss)
    assert train_mod.main(tiny(data_dir, out, '--epochs', '3', '--checkpoint-every', '2', '--lr', '0.002')) == 3
    msg = one_line(capsys.readouterr().err)
    monkeypatch.setattr(losses, 'dcgan_g_loss', real_g_loss)
    command = re.search(r'python -m minigan\.train (--resume .*)$', msg).group(1)   # the line's end
    argv = shlex.split(command)
    assert argv[:2] == ['--resume', str(out)] and '--lr' in argv
    new_lr = float(argv[argv.index('--lr') + 1])
    assert new_lr < 0.002
    assert train_mod.main(argv + ['--max-steps', '6']) == 0
    rs = [r for r in runlog.read_jsonl(str(out / 'metrics.jsonl')) if r['type'] == 'step']
    assert [r['step'] for r in rs] == [1, 2, 3, 4, 5, 6]
    assert [r['lr'] for r in rs] == [0.002] * 4 + [new_lr] * 2
    assert json.loads((out / 'config.json').read_text())['lr'] == new_lr
    state = checkpoint.load(checkpoint.latest_path(str(out)))
    assert state['opt_g']['param_groups'][0]['lr'] == new_lr
    # NaN before the first checkpoint: the advice is the same command with a lower --lr, which works
    calls.clear()
    monkeypatch.setattr(losses, 'dcgan_g_loss', g_loss)
    early = tmp_path / 'early'
    assert train_mod.main(tiny(data_dir, early, '--max-steps', '6', '--lr', '0.002')) == 3
    msg = one_line(capsys.readouterr().err)
    assert 'no checkpoint was written yet: run the same command again with a lower learning rate (--lr 0.001)' in msg
    monkeypatch.setattr(losses, 'dcgan_g_loss', real_g_loss)
    assert train_mod.main(tiny(data_dir, early, '--max-steps', '6', '--lr', '0.001')) == 0
    assert steps(early) == [1, 2, 3, 4, 5, 6]


# ---- every failure a sentence; no silent loss ------------------------------------------------------
def _fail_writes(monkeypatch, name, after):
    """Writes through minigan.atomic of files called `name` fail like a full disk after `after` of them."""
    real_tmp, real_fdopen = atomic.temporary_name, os.fdopen
    seen = {'name': '', 'count': 0}

    def temporary_name(path):
        seen['name'] = os.path.basename(os.fspath(path))
        return real_tmp(path)

    def fdopen(fd, *a, **k):
        f = real_fdopen(fd, *a, **k)
        if seen['name'] == name:
            seen['count'] += 1
            if seen['count'] > after:
                return _FullDiskFile(f, 64)
        return f

    monkeypatch.setattr(atomic, 'temporary_name', temporary_name)
    monkeypatch.setattr(atomic.os, 'fdopen', fdopen)


def test_full_disk_during_a_checkpoint_keeps_the_last_good_one(data_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / 'full'
    _fail_writes(monkeypatch, 'latest.npz', after=1)
    assert train_mod.main(tiny(data_dir, out, '--max-steps', '5', '--checkpoint-every', '2')) == errors.WRITE
    msg = one_line(capsys.readouterr().err)
    assert 'latest.npz' in msg and 'disk is full' in msg
    assert not temporaries(out)
    assert checkpoint.load(checkpoint.latest_path(str(out)))['step'] == 2
    monkeypatch.undo()
    assert train_mod.main(['--resume', str(out), '--quiet']) == 0
    assert steps(out) == [1, 2, 3, 4, 5]


def test_full_disk_during_the_progress_gif_keeps_the_old_one(data_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / 'gif'
    _fail_writes(monkeypatch, 'progress.gif', after=1)
    assert train_mod.main(tiny(data_dir, out, '--epochs', '2', '--sample-every', '2')) == errors.WRITE
    assert 'progress.gif' in one_line(capsys.readouterr().err)
    assert not temporaries(out)
    with Image.open(out / 'progress.gif') as gif:                 # epoch 1's: the grids of steps 2, 4, 6
        assert gif.n_frames == 3
    assert checkpoint.load(checkpoint.latest_path(str(out)))['step'] == 12


def test_bad_data_is_exit_4_in_one_line(data_dir, tmp_path, capsys):
    src = tmp_path / 'imgs' / 'digits'
    src.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(24):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(src / f'{i:02d}.png')
    path = tmp_path / 'imgs.tar'
    with tarfile.open(path, 'w') as tar:
        tar.add(src, arcname='digits')
    with tarfile.open(path) as tar:
        cut = [m.offset for m in tar.getmembers() if m.isfile()][12]
    cut_path = tmp_path / 'cut.tar'
    cut_path.write_bytes(path.read_bytes()[:cut])
    assert train_mod.main(tiny(data_dir, tmp_path / 'r1', '--max-steps', '1', data=('--data', str(cut_path)))) == 4
    assert 'cut short' in one_line(capsys.readouterr().err)
    from test_data_formats import write_mnist, write_idx
    mnist = tmp_path / 'mnistroot'
    write_mnist(mnist / 'mnist', 'train', n=24, gz=False)
    write_idx(mnist / 'mnist' / 'train-labels-idx1-ubyte', np.full(24, 11, np.uint8), gz=False)
    args = tiny(str(mnist), tmp_path / 'r2', '--max-steps', '1', data=('--data', 'mnist'))
    assert train_mod.main(args) == errors.DATA
    assert 'outside the 10 classes' in one_line(capsys.readouterr().err)


def test_a_changed_dataset_is_refused_on_resume(data_dir, tmp_path, capsys):
    folder = tmp_path / 'pics' / 'blobs'
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(24):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f'{i:02d}.png')
    out = tmp_path / 'run'
    data = ('--data', str(tmp_path / 'pics'))
    assert train_mod.main(tiny(data_dir, out, '--max-steps', '2', '--epochs', '5', data=data)) == 0
    fp = json.loads((out / 'config.json').read_text())['dataset']['fingerprint']
    assert fp['images'] == 24
    for i in range(4):
        os.remove(folder / f'{i:02d}.png')
    assert train_mod.main(['--resume', str(out), '--max-steps', '3']) == errors.DATA
    msg = one_line(capsys.readouterr().err)
    assert 'it had 24 images, now 20' in msg and '--allow-changed-data' in msg
    assert json.loads((out / 'config.json').read_text())['dataset']['fingerprint'] == fp   # untouched
    assert train_mod.main(['--resume', str(out), '--max-steps', '3', '--allow-changed-data', '--quiet']) == 0
    assert json.loads((out / 'config.json').read_text())['dataset']['fingerprint']['images'] == 20
    assert steps(out) == [1, 2, 3]


def test_nan_and_mismatched_checkpoints(data_dir, tmp_path, capsys):
    """latest.npz with NaN weights: sample falls back to epoch_001.npz saying so, and refuses to draw
    from the NaN one (exit 3, nothing written); a weight of the wrong shape is exit 5 for train and
    sample; damaged metadata in latest.npz makes --resume fall back to the epoch checkpoint."""
    out = tmp_path / 'run'
    assert train_mod.main(tiny(data_dir, out, '--epochs', '1')) == 0
    latest = checkpoint.latest_path(str(out))
    good = checkpoint.load(latest)
    bad = dict(good, G={k: np.full_like(v, np.nan) if v.dtype.kind == 'f' else v for k, v in good['G'].items()})
    checkpoint.save(latest, bad, allow_non_finite=True)
    capsys.readouterr()
    grid = tmp_path / 'g.png'
    assert sample_mod.main([str(out), '--n', '4', '--out', str(grid), '--device', 'cpu']) == 0
    err = capsys.readouterr().err
    assert 'latest.npz holds NaN' in err and 'epoch_001.npz' in err and grid.is_file()
    grid2 = tmp_path / 'g2.png'
    assert sample_mod.main([str(out), '--checkpoint', latest, '--out', str(grid2), '--device', 'cpu']) == 3
    assert 'NaN' in one_line(capsys.readouterr().err) and not grid2.exists()
    wrong = dict(good, G=dict(good['G']))
    first = next(iter(wrong['G']))
    wrong['G'][first] = np.zeros((3, 3), np.float32)
    checkpoint.save(latest, wrong)
    assert train_mod.main(['--resume', str(out), '--epochs', '2', '--quiet']) == errors.CHECKPOINT
    assert 'do not fit' in one_line(capsys.readouterr().err)
    assert sample_mod.main([str(out), '--out', str(grid2), '--device', 'cpu']) == errors.CHECKPOINT
    assert 'do not fit' in one_line(capsys.readouterr().err)
    with open(latest, 'r+b') as f:
        f.truncate(200)
    assert train_mod.main(['--resume', str(out), '--max-steps', '7', '--epochs', '2', '--quiet']) == 0
    assert 'epoch_001.npz' in capsys.readouterr().err
    assert steps(out) == list(range(1, 8))


def test_usage_errors_are_exit_2(data_dir, tmp_path, capsys):
    out = tmp_path / 'run'
    assert train_mod.main(tiny(data_dir, out, '--max-steps', '1')) == 0
    capsys.readouterr()
    assert train_mod.main(['--resume', str(out), '--restart']) == errors.USAGE
    assert '--restart' in one_line(capsys.readouterr().err)
    assert train_mod.main(['--resume', str(out), '--seed', '9']) == errors.USAGE
    assert '--seed cannot change' in one_line(capsys.readouterr().err)
    assert train_mod.main(tiny(data_dir, tmp_path / 'x', '--allow-changed-data')) == errors.USAGE
    assert '--allow-changed-data' in one_line(capsys.readouterr().err)


def test_readers_skip_a_half_written_metrics_line_and_stale_files_are_one_sentence(data_dir, tmp_path, capsys):
    out = tmp_path / 'run'
    assert train_mod.main(tiny(data_dir, out, '--max-steps', '2')) == 0
    with open(out / 'metrics.jsonl', 'a') as f:
        f.write('{"type": "step", "step": 3, "loss_d": 0.')          # a writer caught mid-line
    assert steps(out) == [1, 2]
    odd = tmp_path / 'odd'
    (odd / 'metrics.jsonl').mkdir(parents=True)                     # a folder where a file belongs
    (odd / 'run.lock').write_text('')
    capsys.readouterr()
    assert train_mod.main(tiny(data_dir, odd, '--max-steps', '1')) == errors.WRITE
    assert 'metrics.jsonl' in one_line(capsys.readouterr().err)

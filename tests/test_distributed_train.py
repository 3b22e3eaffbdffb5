"""`mpiexec -n 2 python -m minigan.train --distributed`: rank 0 alone writes the run folder, the
run equals one process at the same global batch (with --sync-bn), and it resumes on another
number of processes."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip('mpi4py', reason='the distributed tests need the mpi extra: pip install ".[mpi]"')
MPIEXEC = shutil.which('mpiexec') or str(Path(sys.executable).parent / 'mpiexec')
pytestmark = pytest.mark.skipif(not os.path.exists(MPIEXEC), reason='no mpiexec (pip install ".[mpi]")')
ROOT = Path(__file__).resolve().parents[1]
TINY = ['--data', 'synth', '--subset', '64', '--batch-size', '16', '--nz', '16', '--ngf', '8', '--ndf', '8',
        '--quiet', '--device', 'cpu', '--sample-every', '2', '--checkpoint-every', '2']


def train(tmp_path, n, *args):
    env = dict(os.environ, OMP_NUM_THREADS='1', MINIGAN_DIST_TIMEOUT='60')
    cmd = [sys.executable, '-m', 'minigan.train', *TINY, '--data-dir', str(tmp_path / 'data'), *args]
    if n:
        cmd = [MPIEXEC, '-n', str(n), *cmd, '--distributed']
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return r


def weights(run):
    with np.load(run / 'checkpoints' / 'latest.npz') as f:
        return {k: f[k] for k in f.files if f[k].dtype.kind == 'f'}


def steps(run):
    return [json.loads(line) for line in (run / 'metrics.jsonl').read_text().splitlines()
            if json.loads(line)['type'] == 'step']


@pytest.mark.parametrize('model', ['dcgan', 'wgan-gp'])
def test_two_processes_with_sync_bn_train_like_one(tmp_path, model):
    train(tmp_path, 0, '--model', model, '--max-steps', '3', '--sync-bn', '--out', str(tmp_path / 'one'))
    train(tmp_path, 2, '--model', model, '--max-steps', '3', '--sync-bn', '--out', str(tmp_path / 'two'))
    one, two = weights(tmp_path / 'one'), weights(tmp_path / 'two')
    for k in one:
        np.testing.assert_allclose(two[k], one[k], rtol=2e-5, atol=2e-6, err_msg=k)
    a, b = steps(tmp_path / 'one'), steps(tmp_path / 'two')
    assert [r['step'] for r in b] == [1, 2, 3]                   # one line per step: rank 0 alone writes
    np.testing.assert_allclose([r['loss_d'] for r in b], [r['loss_d'] for r in a], rtol=1e-5)


def test_a_distributed_run_resumes_on_another_number_of_processes(tmp_path):
    train(tmp_path, 0, '--max-steps', '4', '--sync-bn', '--out', str(tmp_path / 'straight'))
    train(tmp_path, 2, '--max-steps', '2', '--sync-bn', '--out', str(tmp_path / 'mixed'))
    train(tmp_path, 0, '--resume', str(tmp_path / 'mixed'), '--max-steps', '4')
    a, b = weights(tmp_path / 'straight'), weights(tmp_path / 'mixed')
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=2e-5, atol=2e-6, err_msg=k)
    assert [r['step'] for r in steps(tmp_path / 'mixed')] == [1, 2, 3, 4]


def test_a_batch_that_does_not_split_is_refused(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='1', MINIGAN_DIST_TIMEOUT='60')
    r = subprocess.run([MPIEXEC, '-n', '3', sys.executable, '-m', 'minigan.train', *TINY, '--data-dir',
                        str(tmp_path / 'data'), '--max-steps', '1', '--out', str(tmp_path / 'r'), '--distributed'],
                       capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert r.returncode != 0
    assert 'a global batch of 16 does not split over 3 processes' in r.stderr
    assert 'Traceback' not in r.stderr

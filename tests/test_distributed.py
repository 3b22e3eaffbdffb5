"""Data parallel training over MPI: runs tests/distributed_checks.py under `mpiexec -n 1` and
`-n 2` and compares. The heart: k steps of 2 processes at global batch B (synchronised batch
norm) give the weights of 1 process at batch B, to float32 tolerance."""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip('mpi4py', reason='the distributed tests need the mpi extra: pip install ".[mpi]"')
MPIEXEC = shutil.which('mpiexec') or str(Path(sys.executable).parent / 'mpiexec')
pytestmark = pytest.mark.skipif(not os.path.exists(MPIEXEC), reason='no mpiexec (pip install ".[mpi]")')
CHECKS = Path(__file__).parent / 'distributed_checks.py'


def run(n, *args, timeout=240, env=None, extra=()):
    env = dict(os.environ, OMP_NUM_THREADS='1', **(env or {}))
    return subprocess.run([MPIEXEC, *extra, '-n', str(n), sys.executable, str(CHECKS), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def ok(r):
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]


def test_all_reduce_and_broadcast_match_numpy(tmp_path):
    ok(run(2, 'collectives', tmp_path))
    parts = [np.load(tmp_path / f'collectives{r}.npz') for r in range(2)]
    expected = parts[0]['a'] + parts[1]['a']                      # each rank's own random array, summed
    for p in parts:
        np.testing.assert_allclose(p['total'], expected, rtol=1e-6)
        np.testing.assert_array_equal(p['b'], np.full(4, 1.0))   # rank 1's values, broadcast
        np.testing.assert_array_equal(p['m'], [1.0])


def test_sync_batch_norm_equals_batch_norm_on_the_global_batch(tmp_path):
    ok(run(1, 'syncbn', tmp_path))
    ok(run(2, 'syncbn', tmp_path))
    one = np.load(tmp_path / 'syncbn-n1-r0.npz')
    two = [np.load(tmp_path / f'syncbn-n2-r{r}.npz') for r in range(2)]
    for key in ('y', 'gx', 'gx2'):                               # per example: rank r holds rows 4r..4r+3
        np.testing.assert_allclose(np.concatenate([t[key] for t in two]), one[key], rtol=1e-9, atol=1e-12)
    for key in ('gw', 'rm', 'rv'):
        for t in two:
            np.testing.assert_allclose(t[key], one[key], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('model', ['classifier', 'dcgan', 'wgan-gp'])
def test_two_processes_train_like_one_process_at_the_same_global_batch(tmp_path, model):
    ok(run(1, 'train', tmp_path, model, 3, 'sync'))
    ok(run(2, 'train', tmp_path, model, 3, 'sync'))
    one = np.load(tmp_path / f'{model}-n1-sync1.npz')
    two = np.load(tmp_path / f'{model}-n2-sync1.npz')
    assert one.files == two.files
    for k in one.files:
        np.testing.assert_allclose(two[k], one[k], rtol=1e-9, atol=1e-11, err_msg=k)


def test_without_sync_bn_each_shard_is_normalised_on_its_own(tmp_path):
    """The documented difference: a DCGAN discriminator's batch statistics come from 8 images, not 16."""
    ok(run(1, 'train', tmp_path, 'dcgan', 3, 'sync'))
    ok(run(2, 'train', tmp_path, 'dcgan', 3, 'nosync'))
    one = np.load(tmp_path / 'dcgan-n1-sync1.npz')
    two = np.load(tmp_path / 'dcgan-n2-sync0.npz')
    assert max(np.abs(two[k] - one[k]).max() for k in one.files if one[k].dtype.kind == 'f') > 1e-4


def test_a_process_that_raises_stops_all_of_them(tmp_path):
    t = time.monotonic()
    r = run(2, 'failure', tmp_path, 'raise', timeout=60)
    assert r.returncode != 0 and time.monotonic() - t < 30
    assert 'rank 1 failed (RuntimeError); stopping all 2 processes' in r.stderr


def test_a_process_that_dies_stops_the_others_within_the_timeout(tmp_path):
    """mpiexec normally ends the others at once; without its clean-up they time out with a clear error."""
    t = time.monotonic()
    r = run(2, 'failure', tmp_path, 'exit', timeout=60)
    assert r.returncode != 0 and time.monotonic() - t < 30
    t = time.monotonic()
    r = run(2, 'failure', tmp_path, 'exit', timeout=60, env={'MINIGAN_DIST_TIMEOUT': '3'},
            extra=['-disable-auto-cleanup'])
    assert r.returncode != 0 and time.monotonic() - t < 30
    assert 'did not finish within 3 s on rank 0: another process died or is stuck' in r.stderr


def test_default_buckets_hold_about_a_megabyte_last_layer_first():
    """Reducer() packs NumPy gradients, last parameter first, into buckets closed before they pass
    1 MB (reducer.CPU_BUCKET_MB, measured in bench/RESULTS.md); bucket_mb overrides it."""
    import minigan as mg
    from minigan.distributed import reducer
    sizes = [100_000, 150_000, 50_000, 300_000, 10]              # float32: 0.4, 0.6, 0.2, 1.2 MB, 40 B
    params = [mg.zeros(n, requires_grad=True) for n in sizes]
    plan = reducer.Reducer()._plan(params)
    groups = [[p.array.size for p in group] for _, group in plan.buckets]
    assert reducer.CPU_BUCKET_MB == 1.0
    assert groups == [[10], [300_000], [50_000, 150_000], [100_000]]    # a larger one stands alone
    assert [flat.size for flat, _ in plan.buckets] == [10, 300_000, 200_000, 100_000]
    assert len(reducer.Reducer(bucket_mb=25)._plan(params).buckets) == 1

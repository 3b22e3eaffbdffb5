"""One owner per run folder: the flock on run.lock, atomic claims, and folders that are not runs."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from minigan import checkpoint, run_lock
from minigan.errors import BUSY, RunBusyError, UsageError, exit_code

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HOLD = '''
import sys, time
from minigan import run_lock
lock = run_lock.claim_new(sys.argv[1]) if sys.argv[2] == 'new' else run_lock.claim_existing(sys.argv[1])
print('locked', flush=True)
time.sleep(60)
'''


def _holder(run_dir, how='new'):
    p = subprocess.Popen([sys.executable, '-c', HOLD, str(run_dir), how], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == 'locked', p.stderr.read()
    return p


def test_a_second_writer_is_refused_with_the_holders_pid_until_it_dies(tmp_path):
    run = tmp_path / 'run'
    p = _holder(run)
    try:
        info = json.loads((run / 'run.lock').read_text())
        assert info['pid'] == p.pid and info['host'] and info['started'] and '-c' in info['command']
        with pytest.raises(RunBusyError) as err:
            run_lock.claim_existing(str(run))
        msg = str(err.value)
        assert f'process {p.pid}' in msg and f'kill {p.pid}' in msg and str(run) in msg
        assert exit_code(err.value) == BUSY == 6
        with pytest.raises(RunBusyError):
            run_lock.claim_new(str(run))
    finally:
        p.send_signal(signal.SIGKILL)                 # a crash: the kernel releases the flock
        p.wait()
    lock = run_lock.claim_existing(str(run))
    assert json.loads((run / 'run.lock').read_text())['pid'] == os.getpid()
    lock.release()
    assert (run / 'run.lock').read_text() == ''        # released: the file stays, emptied


RACE = '''
import sys, time
from minigan import run_lock
from minigan.errors import RunBusyError
held = []
for k, run in enumerate(sys.argv[2:]):
    while time.time() < float(sys.argv[1]) + 0.25 * k:
        pass
    try:
        held.append(run_lock.claim_new(run))       # kept to the end: a live run
        print('won', flush=True)
    except RunBusyError as e:
        print('busy', flush=True)
time.sleep(0.3)
'''


def test_two_simultaneous_starts_cannot_both_succeed(tmp_path):
    """Two processes claim the same folders at the same instants: 3 new ones, 3 existing empty ones."""
    runs = [tmp_path / f'run{k}' for k in range(6)]
    for run in runs[3:]:
        run.mkdir()
    start = time.time() + 1.0                        # both have imported minigan by then
    ps = [subprocess.Popen([sys.executable, '-c', RACE, str(start)] + [str(r) for r in runs], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=30) for p in ps]
    a, b = (o[0].split() for o in outs)
    assert len(a) == len(b) == 6, outs
    assert all(sorted(pair) == ['busy', 'won'] for pair in zip(a, b)), outs


def test_a_folder_that_is_not_a_run_is_never_written(tmp_path):
    mine = tmp_path / 'photos'
    mine.mkdir()
    (mine / 'config.json').write_text('{"camera": "x"}')     # not minigan's
    (mine / 'cat.jpg').write_bytes(b'jpeg')
    before = sorted(os.listdir(mine))
    with pytest.raises(UsageError, match='not a minigan run folder'):
        run_lock.claim_new(str(mine))
    with pytest.raises(UsageError, match='not a minigan run folder'):
        run_lock.claim_existing(str(mine))
    assert sorted(os.listdir(mine)) == before and (mine / 'config.json').read_text() == '{"camera": "x"}'
    afile = tmp_path / 'file'
    afile.write_text('x')
    with pytest.raises(UsageError, match='is a file'):
        run_lock.claim_new(str(afile))
    with pytest.raises(UsageError, match='no such folder'):
        run_lock.claim_existing(str(tmp_path / 'missing'))


def test_an_empty_folder_is_adopted_and_an_earlier_failed_attempt_restarted(tmp_path):
    run = tmp_path / 'run'
    run.mkdir()
    (run / '.hidden').write_text('')
    lock = run_lock.claim_new(str(run))
    assert run_lock.is_run_folder(str(run))
    # an attempt that failed before its first checkpoint: metrics, a grid, a temporary
    (run / 'metrics.jsonl').write_text('{"step": 1}\n')
    (run / 'samples').mkdir()
    (run / 'samples' / 'step_000001.png').write_bytes(b'png')
    (run / 'notes.txt').write_text('mine')
    lock.release()
    said = []
    lock = run_lock.claim_new(str(run), say=said.append)
    assert not (run / 'metrics.jsonl').exists() and not (run / 'samples' / 'step_000001.png').exists()
    assert (run / 'notes.txt').read_text() == 'mine' and 'removed 2 file(s)' in said[0]
    # with a checkpoint it is a run to resume, or to restart on request
    checkpoint.save(checkpoint.latest_path(str(run)), {'step': 1, 'w': np.zeros(2)})
    lock.release()
    with pytest.raises(UsageError, match='--resume'):
        run_lock.claim_new(str(run))
    assert (run / 'checkpoints' / 'latest.npz').exists()
    lock = run_lock.claim_new(str(run), restart=True)
    assert not (run / 'checkpoints' / 'latest.npz').exists()
    lock.release()


def test_a_run_of_an_older_minigan_without_a_lock_file_is_a_run(tmp_path):
    run = tmp_path / 'old'
    run.mkdir()
    (run / 'config.json').write_text(json.dumps({'model': 'dcgan', 'version': '0.1.0'}))
    assert run_lock.is_run_folder(str(run))
    lock = run_lock.claim_existing(str(run))
    assert lock.held and (run / 'run.lock').exists()
    lock.release()

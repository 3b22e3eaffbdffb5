"""Files written whole or not at all, also when the disk fills up mid-write.

A "full disk" is simulated by a file whose write() accepts `limit` bytes and then raises
OSError(ENOSPC), as a real full disk does; where the tests run as root, a real 200 kB tmpfs is
filled as well. After every failure: the old file is intact, no temporary is left, and the
error is a WriteError naming the file.
"""
import errno
import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from minigan import atomic, checkpoint
from minigan.data import save_grid
from minigan.errors import WRITE, WriteError, describe, exit_code


class _FullDiskFile:
    """A binary/text file that takes `limit` bytes, then fails like a full disk."""

    def __init__(self, f, limit):
        self._f, self.left = f, limit

    def write(self, data):
        if len(data) > self.left:
            self._f.write(data[:self.left])
            self.left = 0
            raise OSError(errno.ENOSPC, 'No space left on device')
        self.left -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


@pytest.fixture
def full_disk(monkeypatch):
    """full_disk(limit): from now on, files opened by minigan.atomic take `limit` bytes at most."""
    real_fdopen = os.fdopen

    def limit_to(limit):
        monkeypatch.setattr(atomic.os, 'fdopen', lambda *a, **k: _FullDiskFile(real_fdopen(*a, **k), limit))
    yield limit_to
    monkeypatch.setattr(atomic.os, 'fdopen', real_fdopen)


def _state(seed, n=2000):
    return {'step': seed, 'w': np.random.default_rng(seed).standard_normal(n).astype(np.float32)}


@pytest.mark.parametrize('limit', [0, 100, 5000])
def test_checkpoint_write_on_a_full_disk_keeps_the_last_good_one(tmp_path, full_disk, limit):
    path = tmp_path / 'checkpoints' / 'latest.npz'
    checkpoint.save(path, _state(1))
    full_disk(limit)
    with pytest.raises(WriteError) as info:
        checkpoint.save(path, _state(2))
    assert str(path) in str(info.value) and 'disk is full' in str(info.value)
    assert exit_code(info.value) == WRITE == 7
    assert os.listdir(path.parent) == ['latest.npz']                    # no temporary left
    back = checkpoint.load(path)
    assert back['step'] == 1
    np.testing.assert_array_equal(back['w'], _state(1)['w'])


def test_failing_rename_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / 'config.json'
    atomic.write_text(path, 'old\n')

    def failing_replace(src, dst):
        raise OSError(errno.EDQUOT, 'Disk quota exceeded', str(dst))

    monkeypatch.setattr(atomic.os, 'replace', failing_replace)
    with pytest.raises(WriteError, match='quota'):
        atomic.write_text(path, 'new\n')
    assert os.listdir(tmp_path) == ['config.json'] and path.read_text() == 'old\n'


def test_grid_and_gif_on_a_full_disk(tmp_path, full_disk):
    """The sample grid PNG and an animated GIF of 20 frames: the old files stay, no temporaries."""
    rng = np.random.default_rng(0)
    grid = tmp_path / 'samples' / 'step_000001.png'
    save_grid(rng.uniform(-1, 1, (16, 3, 8, 8)), grid)
    frames = [Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(20)]
    gif = tmp_path / 'progress.gif'
    atomic.save_image(frames[0], gif, save_all=True, append_images=frames[1:2], duration=100, loop=0)
    before = gif.read_bytes(), grid.read_bytes()
    full_disk(1000)
    with pytest.raises(WriteError, match='progress.gif'):
        atomic.save_image(frames[0], gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with pytest.raises(WriteError, match='step_000001.png'):
        save_grid(rng.uniform(-1, 1, (16, 3, 8, 8)), grid)
    assert sorted(os.listdir(tmp_path)) == ['progress.gif', 'samples']
    assert os.listdir(tmp_path / 'samples') == ['step_000001.png']
    assert (gif.read_bytes(), grid.read_bytes()) == before


def test_interrupt_during_a_write_removes_the_temporary(tmp_path):
    path = tmp_path / 'a.bin'
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_write(path) as f:
            f.write(b'half')
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_stale_temporaries_are_found_and_removed(tmp_path):
    (tmp_path / 'checkpoints').mkdir()
    (tmp_path / 'checkpoints' / 'latest.npz.tmp.4242').write_bytes(b'PK half')
    (tmp_path / 'keep.txt').write_text('mine')
    removed = atomic.remove_stale_temporaries(str(tmp_path / 'checkpoints'))
    assert [os.path.basename(p) for p in removed] == ['latest.npz.tmp.4242']
    assert os.listdir(tmp_path / 'checkpoints') == [] and (tmp_path / 'keep.txt').read_text() == 'mine'


def test_an_os_error_with_a_file_is_one_sentence():
    e = OSError(errno.ENOSPC, 'No space left on device', '/runs/x/metrics.jsonl')
    assert describe(e) == '/runs/x/metrics.jsonl: No space left on device; free some space and run the command again'
    assert exit_code(e) == WRITE


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A real 200 kB file system (root only; skipped elsewhere)."""
    if os.geteuid() != 0 or shutil.which('mount') is None:
        pytest.skip('mounting a tmpfs needs root')
    mnt = tmp_path / 'small'
    mnt.mkdir()
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=200k', 'tmpfs', str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f'cannot mount a tmpfs here: {r.stderr.decode().strip()}')
    yield mnt
    subprocess.run(['umount', str(mnt)], capture_output=True)


def test_a_real_full_disk(tiny_tmpfs):
    """A 120 kB checkpoint fits once on 200 kB; the second write needs room for the temporary too."""
    path = tiny_tmpfs / 'checkpoints' / 'latest.npz'
    checkpoint.save(path, _state(1, n=30000))
    with pytest.raises(WriteError, match='disk is full'):
        checkpoint.save(path, _state(2, n=30000))
    assert os.listdir(path.parent) == ['latest.npz']
    assert checkpoint.load(path)['step'] == 1

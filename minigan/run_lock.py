"""A run folder has one owner: the training process that holds its lock.

The lock is `RUN_DIR/run.lock`, locked with flock(2) for the life of the process: the operating
system releases it when the process ends, however it ends (even kill -9), so a stale lock never
blocks anyone. The file itself records who holds it (pid, host, command, start time), so a
second writer is refused with a message naming that process. The file is never deleted: two
processes can only ever race for the lock on the same file.

Claiming a folder for a new run is atomic: the folder is created with mkdir (which fails if it
exists), or an existing one is adopted only while holding its lock, so two simultaneous starts
cannot both succeed. A folder minigan did not make (not empty, and with neither run.lock nor a
minigan config.json) is never written into.

Readers (sample, evaluate, visualize) take no lock: checkpoints and config.json are replaced
atomically, and metrics.jsonl readers skip a half-written last line.
"""
import datetime
import glob
import json
import os
import shlex
import socket
import sys
import time

from .atomic import remove_stale_temporaries
from .errors import RunBusyError, UsageError, WriteError, write_error

try:
    import fcntl
except ImportError:                      # Windows: no flock; runs there have no lock
    fcntl = None

LOCK_NAME = 'run.lock'
# what a training run writes: removed when a run is restarted in place (user files are never touched)
OUTPUTS = ('config.json', 'metrics.jsonl', 'losses.png', 'metrics.png', 'progress.gif', 'confusion.txt',
           'confusion.png', 'samples/step_*.png', 'samples/epoch_*.png')
CHECKPOINTS = ('checkpoints/latest.npz', 'checkpoints/epoch_*.npz')


def _visible(entries):
    return [e for e in entries if not e.startswith('.')]


def is_run_folder(path):
    """Whether `path` is a folder minigan made for a run: it has run.lock or a minigan config.json."""
    if not os.path.isdir(path):
        return False
    if os.path.isfile(os.path.join(path, LOCK_NAME)):
        return True
    try:
        with open(os.path.join(path, 'config.json'), encoding='utf-8') as f:
            cfg = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(cfg, dict) and 'model' in cfg and 'version' in cfg


class RunLock:
    """The lock of one run folder, held from acquire() until release() or the end of the process."""

    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, LOCK_NAME)
        self._fd = None

    @property
    def held(self):
        return self._fd is not None

    def acquire(self):
        """Take the lock, or raise RunBusyError naming the process that holds it."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise write_error(self.path, e) from e
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunBusyError(self._busy_message()) from None
            except OSError:                  # a file system without locks: carry on unlocked
                pass
        info = {'pid': os.getpid(), 'host': socket.gethostname(),
                'command': ' '.join(shlex.quote(a) for a in [os.path.basename(sys.executable)] + sys.argv),
                'started': datetime.datetime.now().astimezone().isoformat(timespec='seconds')}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + '\n').encode(), 0)
        except OSError as e:
            os.close(fd)
            raise write_error(self.path, e) from e
        self._fd = fd
        return self

    def release(self):
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)    # nobody holds it now
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None

    def holder(self):
        """What the lock file says about its holder: a dict, or None while it is being written."""
        try:
            with open(self.path, encoding='utf-8') as f:
                info = json.loads(f.read() or 'null')
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) else None

    def _busy_message(self):
        info = None
        for _ in range(20):                  # the holder writes its details just after locking
            info = self.holder()
            if info:
                break
            time.sleep(0.02)
        if not info:
            who = 'another process'
            stop = 'wait for it to finish'
        else:
            host = '' if info.get('host') == socket.gethostname() else f' on {info.get("host")}'
            who = (f'process {info.get("pid")}{host} (started {info.get("started")}: '
                   f'{info.get("command")})')
            stop = f'wait for it to finish, or stop it with kill {info.get("pid")} (it saves a checkpoint first)'
        return f'{self.run_dir} is in use: {who} is training in it; {stop}, then try again'

    def __enter__(self):
        return self if self.held else self.acquire()

    def __exit__(self, *exc):
        self.release()


def claim_new(run_dir, restart=False, say=None):
    """Lock `run_dir` for a new run, creating it, and return the RunLock.

    Refused (UsageError) when `run_dir` is a file, a folder minigan did not make, or a run that
    has a checkpoint (unless restart=True, which discards it). A run that failed before its first
    checkpoint is simply started again. The outputs of an earlier attempt are removed under the
    lock, so nothing stale mixes into the new run."""
    from . import checkpoint
    try:
        os.makedirs(os.path.dirname(os.path.abspath(run_dir)), exist_ok=True)
        os.mkdir(run_dir)
    except FileExistsError:
        if not os.path.isdir(run_dir):
            raise UsageError(f'--out {run_dir} is a file, not a folder: choose another --out') from None
        # list first, then look for minigan's marks: files only ever appear, so a folder that another
        # start is claiming at this moment (its run.lock just made) is never taken for a stranger's
        if _visible(os.listdir(run_dir)) and not is_run_folder(run_dir):
            raise UsageError(f'--out {run_dir} already exists and is not a minigan run folder (it has no '
                             f'{LOCK_NAME} or config.json); minigan will not write into it: choose a new or '
                             'empty folder') from None
    except OSError as e:
        raise write_error(run_dir, e) from e
    lock = RunLock(run_dir).acquire()
    try:
        if checkpoint.has_checkpoint(run_dir) and not restart:
            raise UsageError(f'{run_dir} already holds a run with checkpoints: continue it with --resume '
                             f'{run_dir}, start it over with --restart (its checkpoints are deleted), or '
                             'choose another --out')
        removed = remove_outputs(run_dir, checkpoints=restart)
        if removed and say is not None:
            say(f'{run_dir}: removed {len(removed)} file(s) of an earlier attempt; starting the run afresh')
    except BaseException:
        lock.release()
        raise
    return lock


def claim_existing(run_dir):
    """Lock the run folder `run_dir` for --resume and return the RunLock."""
    if not os.path.isdir(run_dir):
        raise UsageError(f'--resume {run_dir}: no such folder; give the folder of a run made by '
                         'python -m minigan.train')
    if not is_run_folder(run_dir):
        raise UsageError(f'--resume {run_dir}: not a minigan run folder (it has no {LOCK_NAME} or config.json)')
    lock = RunLock(run_dir).acquire()
    try:
        remove_temporaries(run_dir)
    except BaseException:
        lock.release()
        raise
    return lock


def remove_temporaries(run_dir):
    """Delete temporaries that a killed run left (only the lock holder may: others may be in flight)."""
    return remove_stale_temporaries(run_dir, recursive=True)


def remove_outputs(run_dir, checkpoints=False):
    """Delete what an earlier training attempt wrote in `run_dir` (and its checkpoints if asked)."""
    removed = remove_temporaries(run_dir)
    for pattern in OUTPUTS + (CHECKPOINTS if checkpoints else ()):
        for path in glob.glob(os.path.join(glob.escape(run_dir), pattern)):
            if not os.path.isfile(path):
                continue
            try:
                os.remove(path)
            except OSError as e:
                raise write_error(path, e) from e
            removed.append(path)
    return removed


__all__ = ['LOCK_NAME', 'RunLock', 'RunBusyError', 'WriteError', 'claim_new', 'claim_existing',
           'is_run_folder', 'remove_outputs', 'remove_temporaries']

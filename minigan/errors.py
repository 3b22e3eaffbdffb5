"""The errors the commands (train, sample, evaluate, visualize) report, and their exit codes.

Every error a user can cause or meet ends in one sentence on stderr (what happened, which file
or flag, what to do) and one of these exit codes, so scripts can tell the cases apart:

    0    success (also: a run that had already reached its --epochs / --max-steps)
    1    an unexpected error inside minigan (a bug): one line; MINIGAN_DEBUG=1 shows the traceback
    2    bad usage: a flag, a path or a run folder that cannot be used as given
    3    a loss or weight became NaN or infinite; the last good checkpoint is kept
    4    bad data: a dataset that is missing, corrupt, truncated or changed since the run began
    5    a checkpoint that is damaged or does not match the run's model
    6    the run folder is in use by another process (it holds the run's lock)
    7    a file could not be written: disk full, over quota, read-only or no permission
    130  interrupted by Ctrl-C (SIGINT), after saving a checkpoint when training
    143  stopped by SIGTERM (kill PID), after saving a checkpoint when training

This module imports nothing from minigan, so any layer may raise these.
"""
import argparse
import errno
import os
import signal
import sys

OK = 0
INTERNAL = 1
USAGE = 2
NON_FINITE = 3
DATA = 4
CHECKPOINT = 5
BUSY = 6
WRITE = 7
INTERRUPTED = 130
TERMINATED = 143

# OSError numbers that mean "the disk cannot take this file", whatever the file is
FULL_DISK = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class MiniganError(Exception):
    """An error that is reported as its message alone; `exit_code` says which kind it is."""
    exit_code = INTERNAL


class UsageError(MiniganError):
    """A flag, a path or a run folder that cannot be used as given."""
    exit_code = USAGE


class CheckpointError(MiniganError, RuntimeError):
    """A checkpoint that is damaged, not minigan's, or does not fit the run's model."""
    exit_code = CHECKPOINT


class RunBusyError(MiniganError):
    """Another process holds the run folder's lock."""
    exit_code = BUSY


class WriteError(MiniganError, OSError):
    """A file could not be written (disk full, quota, permissions); nothing half-written is left."""
    exit_code = WRITE


class NonFiniteError(MiniganError):
    """A loss or a weight is NaN or infinite."""
    exit_code = NON_FINITE


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that cleanup code runs."""


def write_error(path, err):
    """A WriteError naming `path` for the OSError `err` met while writing it."""
    if err.errno in FULL_DISK:
        what = 'the disk is full (or the quota is used up)'
        todo = 'free some space and run the command again'
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        what = 'no permission to write there' if err.errno != errno.EROFS else 'the file system is read-only'
        todo = 'choose a folder you can write to'
    elif err.errno in (errno.EISDIR, errno.ENOTDIR, errno.EEXIST):
        what = 'a file or folder of that name is in the way'
        todo = 'move it away, or choose another folder'
    else:
        what = err.strerror or str(err)
        todo = 'check the path and the disk, then run the command again'
    e = WriteError(f'cannot write {path}: {what}; {todo}')
    e.errno, e.path = err.errno, path          # (not .filename: str(e) stays the sentence)
    return e


def exit_code(e):
    """The exit code of an exception (see the table above)."""
    if isinstance(e, KeyboardInterrupt):
        return INTERRUPTED
    if isinstance(e, Terminated):
        return TERMINATED
    code = getattr(e, 'exit_code', None)
    if isinstance(code, int):
        return code
    if isinstance(e, OSError):
        return WRITE if e.errno in FULL_DISK | {errno.EACCES, errno.EPERM, errno.EROFS} else USAGE
    return INTERNAL


def describe(e):
    """One line for an exception: its message, or for an unexpected one its type and message."""
    if isinstance(e, MiniganError):
        text = str(e)
    elif isinstance(e, OSError) and e.filename is not None:
        text = f'{e.filename}: {e.strerror or e}'
        if e.errno in FULL_DISK:
            text += '; free some space and run the command again'
        elif isinstance(e, (NotADirectoryError, IsADirectoryError, FileExistsError)):
            text += '; a file or folder of that name is in the way: move it away'
    elif isinstance(e, OSError):
        text = str(e)
    else:
        text = (f'unexpected {type(e).__name__}: {e} (a bug in minigan: run again with MINIGAN_DEBUG=1 '
                'for the traceback and report it)')
    return ' '.join(text.split()) or type(e).__name__


def report(prog, e, file=None):
    """Print `prog: error: <one line>` and return the exit code."""
    print(f'{prog}: error: {describe(e)}', file=file or sys.stderr, flush=True)
    return exit_code(e)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage dump), exit status 2."""

    def error(self, message):
        self.exit(USAGE, f'{self.prog}: error: {message} (see --help)\n')


def _raise_terminated(signum, frame):
    raise Terminated()


def run_command(prog, body, *args):
    """Run body(*args) as a command: its return value is the exit code; every exception becomes
    one line on stderr and its exit code (MINIGAN_DEBUG=1 re-raises it). SIGTERM is raised as
    Terminated so that `finally` blocks (temporary files, locks) run before the exit."""
    old = None
    try:
        old = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:                          # not the main thread
        pass
    try:
        return body(*args)
    except KeyboardInterrupt:
        print(f'{prog}: interrupted', file=sys.stderr, flush=True)
        return INTERRUPTED
    except Terminated:
        print(f'{prog}: stopped by SIGTERM', file=sys.stderr, flush=True)
        return TERMINATED
    except Exception as e:
        if os.environ.get('MINIGAN_DEBUG'):
            raise
        return report(prog, e)
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)

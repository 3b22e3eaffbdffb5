"""Files written whole or not at all.

Everything a run writes (checkpoints, config.json, sample grids, plots, progress.gif) goes
through `atomic_write`: the bytes go to a temporary file in the same folder, are flushed to
disk, and only then is the temporary renamed over the target with `os.replace`, which readers
see as one step. A crash, Ctrl-C or a full disk during the write leaves the old file as it was
and removes the temporary; a full disk becomes a WriteError naming the file.

Temporaries are named `<target>.tmp.<pid>`, so `remove_stale_temporaries` can find the ones a
killed process left behind (only the run's owner, holding its lock, may delete them).
"""
import contextlib
import glob
import os

from .errors import WriteError, write_error

TMP_MARK = '.tmp.'

_UMASK = os.umask(0o022)
os.umask(_UMASK)                                  # read the umask once, at import


def temporary_name(path):
    return f'{path}{TMP_MARK}{os.getpid()}'


def fsync_folder(folder):
    """Make a rename in `folder` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path, mode='wb', encoding=None):
    """`with atomic_write(path) as f: f.write(...)`: `path` gets all the bytes or keeps its old ones."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise write_error(path, e) from e
    tmp = temporary_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666 & ~_UMASK)
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and not isinstance(e, WriteError):
            raise write_error(path, e) from e
        raise
    fsync_folder(folder)


def write_text(path, text):
    with atomic_write(path, 'w', encoding='utf-8') as f:
        f.write(text)
    return path


def copy_file(src, dst):
    """shutil.copyfile through atomic_write."""
    import shutil
    with open(src, 'rb') as f, atomic_write(dst) as g:
        shutil.copyfileobj(f, g)
    return dst


def save_image(image, path, format=None, **options):
    """PIL `image.save` through atomic_write (the format from the extension unless given)."""
    path = os.fspath(path)
    if format is None:
        format = {'.png': 'PNG', '.gif': 'GIF', '.jpg': 'JPEG', '.jpeg': 'JPEG'}.get(
            os.path.splitext(path)[1].lower(), 'PNG')
    with atomic_write(path) as f:
        image.save(f, format=format, **options)
    return path


def remove_stale_temporaries(folder, recursive=False):
    """Delete the temporaries that killed processes left in `folder` (never read, never needed).
    Only the owner of a run folder may call this: another writer's temporary may be in flight."""
    folder = glob.escape(folder)
    pattern = os.path.join(folder, '**', f'*{TMP_MARK}*') if recursive else os.path.join(folder, f'*{TMP_MARK}*')
    removed = []
    for tmp in glob.glob(pattern, recursive=recursive):
        try:
            os.remove(tmp)
            removed.append(tmp)
        except OSError:
            pass
    return removed

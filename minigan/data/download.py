"""Where data lives, and downloading it safely.

The data folder ("root") is, in order: the `root` argument (the training
command's --data-dir), the MINIGAN_DATA environment variable, or a per-user
cache folder (~/.cache/minigan on Linux, ~/Library/Caches/minigan on macOS,
%LOCALAPPDATA%\\minigan on Windows).

A download streams into a temporary ".part" file next to the target, with a
progress bar, and is renamed to its real name only after its size and MD5
match: an interrupted or corrupt download never leaves a file that looks
complete. An existing file is never overwritten.
"""
import hashlib
import http.client
import os
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

from .errors import DatasetError

ENV_ROOT = 'MINIGAN_DATA'
_CHUNK = 1 << 16


def default_root():
    """The data folder used when no `root` is given."""
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env).expanduser()
    home = Path.home()
    if sys.platform == 'win32':
        base = Path(os.environ.get('LOCALAPPDATA', home / 'AppData' / 'Local'))
        return base / 'minigan'
    if sys.platform == 'darwin':
        return home / 'Library' / 'Caches' / 'minigan'
    base = os.environ.get('XDG_CACHE_HOME')
    return (Path(base) if base else home / '.cache') / 'minigan'


def resolve_root(root=None):
    return default_root() if root is None else Path(root).expanduser()


def md5sum(path):
    h = hashlib.md5()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def _progress(total, name, enabled):
    try:
        from tqdm import tqdm
    except ImportError:              # tqdm is a dependency, but a missing bar must not stop a download
        return None
    return tqdm(total=total, unit='B', unit_scale=True, unit_divisor=1024, desc=name,
                disable=None if enabled else True, leave=False)


def _fetch(url, tmp, timeout, progress, name):
    """Stream `url` into `tmp`; return (bytes written, md5). Raises OSError/URLError on failure."""
    req = urllib.request.Request(url, headers={'User-Agent': 'minigan-data/1.0'})
    h = hashlib.md5()
    got = 0
    with urllib.request.urlopen(req, timeout=timeout) as resp, open(tmp, 'wb') as out:
        length = resp.headers.get('Content-Length')
        total = int(length) if length and length.isdigit() else None
        bar = _progress(total, name, progress)
        try:
            while True:
                block = resp.read(_CHUNK)
                if not block:
                    break
                out.write(block)
                h.update(block)
                got += len(block)
                if bar is not None:
                    bar.update(len(block))
        finally:
            if bar is not None:
                bar.close()
    if total is not None and got != total:
        raise OSError(f'the transfer stopped after {got:,} of {total:,} bytes')
    return got, h.hexdigest()


def download(urls, dest, md5=None, progress=True, timeout=30):
    """Download `dest` (a Path) from the first of `urls` that works, check its MD5, return dest.

    An existing `dest` is left alone and returned as it is (check it with md5sum).
    """
    dest = Path(dest)
    if isinstance(urls, str):
        urls = [urls]
    if dest.exists():
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatasetError(f'cannot create the data folder {dest.parent} ({e}): pass root= (or set '
                           f'{ENV_ROOT}) to a writable folder') from e
    tmp = dest.with_name(f'.{dest.name}.{os.getpid()}.part')
    problems = []
    for url in urls:
        try:
            got, digest = _fetch(url, tmp, timeout, progress, dest.name)
            if md5 is not None and digest != md5:
                problems.append(f'{url}: MD5 {digest} does not match the official {md5} '
                                f'({got:,} bytes received)')
                continue
            os.replace(tmp, dest)
            return dest
        except (urllib.error.URLError, http.client.HTTPException, OSError, socket.timeout, ValueError) as e:
            problems.append(f'{url}: {getattr(e, "reason", None) or e}')
        finally:
            if tmp.exists():
                tmp.unlink()
    tried = '\n  '.join(problems)
    raise DatasetError(
        f'could not download {dest.name}:\n  {tried}\n'
        f'Without network access, download {urls[0]} by hand and put it at {dest} '
        f'(MD5 {md5}), or point root= / {ENV_ROOT} at the folder that holds it.')

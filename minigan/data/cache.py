"""The decoded-array cache: what was generated or decoded once loads in a fraction of a second.

An entry is one uncompressed .npz file under <root>/cache/. Its file name comes
from what it holds (the source's path and the loading options), so a changed
source replaces its old entry instead of piling up new ones; inside, `__key__`
records the whole key: options plus the size and modification time of every
source file. An entry is used only when that key matches exactly and its arrays
have the expected types and shapes; a stale entry is rebuilt, a corrupt one is
rebuilt with a warning, never trusted. Entries are written to a temporary file
and renamed, so an interrupted write leaves no half entry. If the cache folder
cannot be written, loading still works, only without the cache.
"""
import hashlib
import io
import json
import os
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .errors import warn

CACHE_VERSION = 1


def file_stamp(path):
    """(size, modification time in ns) of a file: part of a cache key."""
    st = os.stat(path)
    return [int(st.st_size), int(st.st_mtime_ns)]


def listing_digest(entries):
    """A short digest of a long list of (name, size, mtime) entries (a folder's files)."""
    h = hashlib.sha1()
    for e in entries:
        h.update(repr(tuple(e)).encode())
        h.update(b'\n')
    return h.hexdigest()


def make_key(kind, identity, **parts):
    """The full key (a JSON string) and the entry's file name for `identity` (what it holds)."""
    full = {'cache_version': CACHE_VERSION, 'kind': kind, 'identity': identity, **parts}
    key = json.dumps(full, sort_keys=True, default=str)
    ident = json.dumps({'kind': kind, 'identity': identity}, sort_keys=True, default=str)
    name = f'{kind}-{hashlib.sha1(ident.encode()).hexdigest()[:16]}.npz'
    return key, name


def cache_dir(root):
    return Path(root) / 'cache'


def load(root, name, key):
    """The cached arrays (a dict) if the entry exists, matches `key` and is sound; else None."""
    path = cache_dir(root) / name
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            if '__key__' not in f.files or str(f['__key__']) != key:
                return None                       # stale: the source or the options changed
            out = {k: f[k] for k in f.files if k not in ('__key__', 'images')}
        out['images'] = _read_stored(path, 'images.npy')
        _check(out)
        return out
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        warn(f'the cache file {path} is unreadable ({e}); rebuilding it')
        return None


def _read_stored(path, member):
    """One array of an uncompressed .npz, read in one go and checked against the zip's CRC.

    (np.load copies a large member several times over; this reads it straight into place.)
    """
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(member)
    if info.compress_type != zipfile.ZIP_STORED:
        with np.load(path, allow_pickle=False) as f:
            return f[member[:-4]]
    buf = np.empty(info.file_size, dtype=np.uint8)
    with open(path, 'rb') as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if len(local) != 30 or local[:4] != b'PK\x03\x04':
            raise ValueError(f'bad zip entry for {member}')
        f.seek(info.header_offset + 30 + struct.unpack('<H', local[26:28])[0]
               + struct.unpack('<H', local[28:30])[0])
        if f.readinto(memoryview(buf)) != info.file_size:
            raise ValueError(f'{member} is truncated')
    if zlib.crc32(buf) != info.CRC:
        raise ValueError(f'{member} fails its CRC check')
    head = io.BytesIO(buf[:min(len(buf), 1 << 16)].tobytes())
    version = np.lib.format.read_magic(head)
    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                   else np.lib.format.read_array_header_2_0)
    shape, fortran, dtype = read_header(head)
    if dtype.hasobject or fortran:
        raise ValueError(f'{member} is not a plain C-ordered array')
    data = buf[head.tell():]
    if data.size != int(np.prod(shape)) * dtype.itemsize:
        raise ValueError(f'{member} holds {data.size} bytes for shape {shape}')
    return data.view(dtype).reshape(shape)


def _check(arrays):
    images, labels = arrays.get('images'), arrays.get('labels')
    if images is None or labels is None:
        raise ValueError('images or labels are missing')
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f'images are {images.dtype} {images.shape}, not uint8 (N, C, H, W)')
    if len(labels) != len(images):
        raise ValueError(f'{len(labels)} labels for {len(images)} images')


def save(root, name, key, arrays):
    """Write the entry atomically; on failure warn and go on (the cache is only a speed-up)."""
    folder = cache_dir(root)
    tmp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f'.{name}.', suffix='.part', dir=folder)
        with os.fdopen(fd, 'wb') as f:
            np.savez(f, __key__=np.array(key), **arrays)
        os.replace(tmp, folder / name)
        tmp = None
    except OSError as e:
        warn(f'could not write the cache file {folder / name} ({e}); the data will be '
             'decoded again next time (set root= or MINIGAN_DATA to a writable folder)')
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def cached(root, name, key, build, use_cache=True):
    """Arrays from the cache when valid, else build() them and store them."""
    if use_cache:
        hit = load(root, name, key)
        if hit is not None:
            return hit
    arrays = build()
    if use_cache:
        save(root, name, key, arrays)
    return arrays

"""A folder of images (or an archive of one): class sub-folders become labels.

Layout rules, applied to the files found recursively (hidden files skipped):
- Leading folders that every file shares are looked through (Chars74K's
  English/Img/GoodImg/Bmp/Sample001/... gives the classes Sample001...).
- Sub-folders named train/ and test/ (also training/, testing/, val/, valid/,
  validation/) are splits: `split` picks one. A folder without them is
  one split, loaded for split="train" (or "all").
- The first sub-folder below that is the class; deeper folders belong to it.
  Files directly in the folder form a class named after the folder, so a flat
  folder is one class.
- An archive (.tar, .tar.gz, .tgz, .zip, ...) is read as if it were that
  folder, without extracting it; a folder holding no images but one archive
  is read through the archive.

Pillow decodes JPEG, PNG, BMP, GIF (first frame), WebP, TIFF and PNM. Grey,
palette and transparent images become RGB (transparency on white), or grey
with channels=1; each image is resized on its shorter side and centre-cropped
to image_size. Files that are not images or cannot be decoded are skipped and
counted in one warning; a folder with no readable image is an error.

Multi-label data: labels_file names a CSV whose rows are a file name (relative
to the folder, or a bare name when that is unique) and then one or more class
names (in further columns, or in one column separated by ";" or "|"). A header
row is recognised by its first cell (filename, file, image, path, name, id);
with a header, 0/1 columns are read as one column per class. Labels become
float32 multi-hot rows (N, K). A file named in the CSV that is not in the
folder is an error.
"""
import bz2
import csv
import gzip
import io
import lzma
import os
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from . import cache as _cache
from . import imageops
from .errors import DatasetError, warn
from .pool import map_jobs

IMAGE_EXTS = {'.jpg', '.jpeg', '.jpe', '.jfif', '.png', '.bmp', '.dib', '.gif', '.webp', '.tif',
              '.tiff', '.ppm', '.pgm', '.pbm', '.pnm'}
ARCHIVE_EXTS = ('.tar', '.tar.gz', '.tgz', '.tar.bz2', '.tbz2', '.tar.xz', '.txz', '.zip')
SPLIT_DIRS = {'train': ('train', 'training'), 'test': ('test', 'testing'),
              'val': ('val', 'valid', 'validation')}
_HEADER_WORDS = {'filename', 'file', 'image', 'images', 'path', 'name', 'id', 'file_name', 'image_id'}
_JOB = 256                        # images per decoding job
FOLDER_VERSION = 1                # bump when decoding or layout rules change: part of the cache key
_SHOW = 5                         # file names shown in a message
_IN_MEMORY = 1 << 30              # archives smaller than this are decompressed in memory
_BLOCK = 512                      # tar block size


def is_archive(path):
    return str(path).lower().endswith(ARCHIVE_EXTS)


def _is_image(name):
    return os.path.splitext(name)[1].lower() in IMAGE_EXTS


def _hidden(name):
    return any(p.startswith('.') or p == '__MACOSX' for p in name.split('/'))


def _examples(items):
    items = list(items)
    more = f', ... ({len(items) - _SHOW} more)' if len(items) > _SHOW else ''
    return ', '.join(str(i) for i in items[:_SHOW]) + more


# ---------------------------------------------------------------- listing
def list_folder(folder):
    """[(relative posix path, size, mtime_ns)] of the files under `folder`, sorted, hidden ones skipped."""
    out = []
    stack = [Path(folder)]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.name.startswith('.') or e.name == '__MACOSX':
                        continue
                    if e.is_dir():
                        stack.append(Path(e.path))
                    elif e.is_file():
                        st = e.stat()
                        rel = Path(e.path).relative_to(folder).as_posix()
                        out.append((rel, int(st.st_size), int(st.st_mtime_ns)))
        except PermissionError as err:
            warn(f'cannot list {d} ({err}); skipped')
    out.sort()
    return out


def read_archive(path):
    """[(member name, bytes)] of the files in a tar or zip archive, in archive order."""
    out = None
    try:
        if str(path).lower().endswith('.zip'):
            out = []
            with zipfile.ZipFile(path) as z:
                for info in z.infolist():
                    if not info.is_dir():
                        out.append((info.filename, z.read(info)))
        else:
            if os.path.getsize(path) < _IN_MEMORY:
                out = _read_tar_fast(_decompress(path))
            if out is None:                      # large, or headers the fast reader leaves to tarfile
                out = []
                with tarfile.open(path, 'r:*') as tar:
                    for m in tar:
                        if m.isfile():
                            out.append((m.name, tar.extractfile(m).read()))
                    tar.fileobj.seek(tar.offset)
                    _check_tar_end(tar.fileobj.read(2 * _BLOCK), tar.offset)
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, zlib.error, lzma.LZMAError,
            ValueError) as e:
        raise DatasetError(f'{path}: the archive is truncated or corrupt ({type(e).__name__}: {e})') from e
    return [(n[2:] if n.startswith('./') else n, b) for n, b in out]


def _decompress(path):
    with open(path, 'rb') as f:
        raw = f.read()
    if raw[:2] == b'\x1f\x8b':
        return gzip.decompress(raw)
    if raw[:3] == b'BZh':
        return bz2.decompress(raw)
    if raw[:6] == b'\xfd7zXZ\x00':
        return lzma.decompress(raw)
    return raw


def _read_tar_fast(raw):
    """Files of a plain ustar/GNU tar held in memory; None when it uses headers this reader skips
    (long names, pax attributes, sparse files), which tarfile then reads. Python's tarfile spends
    ~60 us per member; this spends ~2."""
    out, pos, end = [], 0, len(raw)
    view = memoryview(raw)
    headers, stored = [], []
    while True:
        block = raw[pos:pos + 512]
        if len(block) < 512 or block[0] == 0:     # the end-of-archive blocks, or the archive is cut
            _check_tar_end(raw[pos:pos + 2 * _BLOCK], pos)
            break
        headers.append(pos)
        stored.append(int(block[148:156].split(b'\0', 1)[0].strip() or b'0', 8))
        flag = block[156:157]
        size_field = block[124:136]
        if size_field[0] & 0x80 or flag not in (b'0', b'\0', b'5', b'1', b'2'):
            return None
        size = int(size_field.split(b'\0', 1)[0].strip() or b'0', 8)
        name = block[:100].split(b'\0', 1)[0]
        if block[257:262] == b'ustar' and block[345] != 0:
            name = block[345:500].split(b'\0', 1)[0] + b'/' + name
        start = pos + 512
        if start + size > end:
            raise ValueError(f'the archive ends inside the member {name.decode(errors="replace")}')
        if flag in (b'0', b'\0'):
            out.append((name.decode('utf-8', errors='surrogateescape'), bytes(view[start:start + size])))
        pos = start + (size + 511) // 512 * 512
    if headers:                                   # header checksums, all at once: the bytes' sum with
        arr = np.frombuffer(raw, dtype=np.uint8)  # the checksum field counted as spaces
        offs = np.asarray(headers)[:, None]
        sums = arr[offs + np.arange(512)].sum(axis=1, dtype=np.int64)
        sums += 8 * 32 - arr[offs + np.arange(148, 156)].sum(axis=1, dtype=np.int64)
        bad = np.flatnonzero(sums != np.asarray(stored))
        if bad.size:
            raise ValueError(f'tar header checksum mismatch at byte {headers[bad[0]]}')
    return out


def _check_tar_end(tail, offset):
    """A complete tar archive ends with two zero blocks where the next member would begin; without
    them it was cut short (a cut between members leaves every earlier member readable)."""
    if len(tail) < 2 * _BLOCK or any(tail[:2 * _BLOCK]):
        raise ValueError(f'no end-of-archive marker after the last member (byte {offset:,}): the archive '
                         'was cut short (an interrupted download or copy?); fetch or copy it again')


# ---------------------------------------------------------------- layout
def _strip_common(names):
    """Drop leading folders shared by every name (that are not split folders)."""
    parts = [n.split('/') for n in names]
    depth = 0
    while parts and all(len(p) > depth + 1 for p in parts):
        first = parts[0][depth]
        if any(p[depth] != first for p in parts) or _split_of(first):
            break
        depth += 1
    return ['/'.join(p[depth:]) for p in parts], (parts[0][depth - 1] if depth else None)


def _split_of(dirname):
    low = dirname.lower()
    for split, names in SPLIT_DIRS.items():
        if low in names:
            return split
    return None


def organise(names, split, where, folder_name):
    """Pick the split and assign classes, from the layout of the image files among `names`.

    Returns (selected image names, their class names, names relative to the split folder,
    the other files under the selected folder).
    """
    images = [n for n in names if _is_image(n)]
    stripped, last = _strip_common(images)
    prefix = '/'.join(images[0].split('/')[:len(images[0].split('/')) - len(stripped[0].split('/'))]) \
        if images else ''
    tops = {s.split('/')[0] for s in stripped if '/' in s}
    split_tops = {t for t in tops if _split_of(t)}
    if split_tops:
        if split in (None, 'all'):
            wanted = split_tops
        else:
            wanted = {t for t in split_tops if _split_of(t) == split}
            if not wanted:
                raise DatasetError(f'{where} has the split folders {sorted(split_tops)} but none for '
                                   f'split={split!r}: use one of '
                                   f'{sorted({_split_of(t) for t in split_tops})}')
        keep = [i for i, s in enumerate(stripped) if '/' in s and s.split('/')[0] in wanted]
        rel, last2 = _strip_common([stripped[i].split('/', 1)[1] for i in keep])
        selected = [images[i] for i in keep]
        last = last2 or folder_name
        under = tuple((prefix + '/' if prefix else '') + t + '/' for t in wanted)
    else:
        if split not in (None, 'all', 'train'):
            raise DatasetError(f'{where} has no {split}/ sub-folder (no train/ or test/ split folders '
                               'at all): load it with split="train" (the whole folder)')
        selected, rel = images, stripped
        last = last or folder_name
        under = None
    others = [n for n in names if not _is_image(n) and (under is None or n.startswith(under))]
    classes = [r.split('/', 1)[0] if '/' in r else last for r in rel]
    return selected, classes, rel, others


# ---------------------------------------------------------------- labels file
def read_labels_file(path):
    """[(file name, [class names])] and the class list (in first-seen or header order)."""
    path = Path(path)
    try:
        text = path.read_text(encoding='utf-8-sig')
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f'labels file {path}: cannot be read ({e})') from e
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=',;\t')
    except csv.Error:
        dialect = csv.excel
    rows = [[c.strip() for c in r] for r in csv.reader(io.StringIO(text), dialect)]
    rows = [r for r in rows if r and any(r)]
    if not rows:
        raise DatasetError(f'labels file {path} is empty: write one row per image, "file name, '
                           'class[, class...]"')
    header = rows[0] if rows[0][0].lower() in _HEADER_WORDS else None
    body = rows[1:] if header else rows
    if not body:
        raise DatasetError(f'labels file {path} has a header but no rows')
    onehot = header is not None and len(header) > 2 and all(
        len(r) == len(header) and all(c in ('0', '1', '0.0', '1.0', '') for c in r[1:]) for r in body)
    entries, order = [], {}
    for lineno, r in enumerate(body, start=2 if header else 1):
        if onehot:
            names = [header[j] for j in range(1, len(header)) if r[j] in ('1', '1.0')]
        else:
            names = [n.strip() for c in r[1:] for n in c.replace('|', ';').split(';') if n.strip()]
        if not r[0]:
            raise DatasetError(f'labels file {path}, row {lineno}: the file name is empty')
        for n in names:
            order.setdefault(n, len(order))
        entries.append((r[0].replace('\\', '/'), names))
    classes = header[1:] if onehot else list(order)
    if not classes:
        raise DatasetError(f'labels file {path} names no classes: each row is "file name, class[, class...]"')
    return entries, classes


def _match_labels(entries, classes, candidates, labels_path, where):
    """Map labels-file rows onto the image names; returns (indices into candidates, multi-hot rows)."""
    index = {}
    for i, names in enumerate(candidates):
        for n in names:
            index.setdefault(n, set()).add(i)
    picked, rows, missing, ambiguous = [], [], [], []
    col = {c: j for j, c in enumerate(classes)}
    for name, labels in entries:
        key = name[2:] if name.startswith('./') else name
        hit = index.get(key)
        if not hit:
            missing.append(name)
            continue
        if len(hit) > 1:
            ambiguous.append(name)
            continue
        row = np.zeros(len(classes), dtype=np.float32)
        row[[col[c] for c in labels]] = 1.0
        picked.append(next(iter(hit)))
        rows.append(row)
    if missing:
        raise DatasetError(f'labels file {labels_path} names {len(missing)} image(s) not found in '
                           f'{where}: {_examples(missing)}')
    if ambiguous:
        raise DatasetError(f'labels file {labels_path}: the names {_examples(ambiguous)} match several '
                           f'files in {where}; write their paths relative to the folder')
    if len(set(picked)) != len(picked):
        raise DatasetError(f'labels file {labels_path} lists some images twice')
    return picked, rows


# ---------------------------------------------------------------- decoding
def _decode_job(args):
    sources, size, channels = args
    images, ok, errors = [], [], []
    for i, src in enumerate(sources):
        try:
            images.append(imageops.decode(src, size, channels))
            ok.append(i)
        except Exception as e:          # Pillow raises many kinds of errors for bad files
            errors.append((i, f'{type(e).__name__}: {e}'.splitlines()[0][:120]))
    arr = np.stack(images) if images else np.zeros((0, channels, size, size), np.uint8)
    return arr, ok, errors


def decode_all(sources, size, channels, workers=None):
    """Decode `sources` (paths or bytes); returns (images, indices decoded, [(index, error)])."""
    jobs = [(sources[i:i + _JOB], size, channels) for i in range(0, len(sources), _JOB)]
    parts = map_jobs(_decode_job, jobs, workers=workers if len(jobs) > 1 else 0)
    images, ok, errors = [], [], []
    for k, (arr, ok_k, err_k) in enumerate(parts):
        images.append(arr)
        ok += [k * _JOB + i for i in ok_k]
        errors += [(k * _JOB + i, e) for i, e in err_k]
    images = np.concatenate(images) if images else np.zeros((0, channels, size, size), np.uint8)
    return images, ok, errors


# ---------------------------------------------------------------- the loader
def _source_of(path):
    """('dir', folder, listing) or ('archive', archive path, None)."""
    if path.is_file():
        if is_archive(path):
            return 'archive', path, None
        raise DatasetError(f'{path} is a file, not a folder of images or an archive of one')
    if not path.is_dir():
        raise DatasetError(f'{path}: no such folder')
    listing = list_folder(path)
    if not listing:
        raise DatasetError(f'the folder {path} is empty: put images in it (one sub-folder per class)')
    if not any(_is_image(n) for n, _, _ in listing):
        archives = [n for n, _, _ in listing if is_archive(n)]
        if len(archives) == 1:
            return 'archive', path / archives[0], None
        if len(archives) > 1:
            raise DatasetError(f'the folder {path} holds no images but several archives '
                               f'({_examples(archives)}): give the path of one of them')
    return 'dir', path, listing


def load_folder(path, split='train', image_size=32, channels=3, labels_file=None, root=None,
                workers=None, use_cache=True):
    """Arrays of a folder (or archive) of images: {'images', 'labels', 'classes'}."""
    path = Path(path).expanduser().resolve()
    size = 32 if image_size is None else int(image_size)
    channels = 3 if channels is None else int(channels)
    if size < 1:
        raise DatasetError(f'image_size must be a positive number of pixels, got {image_size}')
    if channels not in (1, 3):
        raise DatasetError(f'channels must be 1 (grey) or 3 (RGB), got {channels}')
    kind, src, listing = _source_of(path)
    labels_path = Path(labels_file).expanduser().resolve() if labels_file is not None else None
    if labels_path is not None and not labels_path.is_file():
        raise DatasetError(f'labels file {labels_path} not found')
    if kind == 'dir':
        stamp = _cache.listing_digest(listing)
    else:
        stamp = _cache.file_stamp(src)
    key, name = _cache.make_key(
        'folder', [str(src), split, size, channels, str(labels_path) if labels_path else None],
        version=FOLDER_VERSION, stamp=stamp,
        labels_stamp=_cache.file_stamp(labels_path) if labels_path else None)

    def build():
        return _build(kind, src, listing, split, size, channels, labels_path, workers, path)
    arrays = _cache.cached(root, name, key, build, use_cache=use_cache and root is not None)
    arrays['classes'] = [str(c) for c in arrays['classes']]
    return arrays


def _build(kind, src, listing, split, size, channels, labels_path, workers, path):
    where = str(src)
    if kind == 'archive':
        members = read_archive(src)
        members = [(n, b) for n, b in members if not _hidden(n)]
        if not members:
            raise DatasetError(f'the archive {src} holds no files')
        names = [n for n, _ in members]
        blobs = dict(members)
    else:
        names = [n for n, _, _ in listing]
    labels_name = None
    if labels_path is not None and kind == 'dir':
        try:
            labels_name = labels_path.relative_to(src).as_posix()
        except ValueError:
            pass
    names = [n for n in names if n != labels_name]
    selected, class_of, rel, not_images = organise(names, split, where, path.name)
    if not selected:
        raise DatasetError(f'no images in {where}: found {len(names)} file(s), none with an image '
                           f'extension ({", ".join(sorted(IMAGE_EXTS))}): {_examples(names)}')
    cand = list(range(len(selected)))
    unlisted = []
    if labels_path is not None:
        entries, classes = read_labels_file(labels_path)
        keys = [(selected[i], rel[i]) for i in cand]
        base_count = {}
        for _, r in keys:
            b = r.rsplit('/', 1)[-1]
            base_count[b] = base_count.get(b, 0) + 1
        cands = [{s, r} | ({r.rsplit('/', 1)[-1]} if base_count[r.rsplit('/', 1)[-1]] == 1 else set())
                 for s, r in keys]
        picked, rows = _match_labels(entries, classes, cands, labels_path, where)
        picked_set = set(picked)
        unlisted = [selected[cand[j]] for j in range(len(cand)) if j not in picked_set]
        order = [cand[j] for j in picked]
        targets = np.stack(rows)
    else:
        order = cand
    sources = [blobs[selected[i]] if kind == 'archive' else str(src / selected[i]) for i in order]
    images, ok, errors = decode_all(sources, size, channels, workers)
    problems = [f'{n} (not an image)' for n in not_images]
    problems += [f'{selected[order[i]]} ({e})' for i, e in errors]
    if not ok:
        raise DatasetError(f'no readable images in {where}: none of its {len(order)} image file(s) '
                           f'could be decoded: {_examples(problems)}')
    if problems or unlisted:
        msg = (f'{where}: skipped {len(problems)} of {len(selected) + len(not_images)} file(s) that are '
               'not readable images')
        if problems:
            msg += f': {_examples(problems)}'
        if unlisted:
            msg += (f'; {len(unlisted)} image(s) not named in {labels_path} were left out: '
                    f'{_examples(unlisted)}')
        warn(msg)
    if labels_path is not None:
        labels = targets[ok]
    else:
        names_ok = [class_of[order[i]] for i in ok]
        classes = sorted(set(names_ok))
        col = {c: j for j, c in enumerate(classes)}
        labels = np.array([col[c] for c in names_ok], dtype=np.int64)
    return {'images': images, 'labels': labels, 'classes': np.array(classes, dtype=str)}

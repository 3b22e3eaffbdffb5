"""Chars74K (de Campos, Babu and Varma, 2009): photographs of characters in street scenes.

The English/Img part of the official archive EnglishImg.tgz: GoodImg/Bmp/SampleNNN/*.png, where
Sample001-Sample010 are the digits 0-9, Sample011-Sample036 the letters A-Z and
Sample037-Sample062 a-z: 62 classes, always in that order (a copy holding only some
of the folders keeps the official class indices). BadImag (hard images) and the Msk masks are not used.

There is no official train/test split: in each class, sorted by file name, every tenth image
(the 10th, 20th, ...) is the test split and the others are the training split.
"""
import re
import string
from pathlib import Path

import numpy as np

from .errors import DatasetError, warn
from .folder import decode_all, read_archive

URL = 'http://www.ee.surrey.ac.uk/CVSSP/demos/chars74k/EnglishImg.tgz'
ARCHIVE = 'EnglishImg.tgz'
MD5 = '85d157e0c58f998e1cda8def62bcda0d'
CLASSES = list(string.digits + string.ascii_uppercase + string.ascii_lowercase)
GOOD = 'English/Img/GoodImg/Bmp'
_MEMBER = re.compile(r'(?:^|/)GoodImg/Bmp/Sample(\d{3})/([^/]+\.png)$', re.IGNORECASE)
TEST_EVERY = 10


def find_images(root):
    """The GoodImg/Bmp folder under `root` (or under root/chars74k), or None."""
    for base in (root / 'chars74k', root):
        for rel in (GOOD, 'Img/GoodImg/Bmp', 'GoodImg/Bmp'):
            if (base / rel).is_dir():
                return base / rel
    return None


def _members_of_folder(folder):
    return [(f'GoodImg/Bmp/{p.parent.name}/{p.name}', str(p)) for p in sorted(folder.glob('Sample*/*'))
            if p.is_file()]


def _members_of_archive(path):
    return [(name, blob) for name, blob in read_archive(path)]


def select(members, split):
    """[(label, source)] of `split` from [(member name, source)]: GoodImg PNGs only, in name order."""
    by_class = {}
    for name, source in members:
        m = _MEMBER.search(name)
        if m is None:
            continue
        label = int(m.group(1)) - 1
        if not 0 <= label < len(CLASSES):
            raise DatasetError(f'chars74k: {name} is in a folder Sample{m.group(1)}, but the classes are '
                               f'Sample001-Sample{len(CLASSES):03d}; is this the English/Img part?')
        by_class.setdefault(label, []).append((m.group(2), source))
    picked = []
    for label in sorted(by_class):
        for i, (_, source) in enumerate(sorted(by_class[label], key=lambda t: t[0])):
            if (i % TEST_EVERY == TEST_EVERY - 1) == (split == 'test'):
                picked.append((label, source))
    return picked


def read(path, split, size, channels, workers=None):
    """{'images', 'labels', 'classes'} from a GoodImg/Bmp folder or the EnglishImg.tgz archive."""
    path = Path(path)
    members = _members_of_archive(path) if path.is_file() else _members_of_folder(path)
    picked = select(members, split)
    if not picked:
        raise DatasetError(f'chars74k: no GoodImg/Bmp/SampleNNN/*.png images for split {split!r} in {path}')
    images, ok, errors = decode_all([s for _, s in picked], size, channels, workers)
    if errors:
        warn(f'chars74k: skipped {len(errors)} of {len(picked)} images that could not be decoded in {path}')
    if not ok:
        raise DatasetError(f'chars74k: none of the {len(picked)} images in {path} could be decoded')
    labels = np.array([picked[i][0] for i in ok], dtype=np.int64)
    return {'images': images, 'labels': labels, 'classes': np.array(CLASSES)}

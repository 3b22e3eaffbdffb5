"""A dataset's fingerprint: enough to tell, on --resume, that the data is not the data the run began on.

It holds the image count, the image shape, the class names, and a SHA-256 of the labels and of
`SAMPLE` images spread evenly over the set (first and last included) together with their
positions. Hashing a sample keeps it cheap for large sets; a replaced, shrunk, grown, re-ordered
or re-labelled dataset changes it. The decoded arrays are hashed, not the files, so the same
data found in another --data-dir (or re-cached) has the same fingerprint.
"""
import hashlib

import numpy as np

from .errors import DatasetError

SAMPLE = 256


def fingerprint(ds):
    """{'images', 'image_shape', 'classes', 'sha256'} of a Dataset (see the module notes)."""
    n = len(ds)
    idx = np.unique(np.linspace(0, n - 1, min(n, SAMPLE)).round().astype(np.int64)) if n else np.zeros(0, np.int64)
    h = hashlib.sha256()
    h.update(np.asarray([n, *ds.image_shape], np.int64).tobytes())
    h.update(idx.tobytes())
    h.update(np.ascontiguousarray(ds.images[idx]).tobytes())
    h.update(np.ascontiguousarray(ds.labels).tobytes())
    h.update('\n'.join(ds.classes).encode('utf-8'))
    return {'images': int(n), 'image_shape': [int(s) for s in ds.image_shape],
            'classes': [str(c) for c in ds.classes], 'sha256': h.hexdigest()}


def differences(recorded, current):
    """What changed between two fingerprints, in words ([] when they match)."""
    out = []
    if recorded.get('images') != current.get('images'):
        out.append(f'it had {recorded.get("images")} images, now {current.get("images")}')
    if recorded.get('image_shape') != current.get('image_shape'):
        shape = 'x'.join(map(str, recorded.get('image_shape') or []))
        out.append(f'its images were {shape}, now {"x".join(map(str, current["image_shape"]))}')
    if recorded.get('classes') != current.get('classes'):
        out.append(f'its classes were {_short(recorded.get("classes"))}, now {_short(current.get("classes"))}')
    if not out and recorded.get('sha256') != current.get('sha256'):
        out.append('the same number of images, but different images or labels')
    return out


def check(recorded, current, where, allow_changed=False, flag='--allow-changed-data'):
    """Raise DatasetError when `current` differs from `recorded` (unless allow_changed); returns
    the differences. A run recorded before fingerprints existed (recorded is None) passes."""
    if not recorded:
        return []
    changed = differences(recorded, current)
    if changed and not allow_changed:
        raise DatasetError(f'the dataset of {where} changed since the run began: {"; ".join(changed)}; '
                           f'restore the original data, or resume with {flag} to train on this data anyway')
    return changed


def _short(names, k=4):
    names = list(names or [])
    return ', '.join(names[:k]) + (f' ... ({len(names)} in all)' if len(names) > k else '')

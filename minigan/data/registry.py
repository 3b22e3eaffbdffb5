"""load_dataset: one entry point for the named datasets and for folders of images."""
import os
from pathlib import Path

import numpy as np

from . import cache as _cache
from . import chars74k, cifar10, folder, imageops, mnist, svhn, synth
from .dataset import Dataset
from .download import download as _download
from .download import md5sum, resolve_root
from .errors import DatasetError, warn

NAMES = ('synth', 'svhn', 'mnist', 'fashion-mnist', 'cifar10', 'chars74k')
_ALIASES = {'fashion_mnist': 'fashion-mnist', 'fashionmnist': 'fashion-mnist', 'cifar-10': 'cifar10',
            'cifar_10': 'cifar10', 'synthetic': 'synth', 'default': 'synth', 'chars74K': 'chars74k',
            'chars-74k': 'chars74k'}
SPLITS = {'synth': ('train', 'test'), 'svhn': ('train', 'test', 'extra'), 'mnist': ('train', 'test'),
          'fashion-mnist': ('train', 'test'), 'cifar10': ('train', 'test'), 'chars74k': ('train', 'test')}


def available_datasets():
    """The dataset names load_dataset knows (any folder path works as well)."""
    return list(NAMES)


def load_dataset(name='synth', root=None, split='train', download=False, image_size=None,
                 channels=None, **options):
    """Load a dataset as uint8 NCHW images and labels.

    name:       "synth" (generated, no download), "svhn", "mnist", "fashion-mnist", "cifar10", "chars74k",
                or the path of a folder of images (or of an archive of one)
    root:       the data folder (default: $MINIGAN_DATA or a per-user cache folder); downloads
                and the decoded-array cache go there
    split:      "train" or "test" ("extra" for svhn; a folder's train/ or test/ sub-folder)
    download:   fetch missing official files (checked against their MD5s)
    image_size: resize (shorter side + centre crop) to this size; for mnist/fashion-mnist the
                28x28 images are padded unless fit="resize"; folders default to 32
    channels:   1 (grey) or 3 (RGB); default: the dataset's own (folders: 3)
    options:    synth: n, seed (0), fonts ("auto", "bundled" or font paths), workers;
                svhn/mnist/fashion-mnist/cifar10: verify (MD5 mismatch of a local file is an
                error instead of a warning); mnist/fashion-mnist: fit ("pad" or "resize");
                folders: labels_file (CSV for multi-label data), workers; all: cache (True)
    """
    if channels not in (None, 1, 3):
        raise DatasetError(f'channels must be 1 (grey) or 3 (RGB), got {channels!r}')
    if image_size is not None and (not isinstance(image_size, (int, np.integer)) or image_size < 1):
        raise DatasetError(f'image_size must be a positive int (32, 64, 128), got {image_size!r}')
    root = resolve_root(root)
    use_cache = bool(options.pop('cache', True))
    key = _ALIASES.get(str(name).lower(), str(name).lower()) if isinstance(name, str) else None
    if key in NAMES:
        if split not in SPLITS[key]:
            raise DatasetError(f'{key} has the splits {", ".join(SPLITS[key])}, not {split!r}')
        loader = {'synth': _load_synth, 'svhn': _load_svhn, 'mnist': _load_mnist,
                  'fashion-mnist': _load_mnist, 'cifar10': _load_cifar10, 'chars74k': _load_chars74k}[key]
        return loader(key, root, split, download, image_size, channels, use_cache, options)
    path = Path(os.fspath(name)).expanduser()
    if path.exists():
        return _load_folder(path, root, split, image_size, channels, use_cache, options)
    raise DatasetError(f'unknown dataset {str(name)!r}: use one of {", ".join(NAMES)}, or the path '
                       'of a folder of images (no such folder exists either)')


def _no_options(key, options, allowed=()):
    extra = sorted(set(options) - set(allowed))
    if extra:
        raise DatasetError(f'{key}: unknown option(s) {", ".join(extra)}'
                           + (f'; it takes {", ".join(allowed)}' if allowed else ''))


def _transform(arrays, image_size, channels, fit='resize'):
    """Apply channels and image_size to freshly read arrays (before they are cached)."""
    images = imageops.to_channels(arrays['images'], channels)
    if image_size is not None and images.shape[2:] != (image_size, image_size):
        if fit == 'pad' and max(images.shape[2:]) <= image_size:
            images = imageops.pad_to(images, image_size)
        else:
            images = imageops.resize_all(images, image_size)
    return dict(arrays, images=images)


def _dataset(arrays, key, split, source):
    return Dataset(arrays['images'], arrays['labels'], [str(c) for c in arrays['classes']], key, split,
                   source)


# ---------------------------------------------------------------- synth
def _load_synth(key, root, split, download, image_size, channels, use_cache, options):
    _no_options(key, options, ('n', 'seed', 'fonts', 'workers'))
    n = options.get('n')
    n = synth.SIZES[split] if n is None else int(n)
    seed = int(options.get('seed', 0))
    size = 32 if image_size is None else int(image_size)
    fonts = synth._fonts.resolve_fonts(options.get('fonts', 'auto'))
    ckey, cname = _cache.make_key('synth', [split, n, seed, size, channels, list(fonts)],
                                  version=synth.SYNTH_VERSION, fonts=synth._fonts.font_fingerprint(fonts))

    def build():
        images, labels = synth.generate(n, split, seed, size, fonts, options.get('workers'))
        arrays = {'images': images, 'labels': labels, 'classes': np.array(synth.CLASSES)}
        return _transform(arrays, None, channels)
    arrays = _cache.cached(root, cname, ckey, build, use_cache)
    return _dataset(arrays, key, split, 'generated')


# ---------------------------------------------------------------- official files
def _find(root, dirs, filename):
    for d in dirs:
        p = root / d / filename if d else root / filename
        if p.is_file():
            return p
    return None


def _official(key, root, dirs, filename, md5, urls, download, verify):
    """Path of an official file: found under root, or downloaded (MD5-checked) when allowed."""
    path = _find(root, dirs, filename)
    if path is not None:
        return path, False
    if not download:
        where = ' or '.join(str(root / d if d else root) for d in dirs)
        raise DatasetError(f'{key}: {filename} not found in {where}. Pass download=True to fetch it '
                           f'from {urls[0]}, or download it by hand and put it in {root / dirs[0]}')
    return _download(urls, root / dirs[0] / filename, md5), True


def _check_md5(key, path, md5, verify, others=()):
    """Compare a local file with the official MD5: warn (or with verify=True, fail) on a mismatch."""
    digest = md5sum(path)
    if digest == md5:
        return
    for other_name, other_md5 in others:
        if digest == other_md5:
            raise DatasetError(f'{path} is {other_name}, not the {key} file it is named after: put the '
                               f'{key} files in their own folder')
    msg = (f'{path}: MD5 {digest} differs from the official {md5}; it parsed as a valid file, so it is '
           'used as it is (a subset or a re-saved copy?). Pass verify=True to refuse such files.')
    if verify:
        raise DatasetError(msg.replace('; it parsed as a valid file, so it is used as it is', '')
                           .replace(' Pass verify=True to refuse such files.',
                                    ' Download the official file again (move this copy away first).'))
    warn(msg)


def _load_official(key, root, split, image_size, channels, use_cache, sources, read, verify, fit,
                   others=()):
    """sources: [(path, md5, fresh)]; read() -> arrays. Cached by the files' sizes and mtimes."""
    ckey, cname = _cache.make_key(key, [split, [str(p) for p, _, _ in sources], image_size, channels, fit],
                                  stamps=[_cache.file_stamp(p) for p, _, _ in sources])

    def build():
        arrays = read()            # parse first: a corrupt file is reported as such, not as an MD5 issue
        for p, md5, fresh in sources:
            if not fresh and md5 is not None:
                _check_md5(key, p, md5, verify, others)
        return _transform(arrays, image_size, channels, fit)
    arrays = _cache.cached(root, cname, ckey, build, use_cache)
    return _dataset(arrays, key, split, str(sources[0][0]))


def _load_svhn(key, root, split, download, image_size, channels, use_cache, options):
    _no_options(key, options, ('verify',))
    filename, md5 = svhn.FILES[split]
    path, fresh = _official(key, root, ['svhn', ''], filename, md5, [svhn.URL + filename],
                            download, options.get('verify', False))

    def read():
        images, labels = svhn.read_mat(path)
        return {'images': images, 'labels': labels, 'classes': np.array(svhn.CLASSES)}
    return _load_official(key, root, split, image_size, channels, use_cache, [(path, md5, fresh)],
                          read, options.get('verify', False), 'resize')


def _load_mnist(key, root, split, download, image_size, channels, use_cache, options):
    _no_options(key, options, ('verify', 'fit'))
    fit = options.get('fit', 'pad')
    if fit not in ('pad', 'resize'):
        raise DatasetError(f'{key}: fit must be "pad" or "resize", got {fit!r}')
    src = mnist.SOURCES[key]
    dirs = [key, f'{key}/raw', f'{src["torch_dir"]}/raw'] + ([''] if key == 'mnist' else [])
    other = 'fashion-mnist' if key == 'mnist' else 'mnist'
    others = [(f'{other} {n}', m) for n, m in mnist.SOURCES[other]['files'].items()]
    found = []
    for kind in ('images', 'labels'):
        gz = f'{mnist.PREFIX[split]}-{kind}-idx{3 if kind == "images" else 1}-ubyte.gz'
        md5 = src['files'][gz]
        raw = _find(root, dirs, gz[:-3])
        path = _find(root, dirs, gz)
        if path is not None or raw is None:
            path, fresh = _official(key, root, dirs, gz, md5, [u + gz for u in src['urls']], download,
                                    options.get('verify', False))
            found.append((path, md5, fresh))
        else:
            found.append((raw, None, False))       # an unpacked idx file: no official MD5 to check

    def read():
        images, labels = mnist.read_pair(found[0][0], found[1][0])
        return {'images': images, 'labels': labels, 'classes': np.array(src['classes'])}
    return _load_official(key, root, split, image_size, channels, use_cache, found, read,
                          options.get('verify', False), fit, others)


def _load_cifar10(key, root, split, download, image_size, channels, use_cache, options):
    _no_options(key, options, ('verify',))
    extracted = _find(root, ['cifar10', ''], cifar10.FOLDER + '/data_batch_1')
    archive = _find(root, ['cifar10', ''], cifar10.ARCHIVE)
    if archive is None and extracted is not None:
        folder_path = extracted.parent
        names = cifar10.BATCHES[split]
        sources = [(folder_path / n, None, False) for n in names if (folder_path / n).is_file()]
        if len(sources) != len(names):
            raise DatasetError(f'{folder_path}: some of {", ".join(names)} are missing')
        path = folder_path
    else:
        archive, fresh = _official(key, root, ['cifar10', ''], cifar10.ARCHIVE, cifar10.MD5,
                                   [cifar10.URL], download, options.get('verify', False))
        sources, path = [(archive, cifar10.MD5, fresh)], archive

    def read():
        images, labels, classes = cifar10.read(path, split)
        return {'images': images, 'labels': labels, 'classes': np.array(classes)}
    return _load_official(key, root, split, image_size, channels, use_cache, sources, read,
                          options.get('verify', False), 'resize')


def _load_chars74k(key, root, split, download, image_size, channels, use_cache, options):
    _no_options(key, options, ('verify', 'workers'))
    folder_path = chars74k.find_images(root)
    if folder_path is not None:
        sources, path = [], folder_path
        stamps = [_cache.listing_digest(folder.list_folder(folder_path))]
    else:
        path, fresh = _official(key, root, ['chars74k', ''], chars74k.ARCHIVE, chars74k.MD5,
                                [chars74k.URL], download, options.get('verify', False))
        sources, stamps = [(path, chars74k.MD5, fresh)], [_cache.file_stamp(path)]
    size = 32 if image_size is None else int(image_size)
    ckey, cname = _cache.make_key(key, [split, str(path), size, channels], stamps=stamps)

    def build():
        arrays = chars74k.read(path, split, size, 3 if channels is None else channels, options.get('workers'))
        for p, md5, fresh in sources:
            if not fresh:
                _check_md5(key, p, md5, options.get('verify', False))
        return arrays
    arrays = _cache.cached(root, cname, ckey, build, use_cache)
    return _dataset(arrays, key, split, str(path))


# ---------------------------------------------------------------- folders
def _load_folder(path, root, split, image_size, channels, use_cache, options):
    _no_options(str(path), options, ('labels_file', 'workers'))
    arrays = folder.load_folder(path, split, image_size, channels, options.get('labels_file'), root,
                                options.get('workers'), use_cache)
    return Dataset(arrays['images'], arrays['labels'], arrays['classes'], Path(path).name, split,
                   str(path))

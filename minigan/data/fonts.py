"""Fonts for the synthetic digit set.

Pillow (>= 10.1) ships one scalable font (Aileron Regular) behind
ImageFont.load_default(size=...), so a fresh machine always has at least that
one. Common TrueType families found on the system are added for variety; the
list of fonts used is part of the synthetic set's cache key, so a machine with
other fonts builds (and caches) its own deterministic set.
"""
import functools
import os
import sys
from pathlib import Path

from .errors import DatasetError

BUNDLED = '<pillow-default>'

# Families whose digits look like printed house numbers (no symbol, emoji, math or script fonts).
_FAMILIES = ('dejavusans', 'dejavuserif', 'liberationsans', 'liberationserif', 'liberationmono',
             'freesans', 'freeserif', 'freemono', 'notosans-', 'notoserif-', 'notosansmono',
             'ubuntu', 'opensans', 'roboto', 'lato', 'arial', 'verdana', 'tahoma', 'times',
             'georgia', 'trebuc', 'cour', 'helvetica', 'cantarell', 'droidsans', 'droidserif',
             'nimbussans', 'nimbusroman', 'urwgothic', 'lmroman', 'quicksand')
_EXCLUDE = ('math', 'symbol', 'emoji', 'extralight', 'thin', 'hairline', 'light', 'cjk',
            'arabic', 'hebrew', 'devanagari', 'color', 'display')
_MAX_SYSTEM_FONTS = 24


def _font_dirs():
    home = Path.home()
    dirs = [Path('/usr/share/fonts'), Path('/usr/local/share/fonts'), home / '.fonts',
            home / '.local/share/fonts']
    if sys.platform == 'darwin':
        dirs += [Path('/Library/Fonts'), Path('/System/Library/Fonts'), home / 'Library/Fonts']
    if os.name == 'nt':
        dirs.append(Path(os.environ.get('WINDIR', r'C:\Windows')) / 'Fonts')
    return dirs


@functools.lru_cache(maxsize=None)
def system_fonts():
    """Sorted paths of suitable TrueType/OpenType fonts installed on this machine (may be empty)."""
    found = []
    for d in _font_dirs():
        if not d.is_dir():
            continue
        for p in d.rglob('*'):
            name = p.name.lower()
            if p.suffix.lower() not in ('.ttf', '.otf') or not p.is_file():
                continue
            if name.startswith(_FAMILIES) and not any(x in name for x in _EXCLUDE):
                found.append(str(p))
    found = sorted(set(found), key=lambda s: (Path(s).name.lower(), s))
    return tuple(found[:_MAX_SYSTEM_FONTS])


def resolve_fonts(fonts='auto'):
    """The font list for the synthetic set: "auto" (Pillow's + system fonts), "bundled"
    (Pillow's only: the same images on every machine), or a list of font file paths."""
    if fonts == 'auto':
        return (BUNDLED,) + system_fonts()
    if fonts == 'bundled':
        return (BUNDLED,)
    if isinstance(fonts, (str, os.PathLike)):
        fonts = [fonts]
    out = []
    for f in fonts:
        if f != BUNDLED and not os.path.isfile(f):
            raise DatasetError(f'font file {f!s} not found: pass paths to .ttf/.otf files, '
                               '"auto" or "bundled"')
        out.append(os.fspath(f))
    if not out:
        raise DatasetError('fonts: the list of fonts is empty')
    return tuple(out)


def load_font(path, size):
    """A FreeType font at pixel `size`; BUNDLED is Pillow's own scalable font."""
    from PIL import ImageFont
    if path == BUNDLED:
        try:
            return ImageFont.load_default(size=size)
        except TypeError as e:   # Pillow < 10.1: no scalable default font
            raise DatasetError('the synthetic digit set needs Pillow >= 10.1 (for its bundled '
                               'scalable font) or font files: pip install -U pillow') from e
    try:
        return ImageFont.truetype(path, size)
    except OSError as e:
        raise DatasetError(f'font file {path} could not be read ({e})') from e


def font_fingerprint(fonts):
    """What identifies the fonts for the cache key: names and sizes of the font files."""
    from PIL import __version__ as pil_version
    parts = [f'pillow={pil_version}']
    for f in fonts:
        if f == BUNDLED:
            parts.append(f)
        else:
            try:
                parts.append(f'{Path(f).name}:{os.path.getsize(f)}')
            except OSError:
                parts.append(f'{Path(f).name}:?')
    return ';'.join(parts)

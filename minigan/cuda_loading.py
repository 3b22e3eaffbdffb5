"""Loading minigan's CUDA kernels once per process, without failing silently (used by cuda_kernels.py).

load(ways, probe) tries each way of loading the kernels in turn ('extension', then 'nvrtc') with
probe(way), which returns None when that way compiles, finds and runs the kernels here, else why not.
The first that works is kept as the default; an extension passed over says why in a RuntimeWarning;
when none works, the error names every way and its reason.

Never while a CUDA graph is being captured: a test launch and a synchronisation cannot be recorded,
so nothing is tried and nothing is cached, and a failure seen while a capture began is not kept
either (the capture may be what failed). The next call outside the capture tries again.
"""
import warnings

from .backend import is_capturing

_loaded = None   # (the way that works, None) or (None, why none does), once decided outside a capture


def load(ways, probe):
    """(way, None) for the first of `ways` that probe() accepts, else (None, why not)."""
    global _loaded
    if _loaded is not None:
        return _loaded
    try:
        capturing = is_capturing()
    except Exception as e:                      # the stream cannot even be asked: a broken context
        return None, f'the CUDA stream cannot be queried ({type(e).__name__}: {e})'
    if capturing:
        return None, ('not loaded yet: their first use came inside a CUDA graph capture, where they cannot '
                      'be tried; use them once before capturing (GraphedStep\'s warm-up does)')
    errors = {}
    for way in ways:
        errors[way] = probe(way)
        if errors[way] is None:
            if 'extension' in errors and way != 'extension':
                warnings.warn(f'minigan: the compiled CUDA kernels (minigan._cuda) do not run here '
                              f'({errors["extension"]}); compiling them with NVRTC instead', RuntimeWarning,
                              stacklevel=4)
            _loaded = (way, None)
            return _loaded
    failure = (None, '; '.join(f'{way}: {error}' for way, error in errors.items()))
    if not _capture_began():
        _loaded = failure
    return failure


def _capture_began():
    """Whether a capture is under way now (another stream's, seen from the legacy stream, counts)."""
    try:
        return is_capturing()
    except Exception:
        return True

"""The one error type of the data layer."""
from ..errors import DATA, MiniganError


class DatasetError(MiniganError, ValueError):
    """A dataset could not be found, downloaded, verified or decoded, or it changed.

    The message names the file or folder and the problem, and says what to do.
    """
    exit_code = DATA


class DatasetWarning(UserWarning):
    """Something was skipped or is not what it should be, but the data could still be loaded."""


def warn(message, category=DatasetWarning):
    """warnings.warn, attributed to the first caller outside minigan.data (the user's line)."""
    import sys
    import warnings
    level, frame = 2, sys._getframe(1)
    while frame is not None and frame.f_globals.get('__name__', '').startswith('minigan.data'):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)

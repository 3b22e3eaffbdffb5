"""Helpers shared by the data tests (no tests here): the real samples' location, the slow switch."""
import os
from pathlib import Path

import pytest


def shared_data():
    """../shared/data next to the repository (or $MINIGAN_SHARED_DATA); None when absent."""
    env = os.environ.get('MINIGAN_SHARED_DATA')
    path = Path(env) if env else Path(__file__).resolve().parents[2] / 'shared' / 'data'
    return path if path.is_dir() else None


def need_slow(request):
    """Run a slow test only when asked for: -m slow, or MINIGAN_SLOW=1."""
    if 'slow' in (request.config.getoption('markexpr') or '') or os.environ.get('MINIGAN_SLOW'):
        return
    pytest.skip('slow: run with -m slow or MINIGAN_SLOW=1')

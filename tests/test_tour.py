"""The reading tour (docs/tour.md) cannot go stale: every ```python block in it runs, in order, in
one namespace per page, and where a ```text block follows, it is exactly what the code printed.
The derivative table in it is the one docs/derivatives.py generates from the sources."""
import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / 'docs').glob('tour*.md'))
BLOCK = re.compile(r'```(\w+)\n(.*?)```', re.DOTALL)


def blocks(page):
    """[(code, expected output or None)] of a page's python blocks."""
    found = [(m.group(1), m.group(2), m.end(), m.start()) for m in BLOCK.finditer(page.read_text())]
    out = []
    for i, (lang, body, end, _) in enumerate(found):
        if lang != 'python':
            continue
        nxt = found[i + 1] if i + 1 < len(found) else None
        expected = nxt[1] if nxt and nxt[0] == 'text' and page.read_text()[end:nxt[3]].strip() == '' else None
        out.append((body, expected))
    return out


@pytest.mark.parametrize('page', PAGES, ids=[p.name for p in PAGES])
def test_every_code_block_runs_and_prints_what_the_page_shows(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {'__name__': '__tour__'}
    for i, (code, expected) in enumerate(blocks(page)):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(code, f'{page.name} block {i + 1}', 'exec'), namespace)
        if expected is not None:
            got = '\n'.join(line.rstrip() for line in buf.getvalue().rstrip().splitlines())
            want = '\n'.join(line.rstrip() for line in expected.rstrip().splitlines())
            assert got == want, f'{page.name}, block {i + 1} printed:\n{got}\n\nthe page shows:\n{want}'


def test_the_tour_exists_and_is_linked_from_the_readme():
    assert PAGES, 'docs/tour.md is missing'
    assert 'docs/tour.md' in (ROOT / 'README.md').read_text()


def test_the_derivative_table_is_current():
    table = subprocess.run([sys.executable, str(ROOT / 'docs' / 'derivatives.py')], capture_output=True,
                           text=True, check=True, cwd=ROOT).stdout.strip()
    assert table in (ROOT / 'docs' / 'tour.md').read_text(), \
        'the derivative table in docs/tour.md is stale: paste the output of python docs/derivatives.py'

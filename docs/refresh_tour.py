"""Rewrite docs/tour.md's output blocks from its code, and its derivative table from the sources.

    python docs/refresh_tour.py        # from the repository root, after a deliberate change

Each ```python block runs in order in one namespace (in a temporary folder), and the ```text
block that follows it is replaced by what it printed; the line DERIVATIVES, or the table after
'## Every derivative rule', is replaced by the output of docs/derivatives.py. tests/test_tour.py
checks both.
"""
import contextlib
import io
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / 'docs' / 'tour.md'
PAIR = re.compile(r'(```python\n(.*?)```\n\n```text\n)(.*?)(```)', re.DOTALL)


def main():
    sys.path.insert(0, str(ROOT))
    text = PAGE.read_text()
    namespace = {'__name__': '__tour__'}
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            def fill(m):
                buf = io.StringIO()
                with contextlib.redirect_stdout(buf):
                    exec(compile(m.group(2), 'tour', 'exec'), namespace)
                out = '\n'.join(line.rstrip() for line in buf.getvalue().rstrip().splitlines())
                return m.group(1) + (out + '\n' if out else '') + m.group(4)
            text = PAIR.sub(fill, text)
        finally:
            os.chdir(here)
    table = subprocess.run([sys.executable, str(ROOT / 'docs' / 'derivatives.py')], capture_output=True,
                           text=True, check=True, cwd=ROOT).stdout.strip()
    head, sep, _ = text.partition('## Every derivative rule')
    intro = ('\n\nEvery `backward` in minigan, with the one-line rule written beside it, as\n'
             '`python docs/derivatives.py` prints it (the test suite checks that this table is current):\n\n')
    PAGE.write_text(head + sep + intro + table + '\n')


if __name__ == '__main__':
    main()

"""The README's 15-line example runs as written and learns its task."""
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / 'README.md'


def test_readme_example_trains_to_high_accuracy():
    code = re.search(r'```python\n(.*?)```', README.read_text(), re.S).group(1)
    assert len(code.strip().splitlines()) <= 16
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120,
                         cwd=README.parent)
    assert out.returncode == 0, out.stderr
    accuracy = float(re.search(r'accuracy ([\d.]+)%', out.stdout).group(1))
    assert accuracy > 95.0, out.stdout


def test_readme_test_command_is_what_ci_runs():
    ci = (README.parent / '.ci' / 'run').read_text()
    assert '<!-- test-command -->' in README.read_text() and '<!-- test-command -->' in ci

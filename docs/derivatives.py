"""Print every op's derivative rule as a Markdown table: Function, the rule written beside its
backward (the one-line math comment), and where it is. The tour (docs/tour.md) holds this table,
and tests/test_tour.py checks that it is current.

    python docs/derivatives.py
"""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLASS = re.compile(r'^class (\w+)\(Function\):')
BACKWARD = re.compile(r'^    def backward\(self[^)]*\):\s*#\s*(.+)$')


def rules():
    for path in sorted((ROOT / 'minigan').rglob('*.py')):
        cls = None
        for n, line in enumerate(path.read_text().splitlines(), 1):
            m = CLASS.match(line)
            if m:
                cls = m.group(1)
            m = BACKWARD.match(line)
            if m and cls:
                yield cls, m.group(1).strip(), f'{path.relative_to(ROOT).as_posix()}:{n}'


if __name__ == '__main__':
    print('| Function | backward rule | where |')
    print('| --- | --- | --- |')
    for cls, rule, where in rules():
        print(f'| {cls} | {rule.replace("|", "∣")} | {where} |')

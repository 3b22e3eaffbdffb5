"""The shape of the code: no import circle above the core, each floor importing only the floors
below it (commands, evaluation, training, run folders, steps and networks), and no file in
minigan/ over 500 lines.

The import graph is read from the source, not from a running interpreter: every `import` and
`from ... import` statement of minigan/**/*.py, those inside functions included, is an edge
from its file's module to the module it names (`from . import x` names the submodule x when
there is one, else the package). The core (tensor, autograd, random and functional/*) may form a
circle among itself, which tensor.py explains where it happens; any other circle fails the test.
"""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the core: Tensor (with the method groups it inherits: tensor_inplace, tensor_torch_methods and the
# legacy type names), Function and backward, the random state, and the ops
CORE = ('minigan.tensor', 'minigan.tensor_inplace', 'minigan.tensor_torch_methods', 'minigan.legacy',
        'minigan.autograd', 'minigan.random', 'minigan.functional')
MAX_LINES = 500


def modules(package_dir):
    """{dotted module name: file} for the .py files (and compiled extensions) under package_dir."""
    base = os.path.dirname(package_dir)
    found = {}
    for folder, _, files in os.walk(package_dir):
        for f in files:
            path = os.path.join(folder, f)
            if f.endswith('.py'):
                name = os.path.relpath(path, base)[:-3].replace(os.sep, '.')
                found[name[:-len('.__init__')] if name.endswith('.__init__') else name] = path
            elif f.endswith(('.so', '.pyd')):          # a compiled extension: a module with no imports
                found[os.path.relpath(os.path.join(folder, f.split('.')[0]), base).replace(os.sep, '.')] = path
    return found


def _named(module, path, node):
    """The modules an import statement names, as dotted names (possibly not in the package)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        parts = module.split('.') if path.endswith('__init__.py') else module.split('.')[:-1]
        parts = parts[:len(parts) - (node.level - 1)]
        target = '.'.join(parts + ([node.module] if node.module else []))
    else:
        target = node.module or ''
    return [f'{target}.{a.name}' for a in node.names] + [target]


def import_graph(package_dir):
    """{module: set of modules of the same package it imports}, from the source text."""
    mods = modules(package_dir)
    graph = {m: set() for m in mods}
    for m, path in mods.items():
        if not path.endswith('.py'):
            continue
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            names = _named(m, path, node)
            if isinstance(node, ast.ImportFrom):
                # `from p import x`: the submodule p.x when it exists, else p itself
                subs = [n for n in names[:-1] if n in mods]
                names = subs if len(subs) == len(names) - 1 else subs + [names[-1]]
            for name in names:
                while name not in mods and '.' in name:
                    name = name.rsplit('.', 1)[0]
                if name in mods and name != m:
                    graph[m].add(name)
    return graph


def circles(graph):
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _in_core(module):
    return any(module == c or module.startswith(c + '.') for c in CORE)


def test_the_graph_finds_a_circle_made_by_an_import_inside_a_function(tmp_path):
    pkg = tmp_path / 'pkg'
    (pkg / 'sub').mkdir(parents=True)
    (pkg / '__init__.py').write_text('')
    (pkg / 'a.py').write_text('from .sub import b\n')
    (pkg / 'sub' / '__init__.py').write_text('')
    (pkg / 'sub' / 'b.py').write_text('def f():\n    from .. import c\n')
    (pkg / 'c.py').write_text('import pkg.a\n')
    (pkg / 'd.py').write_text('from . import a\n')
    graph = import_graph(str(pkg))
    assert graph['pkg.a'] == {'pkg.sub.b'} and graph['pkg.sub.b'] == {'pkg.c'} and graph['pkg.d'] == {'pkg.a'}
    assert circles(graph) == [['pkg.a', 'pkg.c', 'pkg.sub.b']]


def test_no_import_circle_outside_the_core():
    graph = import_graph(os.path.join(ROOT, 'minigan'))
    assert 'minigan.train' in graph and 'minigan.evaluate' in graph
    outside = [c for c in circles(graph) if not all(_in_core(m) for m in c)]
    assert outside == [], f'import circles outside the core: {outside}'


# The floors above the core, top first; a module may import its own floor and those below it.
# Every module not named here (nn, optim, data, metrics, functional, the core, the kernels) is below.
FLOORS = [
    ('minigan.train', 'minigan.sample', 'minigan.evaluate', 'minigan.visualize',    # commands
     'minigan.upscale'),
    ('minigan.evaluation',),                                                         # judging runs
    ('minigan.training',),                                                           # the loop
    ('minigan.run_recorder', 'minigan.run_folder', 'minigan.run_config',             # run folders
     'minigan.run_lock', 'minigan.checkpoint', 'minigan.runlog'),
    ('minigan.gan', 'minigan.models', 'minigan.cuda_graph'),                         # steps, networks
]


def _floor(module):
    for level, names in enumerate(FLOORS):
        if any(module == n or module.startswith(n + '.') for n in names):
            return level
    return len(FLOORS)


def test_the_commands_are_imported_by_no_module():
    """train, sample, evaluate and visualize are the top floor: no module imports them, not even
    another command (evaluate does not train through train.main)."""
    graph = import_graph(os.path.join(ROOT, 'minigan'))
    commands = set(FLOORS[0])
    importers = {m: sorted(c for c in deps if c in commands) for m, deps in graph.items()}
    assert {m: v for m, v in importers.items() if v} == {}


def test_each_floor_imports_only_its_own_and_those_below():
    graph = import_graph(os.path.join(ROOT, 'minigan'))
    upward = sorted((m, t) for m, deps in graph.items() for t in deps if _floor(t) < _floor(m))
    assert upward == [], f'imports of a higher floor: {upward}'


@pytest.mark.parametrize('folder', ['minigan'])
def test_no_file_over_500_lines(folder):
    long = {}
    for path in sorted(modules(os.path.join(ROOT, folder)).values()):
        if path.endswith('.py'):
            with open(path, encoding='utf-8') as f:
                n = sum(1 for _ in f)
            if n > MAX_LINES:
                long[os.path.relpath(path, ROOT)] = n
    assert long == {}, f'files over {MAX_LINES} lines: {long}'

"""mg.graph: the graph behind a tensor as Graphviz DOT text, and a picture when Graphviz is here.
(This module is graph_dot, not graph, so that `minigan.graph` names only the function.)

    >>> x = mg.tensor([1.0, 2.0], requires_grad=True)
    >>> print(mg.graph((x * x).sum()))
    digraph minigan {
      rankdir=TB;
      node [fontname="Helvetica", fontsize=10];
      t0 [label="() float32\\noutput", shape=box, style=bold];
      f1 [label="Sum\\n() float32", shape=ellipse];
      f1 -> t0;
      f2 [label="Mul\\n(2,) float32", shape=ellipse];
      f2 -> f1;
      t3 [label="(2,) float32\\ninput, requires grad", shape=box, style=filled, fillcolor="#d9ead3"];
      t3 -> f2;
      t3 -> f2;
    }
    <BLANKLINE>

Boxes are tensors, ellipses are ops (the Function that ran, with the shape and
dtype of what it made); arrows point the way the forward pass went, so backward
walks them in reverse. The tensors at the edge of the graph come in three kinds:

    parameter   a leaf that requires grad and is named in `params` (blue)
    input       a leaf that requires grad and is not named (green)
    constant    a tensor that does not require grad: no gradient flows into it (grey, dashed)

Nodes are numbered in the order the walk meets them, so the same code gives the
same text on every run.
"""
import shutil
import subprocess
from pathlib import Path

from .tensor import Tensor

_STYLE = {
    'parameter': 'shape=box, style=filled, fillcolor="#cfe2f3"',
    'input': 'shape=box, style=filled, fillcolor="#d9ead3"',
    'constant': 'shape=box, style=dashed, color="#888888", fontcolor="#555555"',
    'output': 'shape=box, style=bold',
    'op': 'shape=ellipse',
}

_INSTALL = ('install Graphviz\'s `dot` program (apt install graphviz, brew install graphviz or '
            'conda install graphviz; the `graphviz` Python package needs it too), '
            'or write the text with a path ending in .dot')


def graph(*outputs, params=None, path=None):
    """Graphviz DOT text of the graph that made `outputs` (one tensor or several).

    params: names for tensors, as a dict {name: tensor}, pairs (name, tensor), or a
        Module (its named_parameters()); named leaves are drawn as parameters.
    path: also write the graph there. A path ending in .dot or .gv gets the text;
        .svg, .png or .pdf is rendered with Graphviz's `dot` program (or the `graphviz`
        Python package); without either, rendering raises and says what to install.

        mg.graph(loss, params=model)                  # the text
        mg.graph(loss, params=model, path='g.svg')    # and a picture
    """
    names = _names(params)
    lines = ['digraph minigan {', '  rankdir=TB;', '  node [fontname="Helvetica", fontsize=10];']
    ids = {}                            # id(tensor or Function) -> DOT node name

    def node(obj, label, kind):
        if id(obj) not in ids:
            ids[id(obj)] = f'{"f" if kind == "op" else "t"}{len(ids)}'
            lines.append(f'  {ids[id(obj)]} [label="{_escape(label)}", {_STYLE[kind]}];')
        return ids[id(obj)]

    def leaf(t):
        kind = ('constant' if not t.requires_grad else 'parameter' if id(t) in names else 'input')
        name = names.get(id(t))
        label = (f'{name}\n' if name else '') + f'{_shape(t.shape)} {t.dtype}\n' + \
            {'parameter': 'parameter', 'input': 'input, requires grad', 'constant': 'constant'}[kind]
        return node(t, label, kind)

    def op(f):
        if id(f) not in ids:
            specs = getattr(f, '_output_specs', ())
            label = type(f).__name__ + ''.join(f'\n{_shape(s)} {d}' for s, d, _ in specs)
            if f.inputs is None and specs:
                label += '\n(graph freed by backward)'
            node(f, label, 'op')
            todo.append(f)
        return ids[id(f)]

    def walk():                         # every op once, with an arrow from each of its inputs
        while todo:
            f = todo.pop()
            for x in f.inputs or ():
                if x is not None:
                    src = op(x.creator) if x.creator is not None else leaf(x)
                    lines.append(f'  {src} -> {ids[id(f)]};')

    todo = []
    for y in outputs:
        if not isinstance(y, Tensor):
            raise TypeError(f'mg.graph takes Tensors, got {type(y).__name__}')
        if y.creator is None:
            leaf(y)
            continue
        name = names.get(id(y))
        out = node(y, (f'{name}\n' if name else '') + f'{_shape(y.shape)} {y.dtype}\noutput', 'output')
        lines.append(f'  {op(y.creator)} -> {out};')
        walk()
    lines.append('}')
    text = '\n'.join(lines) + '\n'
    if path is not None:
        _write(text, Path(path))
    return text


def _names(params):
    if params is None:
        return {}
    if hasattr(params, 'named_parameters'):
        params = params.named_parameters()
    items = params.items() if hasattr(params, 'items') else params
    return {id(t): name for name, t in items}


def _shape(shape):
    return str(tuple(shape)).replace(' ', '')


def _escape(label):
    return label.replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')


def _write(text, path):
    fmt = path.suffix.lstrip('.').lower()
    if fmt in ('dot', 'gv'):
        path.write_text(text)
        return
    dot = shutil.which('dot')
    if dot is not None:
        done = subprocess.run([dot, f'-T{fmt}', '-o', str(path)], input=text.encode(),
                              capture_output=True)
        if done.returncode != 0:
            raise RuntimeError(f'Graphviz could not render {path}: {done.stderr.decode().strip()}')
        return
    try:
        import graphviz                 # optional: only a wrapper around the same `dot` program
        path.write_bytes(graphviz.Source(text).pipe(format=fmt))
    except ImportError:
        raise RuntimeError(f'rendering {path} needs Graphviz: {_INSTALL}') from None
    except graphviz.ExecutableNotFound:
        raise RuntimeError(f'rendering {path} needs Graphviz: {_INSTALL}') from None

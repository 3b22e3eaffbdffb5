"""Seeing the graph: Function's repr, a Tensor's repr naming its creator, and mg.graph's DOT text."""
import re
import shutil
import subprocess

import numpy as np
import pytest

import minigan as mg
import minigan.functional as F
import minigan.nn as nn

NODE = re.compile(r'^  (\w+) \[label="((?:[^"\\]|\\.)*)", (.*)\];$')
EDGE = re.compile(r'^  (\w+) -> (\w+);$')


def parse_dot(text):
    """{node: (label, attributes)} and [(src, dst)], asserting the text is well-formed DOT."""
    assert text.startswith('digraph minigan {\n') and text.endswith('}\n')
    assert text.count('{') == text.count('}') == 1
    nodes, edges = {}, []
    for line in text.splitlines()[1:-1]:
        if line.startswith('  rankdir=') or line.startswith('  node ['):
            continue
        if m := NODE.match(line):
            assert m.group(1) not in nodes, f'node {m.group(1)} declared twice'
            nodes[m.group(1)] = (m.group(2).replace('\\n', '\n'), m.group(3))
        elif m := EDGE.match(line):
            assert m.group(1) in nodes and m.group(2) in nodes, f'edge {line} names an undeclared node'
            edges.append((m.group(1), m.group(2)))
        else:
            raise AssertionError(f'not a DOT statement: {line!r}')
    return nodes, edges


def small_model_loss():
    mg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.Tanh())
    x = mg.randn(4, 3)
    return model, x, (model(x) ** 2).mean()


def test_function_repr_names_the_op_and_its_input_and_output_shapes():
    x = mg.randn(4, 3, 8, 8)
    w = mg.randn(5, 3, 3, 3, requires_grad=True)
    y = F.conv2d(x, w, padding=1)
    assert re.fullmatch(r'<Conv2d\w* inputs: \(4,3,8,8\) float32, \(5,3,3,3\) float32, None '
                        r'-> \(4,5,8,8\) float32>', repr(y.creator))
    s = y.sum()
    assert repr(s.creator) == '<Sum inputs: (4,5,8,8) float32 -> () float32>'
    s.backward()
    assert repr(s.creator) == '<Sum (graph freed by backward)>'


def test_tensor_repr_names_its_creator_like_torch_grad_fn():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    assert y.grad_fn is y.creator
    assert repr(y) == 'tensor([3., 6.], dtype=float32, grad_fn=<Mul>)'
    assert repr(x) == 'tensor([1., 2.], dtype=float32, requires_grad=True)'
    with mg.no_grad():
        assert repr(x * 3) == 'tensor([3., 6.], dtype=float32)'


def test_graph_of_a_small_expression_is_this_text():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    assert mg.graph((x * x).sum()) == '\n'.join([
        'digraph minigan {',
        '  rankdir=TB;',
        '  node [fontname="Helvetica", fontsize=10];',
        '  t0 [label="() float32\\noutput", shape=box, style=bold];',
        '  f1 [label="Sum\\n() float32", shape=ellipse];',
        '  f1 -> t0;',
        '  f2 [label="Mul\\n(2,) float32", shape=ellipse];',
        '  f2 -> f1;',
        '  t3 [label="(2,) float32\\ninput, requires grad", shape=box, style=filled, fillcolor="#d9ead3"];',
        '  t3 -> f2;',
        '  t3 -> f2;',
        '}', ''])


def test_graph_marks_parameters_inputs_and_constants():
    model, x, loss = small_model_loss()
    z = mg.randn(4, 3, requires_grad=True)
    nodes, edges = parse_dot(mg.graph(loss, loss + (z * z).sum(), params=model))
    labels = sorted(label for label, _ in nodes.values())
    assert '0.weight\n(2,3) float32\nparameter' in labels
    assert '0.bias\n(2,) float32\nparameter' in labels
    assert '(4,3) float32\nconstant' in labels                 # the model's input x
    assert '(4,3) float32\ninput, requires grad' in labels     # z: a leaf, not a parameter
    ops = [label.split('\n')[0] for label, attrs in nodes.values() if 'ellipse' in attrs]
    for op in ('Linear', 'Tanh', 'Pow', 'Sum', 'Div', 'Add', 'Mul'):
        assert op in ops
    outputs = [n for n, (label, _) in nodes.items() if label.endswith('output')]
    assert len(outputs) == 2 and all(any(dst == n for _, dst in edges) for n in outputs)
    # every op is reached from some output: each op node feeds another node
    assert all(any(src == n for src, _ in edges) for n in nodes if n.startswith('f'))


def test_graph_text_is_the_same_on_every_run_and_shared_ops_appear_once():
    _, _, loss = small_model_loss()
    first = mg.graph(loss)
    _, _, loss = small_model_loss()
    assert mg.graph(loss) == first
    x = mg.randn(3, requires_grad=True)
    h = x.exp()                                  # used twice: one node, two arrows out
    nodes, edges = parse_dot(mg.graph(h * h + h))
    exp_nodes = [n for n, (label, _) in nodes.items() if label.startswith('Exp\n')]
    assert len(exp_nodes) == 1
    assert sum(src == exp_nodes[0] for src, _ in edges) == 3


def test_graph_of_a_leaf_and_of_a_freed_graph():
    x = mg.randn(2, requires_grad=True)
    nodes, edges = parse_dot(mg.graph(x))
    assert list(nodes.values())[0][0] == '(2,) float32\ninput, requires grad' and edges == []
    y = (x * 2).sum()
    y.backward()
    nodes, _ = parse_dot(mg.graph(y))
    assert any(label.startswith('Sum\n') and 'freed' in label for label, _ in nodes.values())
    with pytest.raises(TypeError, match='takes Tensors'):
        mg.graph(np.zeros(2))


def test_graph_writes_dot_and_renders_svg_when_graphviz_is_here(tmp_path):
    _, _, loss = small_model_loss()
    text = mg.graph(loss, path=tmp_path / 'g.dot')
    assert (tmp_path / 'g.dot').read_text() == text
    if shutil.which('dot') is None:
        with pytest.raises(RuntimeError, match='needs Graphviz: install'):
            mg.graph(loss, path=tmp_path / 'g.svg')
        pytest.skip('Graphviz `dot` is not installed: rendering checked only for its error')
    subprocess.run(['dot', '-Tsvg', '-o', str(tmp_path / 'check.svg'), str(tmp_path / 'g.dot')], check=True)
    mg.graph(loss, path=tmp_path / 'g.svg')
    assert (tmp_path / 'g.svg').read_text().lstrip().startswith(('<?xml', '<svg'))

"""The CUDA kernels read from nvcc's own output, without a GPU: the main loops' PTX and the resources.

How the main loop of a conv kernel is found in its PTX. nvcc emits each loop as a label and a branch
back to it (`$L__BB3_12:` ... `@%p7 bra $L__BB3_12;`): a loop is the span from a label to the last
branch that jumps back to it. The k-loop of gemm_tile is the only loop with a barrier (`bar.sync`)
inside; every loop within it (the staging, the multiply) is unrolled, so its body is one k-step and
the instructions counted there are counted per step. Each conv entry has three, one per tile shape
(the `tile` switch), told apart by their multiply count: RM x RN x TILE_K fma per thread on the float
path, MT x NT x 2 mma.sync on the TF32 path.

Checked here: at most 4 integer div/rem per k-step (there are none: the index maps are stepped),
the multiplies where they belong, the cp.async copies of the double buffer on sm_90 and plain loads
on sm_75; batch_norm.cu's loops with no integer division and its per-element loops with no float
division; and from `nvcc -cubin --resource-usage -arch=sm_90`: no spills, shared memory within the
48 KB static limit. Skipped where nvcc is not installed.
"""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INT_DIV = re.compile(r'\b(?:div|rem)\.[su](?:16|32|64)\b')
FLOAT_DIV = re.compile(r'\bdiv\.(?:rn|rz|rm|rp|full|approx)\b|\brcp\.')
MULTIPLIES = {'f32': (256, 128, 64), 'f64': (256, 128, 64), 'tf32': (8, 4, 2)}   # wide, half, narrow tiles
COPIES = (8, 6, 9)                                                               # A + B elements per thread


def nvcc_path():
    for path in (shutil.which('nvcc'), '/usr/local/cuda/bin/nvcc'):
        if path and os.path.isfile(path):
            return path
    return None


pytestmark = pytest.mark.skipif(nvcc_path() is None, reason='nvcc is not installed')


def nvcc(source, arch, *flags, out):
    r = subprocess.run([nvcc_path(), f'-arch={arch}', '-std=c++17', *flags, str(REPO / 'kernels' / source),
                        '-o', str(out)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    return r


def entries(ptx):
    """{entry name: its PTX lines}."""
    parts = re.split(r'\n(?=\.visible \.entry )', ptx)[1:]
    return {re.match(r'\.visible \.entry (\w+)', p).group(1): p.split('\n') for p in parts}


def loops(lines):
    """(first, last) line of each loop: a label and the last branch back to it."""
    labels = {m.group(1): n for n, line in enumerate(lines) if (m := re.match(r'\s*(\$L__\w+):', line))}
    last = {}
    for n, line in enumerate(lines):
        m = re.search(r'\bbra(?:\.uni)?\s+(\$L__\w+);', line)
        if m and labels.get(m.group(1), n) < n:
            last[m.group(1)] = n
    return sorted((labels[label], end) for label, end in last.items())


def count(lines, pattern):
    return sum(1 for line in lines if (pattern.search(line) if hasattr(pattern, 'search') else pattern in line))


@pytest.fixture(scope='module')
def conv_ptx(tmp_path_factory):
    out = tmp_path_factory.mktemp('ptx') / 'conv2d.ptx'
    nvcc('conv2d.cu', 'sm_90', '--ptx', out=out)
    return entries(out.read_text())


@pytest.mark.parametrize('suffix', ['f32', 'f64', 'tf32'])
@pytest.mark.parametrize('product', ['forward', 'backward_data', 'backward_weight'])
def test_conv_k_loops_divide_at_most_4_times_per_step(conv_ptx, product, suffix):
    lines = conv_ptx[f'conv2d_{product}_{suffix}']
    k_loops = [(a, b) for a, b in loops(lines) if count(lines[a:b + 1], 'bar.sync')]
    assert len(k_loops) == 3, f'expected one k-loop per tile shape, found {len(k_loops)}'
    multiply = re.compile(r'\bmma\.sync\b' if suffix == 'tf32' else rf'\bfma\.rn\.{suffix}\b')
    found = []
    for a, b in k_loops:
        body = lines[a:b + 1]
        inner = [(c, d) for c, d in loops(lines) if a <= c and d <= b and (c, d) != (a, b)]
        assert not inner, 'a loop inside the k-loop: its body would not be one k-step'
        assert count(body, INT_DIV) <= 4, f'{count(body, INT_DIV)} integer div/rem in one k-step'
        found.append((count(body, multiply), count(body, 'cp.async.ca.shared.global')))
    assert sorted(found) == sorted(zip(MULTIPLIES[suffix], COPIES))
    assert sum(count(lines[a:b + 1], INT_DIV) for a, b in k_loops) == 0


def test_conv_sources_compile_without_cp_async_before_sm_80(tmp_path):
    nvcc('conv2d.cu', 'sm_75', '--ptx', out=tmp_path / 'conv2d.ptx')
    ptx = (tmp_path / 'conv2d.ptx').read_text()
    assert 'cp.async' not in ptx and 'mma.sync' not in ptx
    assert len(entries(ptx)) == 11


def test_batch_norm_loops_do_not_divide_per_element(tmp_path):
    nvcc('batch_norm.cu', 'sm_90', '--ptx', out=tmp_path / 'batch_norm.ptx')
    kernels = entries((tmp_path / 'batch_norm.ptx').read_text())
    assert len(kernels) == 8
    for name, lines in kernels.items():
        spans = loops(lines)
        assert spans, name
        for a, b in spans:
            body = lines[a:b + 1]
            assert count(body, INT_DIV) == 0, f'{name}: integer division in a loop'
            if count(body, 'st.global'):   # a per-element loop (the partials' loops store nothing)
                assert count(body, FLOAT_DIV) == 0, f'{name}: float division in a per-element loop'


def resource_usage(text):
    """{entry: (registers, spill store bytes, spill load bytes, shared bytes)} from ptxas's report."""
    usage, name = {}, None
    for line in text.splitlines():
        if m := re.search(r"Function properties for (\w+)", line):
            name = m.group(1)
        elif m := re.search(r'(\d+) bytes spill stores, (\d+) bytes spill loads', line):
            spills = int(m.group(1)), int(m.group(2))
        elif (m := re.search(r'Used (\d+) registers', line)) and name:
            smem = re.search(r'(\d+) bytes smem', line)
            usage[name] = (int(m.group(1)),) + spills + (int(smem.group(1)) if smem else 0,)
            name = None
    return usage


@pytest.mark.parametrize('source', ['conv2d.cu', 'batch_norm.cu', 'optimizers.cu'])
def test_kernels_fit_sm_90_without_spills(source, tmp_path):
    r = nvcc(source, 'sm_90', '-cubin', '--resource-usage', out=tmp_path / 'k.cubin')
    usage = resource_usage(r.stdout + r.stderr)
    assert usage, r.stdout + r.stderr
    for name, (registers, spill_stores, spill_loads, smem) in usage.items():
        assert spill_stores == spill_loads == 0, f'{name} spills'
        assert registers <= 255 and smem <= 48 * 1024, (name, registers, smem)

"""The GPU scripts, checked where there is no GPU: bench/gpu_smoke.sh, bench/gpu_suite.sh (and
bench/gpu_lib.sh, which both source), bench/gpu_step_check.py, bench/gpu_compare_torch.py's JSON.

The shell scripts parse (bash -n); gpu_smoke.sh, run without a GPU, ends within a minute with exit
status 2, every part recorded as skipped for want of a GPU in $OUT/smoke.json, and leaves no more
files than the device tool brings back (8, named in letters, digits, '.', '_', '-', 2 folders deep).
gpu_step_check's comparison passes two CPU backends' steps and fails a planted error; the benchmark's
JSON is written whole and merged across parts.
"""
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minigan as mg

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / 'bench'
SCRIPTS = ['gpu_smoke.sh', 'gpu_suite.sh', 'gpu_lib.sh']


def _module(name):
    """bench/<name>.py imported as a module (bench/ is not a package)."""
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / f'{name}.py')
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


@pytest.mark.skipif(shutil.which('bash') is None, reason='no bash here')
@pytest.mark.parametrize('script', SCRIPTS)
def test_the_shell_scripts_parse(script):
    r = subprocess.run(['bash', '-n', str(BENCH / script)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(shutil.which('bash') is None or shutil.which('timeout') is None, reason='needs bash and timeout')
@pytest.mark.skipif(mg.cuda_available(), reason='a GPU is here: the smoke test would run for real')
def test_the_smoke_test_says_no_gpu_per_part_and_ends_quickly(tmp_path):
    out = tmp_path / 'out'
    start = time.monotonic()
    r = subprocess.run(['bash', str(BENCH / 'gpu_smoke.sh')], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path, env=dict(os.environ, OUT=str(out), PYTHON=sys.executable))
    seconds = time.monotonic() - start
    assert r.returncode == 2, r.stdout[-3000:] + r.stderr[-3000:]
    assert seconds < 120
    summary = json.loads((out / 'smoke.json').read_text())
    assert summary['gpu'] is False and 'CuPy' in summary['no_gpu']
    assert list(summary['parts']) == ['tests', 'steps', 'bench']
    for name, part in summary['parts'].items():
        assert part['status'] == 'skipped' and 'no GPU' in part['note'], (name, part)
    collected = dict(re.findall(r'^(tests/test_cuda_\w+\.py): (\d+)$', (out / 'tests.log').read_text(), re.M))
    assert sorted(collected) == ['tests/test_cuda_capture.py', 'tests/test_cuda_graph.py',   # they import and
                                 'tests/test_cuda_kernels.py', 'tests/test_cuda_loading.py']  # collect
    assert all(int(n) > 0 for n in collected.values())
    assert json.loads((out / 'steps.json').read_text())['error'].startswith('no GPU')
    files = [p for p in out.rglob('*') if p.is_file()]
    assert sorted(p.name for p in files) == ['bench.log', 'env.txt', 'smoke.json', 'steps.json', 'steps.log',
                                             'tests.log']
    assert len(files) <= 8 and all(re.fullmatch(r'[A-Za-z0-9._-]+', p.name) for p in files)
    assert 'numpy' in (out / 'env.txt').read_text()


def test_the_step_check_passes_two_cpu_backends(tmp_path):
    """The comparison itself, end to end: the numpy backend against another CPU backend (another
    summation order, as on the GPU) for the DCGAN and WGAN-GP steps."""
    other = [b for b in ('cpp', 'numba') if b in mg.available_backends()]
    if not other:
        pytest.skip('only the numpy backend runs here')
    out = tmp_path / 'steps.json'
    r = subprocess.run([sys.executable, str(BENCH / 'gpu_step_check.py'), '--second-device', 'cpu', '--backend',
                        other[0], '--batch', '4', '-m', 'dcgan', '-m', 'wgan-gp', '--json', str(out)],
                       capture_output=True, text=True, timeout=600, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(out.read_text())
    assert result['ok'] and set(result['models']) == {'dcgan', 'wgan-gp'}
    assert all(m['ok'] and m['worst_off'] <= 1 for m in result['models'].values())


def _reference(rng):
    """A stand-in step's results: metrics and state as gpu_step_check.one_step returns them."""
    w0, b0 = rng.standard_normal((8, 4)), np.zeros(1)
    grads = {'w': rng.standard_normal((8, 4)), 'b': np.array([1e-9])}      # b's gradient: rounding noise
    state = {'before G.w': w0, 'before G.b': b0, 'grad G.w': grads['w'], 'grad G.b': grads['b'],
             'param G.w': w0 - 1e-3 * np.sign(grads['w']), 'param G.b': b0 - 1e-3,
             'buffer G.running_mean': rng.standard_normal(4)}
    return {'loss_d': 0.7, 'loss_g': 1.3}, state


def test_the_step_check_tolerates_rounding_and_catches_real_errors():
    check = _module('gpu_step_check')
    rng = np.random.default_rng(0)
    metrics, ref = _reference(rng)
    same = {k: v.copy() for k, v in ref.items()}
    same['grad G.w'] = ref['grad G.w'] * (1 + 1e-6)          # float32-sized differences
    same['param G.b'] = ref['before G.b'] + 1e-3               # a noise gradient stepped the other way
    same['grad G.b'] = np.array([-1e-9])
    off = check.compare(metrics, ref, dict(metrics, loss_d=0.7 * (1 + 1e-5)), same)
    assert max(off.values()) <= 1, off
    planted = {
        'grad G.w': lambda s: s['grad G.w'] * 1.05,             # a gradient 5% off
        'param G.w': lambda s: s['before G.w'] - 2e-3 * np.sign(s['grad G.w']),   # twice the step
        'buffer G.running_mean': lambda s: s['buffer G.running_mean'] + 1e-2,
    }
    for key, wrong in planted.items():
        bad = dict(same, **{key: wrong(ref)})
        off = check.compare(metrics, ref, metrics, bad)
        assert max(off, key=off.get).endswith(key.split(' ', 1)[1]) and max(off.values()) > 1, key
    bad = dict(same, **{'grad G.w': np.full((8, 4), np.nan)})
    assert check.compare(metrics, ref, metrics, bad)['grad G.w'] == float('inf')
    assert check.compare(metrics, ref, dict(metrics, loss_g=1.4), same)['metric loss_g'] > 1
    missing = {k: v for k, v in same.items() if k != 'grad G.w'}
    assert check.compare(metrics, ref, metrics, missing)['grad G.w'] == float('inf')


def test_the_benchmark_json_is_written_whole_and_merged_across_parts(tmp_path):
    bench = _module('gpu_compare_torch')
    path = str(tmp_path / 'bench.json')
    assert bench.load_json(path) == {}
    bench.save_json(path, {'machine': {'gpu': 'x'}, 'workloads': [{'workload': 'dcgan32_b64'}]})
    results = bench.load_json(path)
    results['layers'] = [{'layer': 'dcgan32/D1'}]
    bench.save_json(path, results)
    assert json.loads(Path(path).read_text()) == {'machine': {'gpu': 'x'}, 'workloads': [{'workload': 'dcgan32_b64'}],
                                                  'layers': [{'layer': 'dcgan32/D1'}]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bench.json']     # no partial file left behind

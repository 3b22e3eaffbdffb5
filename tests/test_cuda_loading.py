"""Loading minigan's CUDA kernels (minigan/cuda_loading.py, cuda_kernels.py): it cannot fail silently.

Anywhere, with stand-ins for the loaders (monkeypatched _extension, _probe and CuPy's stream): an
extension that does not run here gives way to NVRTC with a warning naming why; when no way loads,
load_error names every reason; each way is tried once per process, but never while a CUDA graph is
being captured, and a failure seen while a capture began is not cached (the next call outside the
capture tries again);
MINIGAN_CUDA_DEBUG=1 fills exactly the outputs of each kernel (WRITES, checked against the kernels'
own signatures) with NaN before the launch, and nothing without it.
On a GPU (marked gpu): the `cuda` backend loaded, or the test prints why not.
"""
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from minigan import backend, cuda_kernels, cuda_loading, dispatch

REPO = Path(__file__).resolve().parents[1]
SIGNATURE = re.compile(r'extern "C" __global__ void(?: __launch_bounds__\(\w+\))?\s+(\w+)\(([^)]*)\)')
IN_PLACE = {'adam_step', 'rmsprop_step', 'sgd_momentum_step'}      # they update their arrays in place


def _signatures():
    """{entry point: [(is a pointer, is const), ...]} read from kernels/*.cu."""
    found = {}
    for path in sorted((REPO / 'kernels').glob('*.cu')):
        for name, params in SIGNATURE.findall(path.read_text()):
            found[name] = [('*' in p, p.split()[0] == 'const') for p in params.split(',')]
    return found


class _Stream:
    """CuPy's current stream, as far as backend.is_capturing asks it."""

    def __init__(self, capturing=False, error=None):
        self.capturing, self.error = capturing, error

    def is_capturing(self):
        if self.error is not None:
            raise self.error
        return self.capturing


class _CUDARuntimeError(RuntimeError):
    def __init__(self, status):
        super().__init__(f'CUDA error {status}')
        self.status = status


def _standin_cupy(stream):
    runtime = SimpleNamespace(CUDARuntimeError=_CUDARuntimeError, is_hip=False)
    return SimpleNamespace(cuda=SimpleNamespace(get_current_stream=lambda: stream, runtime=runtime))


@pytest.fixture
def loader(monkeypatch):
    """A fresh loading state with the extension present: .results[way] is what probing that way
    reports (None: it loads and runs), .probed the ways probed, in order."""
    probed = []
    results = {}

    def probe(way):
        probed.append(way)
        return results.get(way)

    monkeypatch.setattr(cuda_loading, '_loaded', None)
    monkeypatch.setattr(cuda_kernels, '_extension', lambda: SimpleNamespace())
    monkeypatch.setattr(cuda_kernels, '_probe', probe)
    monkeypatch.setattr(backend, '_cupy', _standin_cupy(_Stream(capturing=False)))
    return SimpleNamespace(probed=probed, results=results)


def test_an_extension_that_does_not_run_gives_way_to_nvrtc_with_a_warning(loader):
    loader.results['extension'] = 'CUDARuntimeError: cudaErrorNoKernelImageForDevice: no kernel image for sm_90'
    with pytest.warns(RuntimeWarning, match=r'minigan\._cuda\) do not run here \(CUDARuntimeError: '
                                            r'cudaErrorNoKernelImageForDevice.*sm_90\); compiling them with NVRTC'):
        assert cuda_kernels.load_error() is None
    assert loader.probed == ['extension', 'nvrtc']
    assert cuda_kernels._way(None) == 'nvrtc'
    assert cuda_kernels.available()
    assert loader.probed == ['extension', 'nvrtc']          # tried once per process


def test_an_extension_that_runs_is_the_default_way(loader):
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert cuda_kernels.load_error() is None
    assert loader.probed == ['extension']
    assert cuda_kernels._way(None) == 'extension'
    assert cuda_kernels._way('nvrtc') == 'nvrtc'


def test_when_nothing_loads_the_error_names_every_reason_once(loader):
    loader.results.update(extension='ImportError: libcudart.so.13: not found',
                          nvrtc='CompileException: conv2d.cu(12): error: identifier "x" is undefined')
    error = cuda_kernels.load_error()
    assert error == ('extension: ImportError: libcudart.so.13: not found; '
                     'nvrtc: CompileException: conv2d.cu(12): error: identifier "x" is undefined')
    assert not cuda_kernels.available()
    assert cuda_kernels.load_error() == error
    assert loader.probed == ['extension', 'nvrtc']


def test_without_the_extension_nvrtc_alone_is_tried(loader, monkeypatch):
    monkeypatch.setattr(cuda_kernels, '_extension', lambda: None)
    loader.results['nvrtc'] = 'RuntimeError: device "cuda": CuPy is installed but no GPU was found'
    assert cuda_kernels.load_error() == 'nvrtc: RuntimeError: device "cuda": CuPy is installed but no GPU was found'
    assert loader.probed == ['nvrtc']


def test_nothing_is_tried_or_cached_while_a_graph_is_captured(loader, monkeypatch):
    stream = _Stream(capturing=True)
    monkeypatch.setattr(backend, '_cupy', _standin_cupy(stream))
    for _ in range(2):
        assert 'inside a CUDA graph capture' in cuda_kernels.load_error()
        assert not cuda_kernels.available()
    assert loader.probed == [] and cuda_loading._loaded is None
    stream.capturing = False                                 # the capture ended: the next call loads
    assert cuda_kernels.load_error() is None
    assert loader.probed == ['extension'] and cuda_loading._loaded == ('extension', None)
    stream.capturing = True                                  # once loaded, a capture changes nothing
    assert cuda_kernels.load_error() is None and loader.probed == ['extension']


def test_a_failure_while_a_capture_began_is_not_cached(loader, monkeypatch):
    """The probe ran while a capture began elsewhere (the legacy stream then answers 'capturing'):
    its failure may be the capture's doing, so the next call tries again."""
    stream = _Stream(capturing=False)
    monkeypatch.setattr(backend, '_cupy', _standin_cupy(stream))

    def probe(way):
        loader.probed.append(way)
        stream.capturing = True
        return 'CUDARuntimeError: cudaErrorStreamCaptureImplicit'

    monkeypatch.setattr(cuda_kernels, '_probe', probe)
    assert 'cudaErrorStreamCaptureImplicit' in cuda_kernels.load_error()
    assert cuda_loading._loaded is None
    stream.capturing = False
    monkeypatch.setattr(cuda_kernels, '_probe', lambda way: loader.probed.append(way))
    assert cuda_kernels.load_error() is None
    assert loader.probed == ['extension', 'nvrtc', 'extension'] and cuda_loading._loaded == ('extension', None)


def test_a_stream_that_cannot_be_asked_is_not_cached_either(loader, monkeypatch):
    stream = _Stream(error=_CUDARuntimeError(700))           # cudaErrorIllegalAddress: not a capture
    monkeypatch.setattr(backend, '_cupy', _standin_cupy(stream))
    assert 'cannot be queried' in cuda_kernels.load_error() and '700' in cuda_kernels.load_error()
    assert loader.probed == [] and cuda_loading._loaded is None
    stream.error = None
    assert cuda_kernels.load_error() is None and loader.probed == ['extension']


def test_writes_are_the_outputs_of_each_kernel_signature():
    """WRITES (what debug mode fills with NaN) is, for every entry point, the non-const pointer
    arguments; the optimisers read and write theirs, so nothing of theirs may be filled."""
    signatures = _signatures()
    assert set(signatures) == set(cuda_kernels.entry_points())
    for name, params in signatures.items():
        kernel = name.rsplit('_', 1)[0]
        written = tuple(i for i, (pointer, const) in enumerate(params) if pointer and not const)
        if kernel in IN_PLACE:
            assert cuda_kernels.WRITES[kernel] == () and written, name
        else:
            assert cuda_kernels.WRITES[kernel] == written, name


def _recorded_launch(monkeypatch, name):
    """Launch entry point `name` through _launch with host arrays of 7s standing in for device arrays;
    returns (the arrays as the kernel saw them, the positions of the arrays)."""
    params = _signatures()[name]
    args = tuple(np.full(3, 7.0) if pointer else np.int32(1) for pointer, _ in params)
    seen = []
    monkeypatch.setattr(cuda_kernels, 'cupy_or_raise', lambda: SimpleNamespace(
        cuda=SimpleNamespace(Device=lambda: SimpleNamespace(id=0))))
    monkeypatch.setattr(cuda_kernels, '_raw_kernel',
                        lambda kernel, device: lambda grid, block, a: seen.extend(x.copy() for x in a))
    cuda_kernels._launch(name, (1, 1, 1), (32, 1, 1), args, 'nvrtc')
    return seen, [i for i, (pointer, _) in enumerate(params) if pointer]


@pytest.mark.parametrize('name', sorted(cuda_kernels.entry_points()))
def test_debug_mode_fills_exactly_the_outputs_with_nan(name, monkeypatch):
    monkeypatch.setenv('MINIGAN_CUDA_DEBUG', '1')
    seen, arrays = _recorded_launch(monkeypatch, name)
    outputs = cuda_kernels.WRITES[name.rsplit('_', 1)[0]]
    for i in arrays:
        if i in outputs:
            assert np.isnan(seen[i]).all(), (name, i)
        else:
            assert (seen[i] == 7).all(), (name, i)


def test_without_debug_mode_outputs_are_left_as_they_are(monkeypatch):
    monkeypatch.delenv('MINIGAN_CUDA_DEBUG', raising=False)
    seen, arrays = _recorded_launch(monkeypatch, 'batch_norm_act_backward_f32')
    assert all((seen[i] == 7).all() for i in arrays)


@pytest.mark.gpu
def test_the_cuda_backend_loads_on_this_gpu():
    """The op tests pass on CuPy's own code when minigan's kernels do not load: this one does not."""
    error = cuda_kernels.load_error()
    print(f"minigan's CUDA kernels: {'loaded via ' + cuda_kernels._way(None) if error is None else error}")
    assert error is None, f"minigan's CUDA kernels do not load here: {error}"
    assert 'cuda' in dispatch.available_gpu_backends()
    assert cuda_kernels.debug_mode(), 'GPU tests run with MINIGAN_CUDA_DEBUG=1 (tests/conftest.py)'

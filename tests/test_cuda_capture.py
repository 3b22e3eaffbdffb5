"""The capture rules of minigan/cuda_graph.py, enforced: inside a step being captured as a CUDA graph,
a host read of a device tensor (.item(), .numpy(), .tolist(), float/int/bool(t), np.asarray(t)), a
host-to-device copy (mg.tensor(..., device='cuda'), t.to('cuda'), backend.to_device) and a random
draw made on the host for the GPU (mg.randn/rand/randint(..., device='cuda')) raise GraphCaptureError
naming the call and what to do instead.

Anywhere, with a stand-in for CuPy whose current stream reports a capture (backend._cupy
monkeypatched) and host arrays of a class that backend takes for CuPy's: every such call is refused
while capturing and works when not; 0-d values (written by a fill kernel) pass; CPU work never asks
the stream; the capture-status query's own errors are read as CUDA documents them; GraphedStep's
capture passes the guard's error through unchanged.
On a GPU (marked gpu): the same calls inside a real GraphedStep capture.
"""
import re
from types import SimpleNamespace

import numpy as np
import pytest

import minigan as mg
from minigan import backend, cuda_graph
from minigan.backend import GraphCaptureError
from minigan.tensor import Tensor


class _Stream:
    """CuPy's current stream as backend.is_capturing asks it; begin/end_capture for cuda_graph._capture."""

    def __init__(self, capturing=False, error=None):
        self.capturing, self.error, self.calls = capturing, error, []

    def is_capturing(self):
        if self.error is not None:
            raise self.error
        return self.capturing

    def begin_capture(self):
        self.calls.append('begin')
        self.capturing = True

    def end_capture(self):
        self.calls.append('end')
        self.capturing = False
        return 'graph'


class _CUDARuntimeError(RuntimeError):
    def __init__(self, status):
        super().__init__(f'CUDA error {status}')
        self.status = status


class DeviceArray(np.ndarray):
    """A host array that backend takes for a CuPy array (it reads the device from the type's module)."""

    def get(self):
        return np.asarray(self).copy()


DeviceArray.__module__ = 'cupy._standin'


def _device(values):
    return np.asarray(values, dtype=np.float32).view(DeviceArray)


@pytest.fixture
def stream(monkeypatch):
    """The stand-in CuPy's current stream (not capturing until a test says so)."""
    s = _Stream()
    runtime = SimpleNamespace(CUDARuntimeError=_CUDARuntimeError, is_hip=False)
    monkeypatch.setattr(backend, '_cupy', SimpleNamespace(
        cuda=SimpleNamespace(get_current_stream=lambda: s, runtime=runtime),
        asarray=lambda a: _device(a)))
    return s


HOST_READS = {
    't.item()': lambda t: t.item(),
    't.numpy()': lambda t: t.numpy(),
    't.tolist()': lambda t: t.tolist(),
    'float(t)': lambda t: float(t),
    'int(t)': lambda t: int(t),
    'bool(t)': lambda t: bool(t),
    'device-to-host copy': lambda t: np.asarray(t),
}


@pytest.mark.parametrize('call', list(HOST_READS))
def test_host_reads_of_a_device_tensor_are_refused_while_capturing(call, stream):
    t = Tensor(_device([1.0]))
    stream.capturing = True
    with pytest.raises(GraphCaptureError, match=re.escape(call) + r'.*inside a step being captured.*return the '
                                                r'tensor from the step and read it after the replay'):
        HOST_READS[call](t)
    stream.capturing = False
    assert np.asarray(HOST_READS[call](t)).reshape(-1).tolist() == [1.0]


@pytest.mark.parametrize('copy', [
    lambda: mg.tensor(np.ones(3, np.float32), device='cuda'),
    lambda: backend.to_device(np.ones((2, 2)), 'cuda'),
    lambda: backend.to_device([1.0, 2.0], 'cuda'),
], ids=['mg.tensor', 'to_device', 'to_device-list'])
def test_host_to_device_copies_are_refused_while_capturing(copy, stream):
    stream.capturing = True
    with pytest.raises(GraphCaptureError, match=r'a host-to-device copy \(mg\.tensor\(\.\.\., device="cuda"\).*'
                                                r'stale data; make the array before the capture and pass it in'):
        copy()
    stream.capturing = False
    result = copy()
    assert backend.is_cupy_array(result.array if isinstance(result, Tensor) else result)


def test_zero_d_values_pass_while_capturing(stream):
    """CuPy writes a 0-d array with a fill kernel, whose value a graph records with the launch."""
    stream.capturing = True
    assert backend.to_device(np.float32(2.5), 'cuda').tolist() == 2.5
    assert backend.to_device(3.0, 'cuda').tolist() == 3.0


@pytest.mark.parametrize('name, draw', [
    ('randn', lambda: mg.randn(2, 3, device='cuda')),
    ('rand', lambda: mg.rand(4, device='cuda')),
    ('randint', lambda: mg.randint(0, 5, 3, device='cuda')),
])
def test_random_draws_for_the_gpu_are_refused_and_leave_the_generator_alone(name, draw, stream):
    mg.manual_seed(3)
    stream.capturing = True
    with pytest.raises(GraphCaptureError, match=rf'mg\.{name}\(\.\.\., device="cuda"\), a random draw on the host'
                                                r'.*pass it in as an input of the step'):
        draw()
    after_refusal = mg.rand(5).numpy()
    mg.manual_seed(3)
    np.testing.assert_array_equal(after_refusal, mg.rand(5).numpy())
    stream.capturing = False
    assert backend.is_cupy_array(draw().array)


def test_cpu_work_never_asks_the_stream(stream):
    """NumPy tensors read, draw and copy without a stream query (the query would raise here)."""
    stream.error = AssertionError('the CPU path asked the CUDA stream')
    t = mg.tensor([[1.5, 2.0]])
    assert t.tolist() == [[1.5, 2.0]] and float(t[0, 0]) == 1.5 and bool(t[0, 1]) and t.sum().item() == 3.5
    assert t.numpy().shape == (1, 2) and np.asarray(t).shape == (1, 2)
    assert mg.randn(2).shape == (2,) and mg.tensor(np.ones(2), device='cpu').device == 'cpu'
    assert backend.to_device(np.ones(2), 'cpu').shape == (2,)


def test_without_cupy_nothing_is_capturing(monkeypatch):
    monkeypatch.setattr(backend, '_cupy', None)
    assert backend.is_capturing() is False
    backend.refuse_during_capture('anything', 'nothing to do')


@pytest.mark.parametrize('error, capturing', [
    (_CUDARuntimeError(906), True),     # cudaErrorStreamCaptureImplicit: the legacy stream while another captures
    (RuntimeError('the stream was capturing, but an error has invalidated the capture sequence'), True),
    (_CUDARuntimeError(700), None),     # cudaErrorIllegalAddress: not about capturing, so it goes through
])
def test_the_capture_query_reads_cuda_errors(error, capturing, stream):
    stream.error = error
    if capturing is None:
        with pytest.raises(_CUDARuntimeError):
            backend.is_capturing()
    else:
        assert backend.is_capturing() is capturing


def test_graph_capture_passes_the_guard_error_through_and_ends_the_capture(stream):
    t = Tensor(_device([2.0]))
    with pytest.raises(GraphCaptureError, match=r'^float\(t\) inside a step being captured') as raised:
        cuda_graph._capture(stream, lambda x: x * float(x), [t])
    assert raised.value.__cause__ is None
    assert stream.calls == ['begin', 'end'] and not stream.capturing


def test_graph_capture_wraps_other_errors_with_the_rules(stream):
    def step(x):
        raise ValueError('no kernel for this')

    with pytest.raises(GraphCaptureError, match=r'cannot be recorded as a CUDA graph.*ValueError: no kernel'):
        cuda_graph._capture(stream, step, [Tensor(_device([2.0]))])
    assert stream.calls == ['begin', 'end']


def test_the_error_is_the_one_cuda_graph_exports():
    assert cuda_graph.GraphCaptureError is GraphCaptureError


# ---- on a GPU ------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize('step, call', [
    (lambda t: t * float(t.sum()), r'float\(t\)'),
    (lambda t: t * t.sum().item(), r't\.item\(\)'),
    (lambda t: Tensor(t.array * t.numpy().sum()), r't\.numpy\(\)'),
    (lambda t: t + mg.tensor(np.ones(4, np.float32), device='cuda'), 'a host-to-device copy'),
    (lambda t: t + mg.randn(4, device='cuda'), r'mg\.randn\(\.\.\., device="cuda"\)'),
    (lambda t: t + Tensor(np.ones(4, np.float32)).to('cuda'), 'a host-to-device copy'),
], ids=['float', 'item', 'numpy', 'mg.tensor', 'randn', 'to'])
def test_a_real_capture_refuses_each_call_by_name(step, call):
    x = mg.tensor(np.ones(4, np.float32), device='cuda')
    with pytest.raises(GraphCaptureError, match=rf'{call}.*inside a step being captured as a CUDA graph'):
        cuda_graph.GraphedStep(step, [x])
    assert not backend.is_capturing()


@pytest.mark.gpu
def test_a_step_with_constants_and_device_work_only_captures_and_replays():
    x = mg.tensor(np.arange(4, dtype=np.float32), device='cuda')
    graphed = cuda_graph.GraphedStep(lambda t: (t * 2.0 + 1.0).sum(), [x])
    out = graphed(mg.tensor(np.full(4, 3.0, np.float32), device='cuda'))
    assert out.item() == pytest.approx(28.0)

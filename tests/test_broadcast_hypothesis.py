"""Property test of broadcasting arithmetic: for random broadcastable shape pairs
(size-1 dims, different ranks, 0-d), a + b, a - b, a * b and a / b and their
gradients, summed back to each input's shape, equal PyTorch's in float64."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import minigan as mg
from conftest import to_numpy

torch = pytest.importorskip("torch")

OPS = {'add': lambda a, b: a + b, 'sub': lambda a, b: a - b,
       'mul': lambda a, b: a * b, 'div': lambda a, b: a / b}

SHAPES = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=1, max_side=4)


@pytest.mark.parametrize('op', list(OPS))
@settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shapes=SHAPES, seed=st.integers(0, 2 ** 16))
def test_broadcast_arithmetic_matches_torch(op, device, shapes, seed):
    (sa, sb), out_shape = shapes.input_shapes, shapes.result_shape
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(sa)
    b = rng.standard_normal(sb)
    if op == 'div':                                  # keep the denominator away from zero
        b = np.where(b >= 0, 1, -1) * (0.5 + np.abs(b))
    u = rng.standard_normal(out_shape)
    fn = OPS[op]

    x, y = mg.tensor(a, requires_grad=True, device=device), mg.tensor(b, requires_grad=True, device=device)
    xt, yt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    out, outt = fn(x, y), fn(xt, yt)
    assert out.shape == tuple(outt.shape) == tuple(out_shape)
    np.testing.assert_allclose(to_numpy(out), to_numpy(outt), rtol=1e-12, atol=1e-12)

    gx, gy = mg.grad([out], [x, y], [mg.tensor(u, device=device)])
    gxt, gyt = torch.autograd.grad([outt], [xt, yt], [torch.tensor(u)])
    assert gx.shape == tuple(sa) and gy.shape == tuple(sb)
    np.testing.assert_allclose(to_numpy(gx), to_numpy(gxt), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(to_numpy(gy), to_numpy(gyt), rtol=1e-10, atol=1e-12)

    # with scalars on either side the result keeps the tensor's shape and dtype
    s = float(rng.uniform(0.5, 2.0))
    np.testing.assert_allclose(to_numpy(fn(x, s)), to_numpy(fn(xt, s)), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_numpy(fn(s, y)), to_numpy(fn(s, yt)), rtol=1e-12, atol=1e-12)

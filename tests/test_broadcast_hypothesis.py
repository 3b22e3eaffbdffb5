"""Property test of broadcasting arithmetic: for random broadcastable shape pairs
(size-1 dims, different ranks, 0-d), a + b, a - b, a * b and a / b and their
gradients, summed back to each input's shape, equal NumPy's broadcasting and the derivatives
worked out by hand, in float64."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import minigan as mg
from conftest import to_numpy

OPS = {'add': lambda a, b: a + b, 'sub': lambda a, b: a - b,
       'mul': lambda a, b: a * b, 'div': lambda a, b: a / b}
# op -> (d/da, d/db) times the cotangent u, before summing back to each input's shape
GRADS = {'add': lambda a, b, u: (u, u), 'sub': lambda a, b, u: (u, -u),
         'mul': lambda a, b, u: (u * b, u * a), 'div': lambda a, b, u: (u / b, -u * a / (b * b))}


def sum_to(g, shape):
    """Undo broadcasting: sum g over the leading dims and the dims where `shape` has size 1."""
    g = g.sum(axis=tuple(range(g.ndim - len(shape)))) if g.ndim > len(shape) else g
    return g.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True).reshape(shape)

SHAPES = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=1, max_side=4)


@pytest.mark.parametrize('op', list(OPS))
@settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shapes=SHAPES, seed=st.integers(0, 2 ** 16))
def test_broadcast_arithmetic_matches_numpy(op, device, shapes, seed):
    (sa, sb), out_shape = shapes.input_shapes, shapes.result_shape
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(sa)
    b = rng.standard_normal(sb)
    if op == 'div':                                  # keep the denominator away from zero
        b = np.where(b >= 0, 1, -1) * (0.5 + np.abs(b))
    u = rng.standard_normal(out_shape)
    fn = OPS[op]

    x, y = mg.tensor(a, requires_grad=True, device=device), mg.tensor(b, requires_grad=True, device=device)
    out = fn(x, y)
    assert out.shape == tuple(out_shape)
    np.testing.assert_allclose(to_numpy(out), fn(a, b), rtol=1e-12, atol=1e-12)

    gx, gy = mg.grad([out], [x, y], [mg.tensor(u, device=device)])
    ga, gb = GRADS[op](a, b, u)
    assert gx.shape == tuple(sa) and gy.shape == tuple(sb)
    np.testing.assert_allclose(to_numpy(gx), sum_to(ga, sa), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(to_numpy(gy), sum_to(gb, sb), rtol=1e-10, atol=1e-12)

    # with scalars on either side the result keeps the tensor's shape and dtype
    s = float(rng.uniform(0.5, 2.0))
    for got, want in ((fn(x, s), fn(a, s)), (fn(s, y), fn(s, b))):
        assert got.dtype == np.float64
        np.testing.assert_allclose(to_numpy(got), want, rtol=1e-12, atol=1e-12)

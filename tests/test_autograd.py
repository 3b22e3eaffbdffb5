"""The backward engine: order, accumulation, mg.grad, create_graph, retain_graph,
no_grad, detach, needs_input_grad, freeing the graph, error messages."""
import gc
import weakref

import numpy as np
import pytest

import minigan as mg
from minigan.autograd import Function

def rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def pair(torch, a, requires_grad=True):
    """The same float64 values as a minigan and a torch leaf."""
    return mg.tensor(a, requires_grad=requires_grad), torch.tensor(a, requires_grad=requires_grad)


def close(got, want, rtol=1e-10):
    want = want.detach().numpy() if hasattr(want, 'detach') else want      # a torch tensor
    np.testing.assert_allclose(got.numpy() if isinstance(got, mg.Tensor) else got, want, rtol=rtol, atol=1e-12)


class Counted(Function):
    """y = 2 x that counts its backward calls (per instance) and records the order they ran in."""
    log = []

    def forward(self, x):
        self.calls = 0
        return 2 * x

    def backward(self, gy):                      # dy = 2 dx
        self.calls += 1
        Counted.log.append(self)
        return gy * 2


# ---- order and accumulation -------------------------------------------------
def diamond(x):
    a = x * 2
    b = x.exp()
    c = a * b                           # diamond: a and b both come from x
    d = c + a + x * x * x               # a used twice, x used five times
    return (d / (1 + b)).sum()


def test_diamond_graph_and_reuse_match_central_differences():
    x = mg.tensor(rand((3, 4), 1), requires_grad=True)
    assert mg.gradcheck(diamond, [x])
    diamond(x).backward()               # .grad holds the same gradient as mg.grad
    a = x.numpy()                       # d/dx of (2x e^x + 2x + x^3) / (1 + e^x)
    num, den = 2 * a * np.exp(a) + 2 * a + a ** 3, 1 + np.exp(a)
    close(x.grad, ((2 * np.exp(a) + 2 * a * np.exp(a) + 2 + 3 * a * a) * den - num * np.exp(a)) / den ** 2)


def test_diamond_graph_and_reuse_match_torch(torch):
    x, xt = pair(torch, rand((3, 4), 1))
    diamond(x).backward()
    diamond(xt).backward()
    close(x.grad, xt.grad)


def test_each_function_runs_backward_once_after_all_its_consumers():
    """Topological order: a node used by many consumers gets all their gradient before its own backward."""
    Counted.log = []
    x = mg.tensor(rand(5, 2), requires_grad=True)
    root = Counted()
    h = root(x)                                  # h feeds three branches of different depths
    deep = Counted()(Counted()(Counted()(h)))
    y = (h * 3 + deep + Counted()(h)).sum()
    y.backward()
    assert all(f.calls == 1 for f in Counted.log) and len(Counted.log) == 5
    assert Counted.log[-1] is root               # the shared node runs last
    close(x.grad, np.full(5, 2 * (3 + 8 + 2.0)))   # root * (3 + deep 2**3 + 2)


def test_long_chain_with_a_shortcut():
    """y <- 0.9 y + 0.001 e^y thirty times, plus x: the gradient is 1 + prod(0.9 + 0.001 e^y_k)."""
    x = mg.tensor(rand(4, 3), requires_grad=True)
    y = x
    for _ in range(30):
        y = y * 0.9 + 0.1 * y.exp() * 0.01
    (y + x).sum().backward()
    a, chain = x.numpy(), np.ones(4)
    for _ in range(30):
        a, chain = a * 0.9 + 0.1 * np.exp(a) * 0.01, chain * (0.9 + 0.001 * np.exp(a))
    close(x.grad, chain + 1)


def test_only_leaves_keep_grad_and_it_accumulates():
    x = mg.tensor(rand((2, 3), 4), requires_grad=True)
    h = x * x                                    # a non-leaf
    y = (h * 3).sum()
    y.backward(retain_graph=True)
    assert h.grad is None and not h.is_leaf and x.is_leaf
    first = x.grad.numpy()
    close(first, 6 * x.numpy())
    y.backward()                                 # second pass over the retained graph: adds
    close(x.grad, 2 * first)
    (x * 5).sum().backward()                     # a new graph: adds again
    close(x.grad, 2 * first + 5)


def test_leaf_grad_is_a_private_writable_array():
    """.grad can be updated in place (optimisers, zero_()): it is never a broadcast view, and never
    shared with another leaf's .grad or with the gradient the caller passed in."""
    a = mg.tensor(rand(3, 5), requires_grad=True)
    b = mg.tensor(rand(3, 6), requires_grad=True)
    g = mg.tensor(np.ones(3))
    (a + b).backward(g)
    a.grad.array += 1
    close(b.grad, np.ones(3))
    close(g, np.ones(3))
    w = mg.tensor(rand((2, 3), 7), requires_grad=True)
    w.sum().backward()                           # the gradient of sum is a broadcast
    w.grad.zero_()
    close(w.grad, np.zeros((2, 3)))


def test_second_backward_accumulates_into_grad_in_place_but_never_into_a_users_array():
    """Without create_graph, a later backward adds into the .grad array an earlier backward made
    (as PyTorch does: no new array per accumulation); a .grad the user assigned is replaced, not
    written to. Seed 8."""
    x = mg.tensor(rand((4, 5), 8), requires_grad=True)
    (x * 2).sum().backward()
    made = x.grad
    (x * 3).sum().backward()
    assert x.grad is made
    close(x.grad, np.full((4, 5), 5.0))
    mine = np.ones((4, 5))
    x.grad = mg.Tensor(mine)                     # wraps the user's array, no copy
    before = x.grad.numpy().copy()
    (x * 3).sum().backward()
    close(x.grad, before + 3)
    close(mine, np.ones((4, 5)))                 # the user's array is untouched
    assert x.grad.numpy() is not mine


def test_backward_accepts_arrays_and_casts_to_the_output_dtype():
    x = mg.tensor(rand(3, 8).astype(np.float32), requires_grad=True)
    y = x * 2
    y.backward(np.array([1.0, 2.0, 3.0]))       # float64 NumPy array for a float32 output
    assert x.grad.dtype == np.float32
    close(x.grad, np.array([2.0, 4.0, 6.0]))


def test_backward_of_an_infinite_loss_starts_from_one():
    x = mg.tensor(np.array([np.inf, 1.0, -2.0]), requires_grad=True)
    x.sum().backward()
    close(x.grad, np.ones(3))                    # ones, not nan (as in PyTorch)


# ---- mg.grad ------------------------------------------------------------------
def test_grad_returns_new_tensors_and_leaves_dot_grad_alone():
    x = mg.tensor(rand(4, 9), requires_grad=True)
    w = mg.tensor(rand(4, 10), requires_grad=True)
    y = (x * w).exp().sum()
    gx, gw = mg.grad([y], [x, w])
    assert x.grad is None and w.grad is None
    close(gx, w.numpy() * np.exp(x.numpy() * w.numpy()))
    close(gw, x.numpy() * np.exp(x.numpy() * w.numpy()))
    w.grad = mg.tensor(np.ones(4))
    gx2, = mg.grad((x * w).sum(), x)            # a single tensor works too
    close(w.grad, np.ones(4))
    close(gx2, w.numpy())


def test_grad_with_respect_to_an_intermediate():
    """y = sum(h^2 + x), h = e^x: dy/dh = 2h, and dy/dx = 1 + 2 e^2x takes the path through h too."""
    x = mg.tensor(rand(5, 11), requires_grad=True)
    h = x.exp()
    gh, gx = mg.grad([(h * h + x).sum()], [h, x])
    close(gh, 2 * h.numpy())
    close(gx, 1 + 2 * np.exp(2 * x.numpy()))


def test_grad_unused_inputs():
    x = mg.tensor(rand(3, 12), requires_grad=True)
    z = mg.tensor(rand(3, 13), requires_grad=True)
    y = (x * x).sum()
    with pytest.raises(RuntimeError, match='allow_unused'):
        mg.grad([y], [x, z], retain_graph=True)
    gx, gz = mg.grad([y], [x, z], allow_unused=True)
    assert gz is None
    close(gx, 2 * x.numpy())


def test_grad_of_several_outputs_with_grad_outputs():
    """<u1, e^x> + <u2, sum_rows x^2>: the gradient is u1 e^x + 2 x u2 (u2 broadcast over rows)."""
    x = mg.tensor(rand((2, 3), 14), requires_grad=True)
    u1, u2 = rand((2, 3), 15), rand(3, 16)
    gx, = mg.grad([x.exp(), (x * x).sum(0)], [x], [mg.tensor(u1), mg.tensor(u2)])
    close(gx, u1 * np.exp(x.numpy()) + 2 * x.numpy() * u2)


# ---- higher order -------------------------------------------------------------
THIRD_ORDER = [   # f, and its first three derivatives worked out by hand
    (lambda x: x ** 4, [lambda a: 4 * a ** 3, lambda a: 12 * a ** 2, lambda a: 24 * a]),
    (lambda x: x.exp() * x, [lambda a: (1 + a) * np.exp(a), lambda a: (2 + a) * np.exp(a),
                             lambda a: (3 + a) * np.exp(a)]),
    (lambda x: (x * x).log() * x, [lambda a: 2 * np.log(a) + 2, lambda a: 2 / a, lambda a: -2 / a ** 2]),
    (lambda x: 1 / (1 + x * x), [lambda a: -2 * a / (1 + a * a) ** 2, lambda a: (6 * a * a - 2) / (1 + a * a) ** 3,
                                 lambda a: 24 * a * (1 - a * a) / (1 + a * a) ** 4]),
]


def test_third_derivatives_equal_the_derivatives_by_hand():
    a = np.random.default_rng(17).uniform(0.5, 1.5, 6)
    for f, derivatives in THIRD_ORDER:
        x = mg.tensor(a, requires_grad=True)
        g = f(x).sum()
        for derivative in derivatives:
            g, = mg.grad([g], [x], create_graph=True)
            close(g, derivative(a), rtol=1e-9)
            g = g.sum()


def test_third_derivatives_match_torch(torch):
    fns = [f for f, _ in THIRD_ORDER]
    a = np.random.default_rng(17).uniform(0.5, 1.5, 6)
    for f in fns:
        x, xt = pair(torch, a)
        g, gt = f(x).sum(), f(xt).sum()
        for order in range(3):
            g, = mg.grad([g], [x], create_graph=True)
            gt, = torch.autograd.grad([gt], [xt], create_graph=True)
            close(g, gt, rtol=1e-9)
            g, gt = g.sum(), gt.sum()
    x = mg.tensor(a, requires_grad=True)
    g3 = mg.grad(mg.grad(mg.grad((x ** 4).sum(), x, create_graph=True)[0].sum(), x,
                         create_graph=True)[0].sum(), x)[0]
    close(g3, 24 * a)


def test_backward_with_create_graph_gives_a_differentiable_grad():
    x = mg.tensor(rand(4, 18), requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    g2, = mg.grad(x.grad.sum(), x)
    close(g2, 6 * x.numpy())


def penalty(x, w):
    """WGAN-GP's shape: (|d critic / d x| - 1)^2 with the critic sum(e^(x w) / 2)."""
    with mg.enable_grad():              # gradcheck evaluates it under no_grad; the inner grad needs a graph
        g, = mg.grad([((x @ w).exp() * 0.5).sum()], [x], create_graph=True)
        return ((((g * g).sum(1)) ** 0.5 - 1) ** 2).mean()


def test_gradient_penalty_pattern_matches_central_differences():
    """The penalty, differentiated into the weights and the input, against central differences."""
    x = mg.tensor(rand((4, 3), 19), requires_grad=True)
    w = mg.tensor(rand((3, 2), 20), requires_grad=True)
    assert mg.gradcheck(penalty, [x, w])


def test_gradient_penalty_pattern_matches_torch(torch):
    """WGAN-GP: the norm of d critic / d input, differentiated into the weights."""
    xa, wa = rand((4, 3), 19), rand((3, 2), 20)
    x, xt = pair(torch, xa)
    w, wt = pair(torch, wa)
    out, outt = ((x @ w).exp() * 0.5).sum(), ((xt @ wt).exp() * 0.5).sum()
    g, = mg.grad([out], [x], create_graph=True)
    gt, = torch.autograd.grad([outt], [xt], create_graph=True)
    pen = ((((g * g).sum(1)) ** 0.5 - 1) ** 2).mean()
    pent = ((((gt * gt).sum(1)) ** 0.5 - 1) ** 2).mean()
    pen.backward()
    pent.backward()
    close(pen, pent)
    close(w.grad, wt.grad, rtol=1e-9)
    close(x.grad, xt.grad, rtol=1e-9)


# ---- errors -------------------------------------------------------------------
def test_backward_on_non_scalar_needs_a_gradient():
    x = mg.tensor(rand((2, 3), 21), requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match=r'shape \(2, 3\).*single-element'):
        y.backward()
    y.backward(mg.tensor(np.ones((2, 3))))
    close(x.grad, np.full((2, 3), 2.0))


def test_grad_output_shape_mismatch():
    x = mg.tensor(rand((2, 3), 22), requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match=r'grad_output 0 has shape \(3, 2\).*\(2, 3\)'):
        y.backward(mg.tensor(np.ones((3, 2))))
    with pytest.raises(ValueError, match=r'grad_output 0 has shape \(3,\)'):
        mg.grad([y], [x], [mg.tensor(np.ones(3))])
    with pytest.raises(ValueError, match='2 grad_outputs for 1 outputs'):
        mg.grad([y], [x], [mg.tensor(np.ones((2, 3)))] * 2)


def test_backward_twice_needs_retain_graph():
    x = mg.tensor(rand(3, 23), requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match='retain_graph=True'):
        y.backward()
    z = (x.exp() * x).sum()
    x.grad = None
    z.backward(retain_graph=True)
    z.backward()
    close(x.grad, 2 * (np.exp(x.numpy()) * (1 + x.numpy())))
    w = (x * x).sum()
    mg.grad(w, x)
    with pytest.raises(RuntimeError, match='retain_graph=True'):
        mg.grad(w, x)


def test_outputs_without_graph_and_inputs_without_grad():
    x = mg.tensor(rand(3, 24))
    with pytest.raises(RuntimeError, match='does not require grad'):
        (x * 2).sum().backward()
    w = mg.tensor(rand(3, 40), requires_grad=True)
    with pytest.raises(RuntimeError, match=r'input 0 of grad\(\) does not require grad.*requires_grad_'):
        mg.grad([(x * w).sum()], [x])


def test_requires_grad_only_for_floats_and_leaves():
    with pytest.raises(TypeError, match='floating-point'):
        mg.tensor([1, 2, 3], requires_grad=True)
    with pytest.raises(RuntimeError, match='floating-point'):   # torch raises RuntimeError here
        mg.tensor(np.array([1, 2]), requires_grad=True)
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match='detach'):
        (x * 2).requires_grad_(False)
    assert x.requires_grad_(False) is x and not x.requires_grad


def test_integer_results_carry_no_gradient():
    x = mg.tensor(rand(4, 25), requires_grad=True)
    assert not x.to(dtype=np.int64).requires_grad
    assert not (x > 0).requires_grad
    assert (x.to(dtype=np.float32)).requires_grad


def test_wrong_gradient_shape_or_count_from_a_function_is_reported():
    class BadShape(Function):
        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return gy.sum()

    class BadCount(Function):
        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return gy, gy

    x = mg.tensor(rand(3, 26), requires_grad=True)
    with pytest.raises(RuntimeError, match=r'BadShape.backward returned a gradient of shape \(\)'):
        BadShape()(x).sum().backward()
    with pytest.raises(RuntimeError, match='BadCount.backward returned 2 gradients for 1 inputs'):
        BadCount()(x).sum().backward()
    with pytest.raises(TypeError, match='takes Tensors'):
        BadShape()(np.ones(3))


# ---- multi-output functions -------------------------------------------------
class Split(Function):
    """(2x, 3x): two outputs."""
    def forward(self, x):
        return 2 * x, 3 * x

    def backward(self, g1, g2):                  # d(2x, 3x) = (2 dx, 3 dx)
        return g1 * 2 + g2 * 3


def test_multi_output_function_with_an_unused_or_dropped_output():
    x = mg.tensor(rand(3, 27), requires_grad=True)
    a, b = Split()(x)
    (a * b).sum().backward()
    close(x.grad, 12 * x.numpy())
    x.grad = None
    a = Split()(x)[0]                            # the second output is dropped before backward
    gc.collect()
    a.sum().backward()                           # gets zeros for it
    close(x.grad, np.full(3, 2.0))


# ---- no_grad, detach --------------------------------------------------------
def test_no_grad_records_nothing_and_restores():
    x = mg.tensor(rand(3, 28), requires_grad=True)
    with mg.no_grad():
        y = (x * 2).exp()
        assert not mg.is_grad_enabled()
        with mg.enable_grad():
            z = x * 3
    assert mg.is_grad_enabled()
    assert not y.requires_grad and y.creator is None and y.is_leaf
    assert z.requires_grad and z.creator is not None
    with pytest.raises(ZeroDivisionError):
        with mg.no_grad():
            1 / 0
    assert mg.is_grad_enabled()
    with mg.set_grad_enabled(False):
        assert not (x * 2).requires_grad


def test_no_grad_as_decorator():
    @mg.no_grad()
    def f(x):
        return x * 2
    x = mg.tensor([1.0], requires_grad=True)
    assert not f(x).requires_grad and not f(x).requires_grad


def test_detach_cuts_the_graph():
    x = mg.tensor(rand(4, 29), requires_grad=True)
    (x * x.detach()).sum().backward()
    close(x.grad, x.numpy())                     # d(x c)/dx = c: no gradient through the detached copy
    d = x.detach()
    assert not d.requires_grad and d.is_leaf
    np.testing.assert_array_equal(d.numpy(), x.numpy())


# ---- needs_input_grad -----------------------------------------------------------
class Affine(Function):
    """y = x @ w; backward records needs_input_grad and counts the weight-gradient products."""
    weight_grads = 0
    seen = []

    def forward(self, x, w):
        return x @ w

    def backward(self, gy):                      # dx = gy w^T, dw = x^T gy
        x, w = self.inputs
        Affine.seen.append(self.needs_input_grad)
        gx = gy @ w.T if self.needs_input_grad[0] else None
        gw = None
        if self.needs_input_grad[1]:
            Affine.weight_grads += 1
            gw = x.T @ gy
        return gx, gw


def test_backward_is_told_which_inputs_need_gradients():
    Affine.weight_grads, Affine.seen = 0, []
    x = mg.tensor(rand((2, 3), 30), requires_grad=True)
    w = mg.tensor(rand((3, 4), 31), requires_grad=True)
    y = Affine()(Affine()(x, w).exp(), mg.tensor(rand((4, 2), 32), requires_grad=True)).sum()
    mg.grad([y], [x])                            # only x is wanted: no weight gradient at all
    assert Affine.weight_grads == 0 and Affine.seen == [(True, False), (True, False)]

    Affine.seen = []
    w.requires_grad_(False)                      # a frozen weight (the G step's D weights)
    x.grad = None
    Affine()(x, w).sum().backward()
    assert Affine.weight_grads == 0 and Affine.seen == [(True, False)]
    close(x.grad, np.ones((2, 4)) @ w.numpy().T)

    Affine.seen = []                             # the weight alone: no input gradient
    w.requires_grad_(True)
    x2 = mg.tensor(rand((2, 3), 33))
    Affine()(x2, w).sum().backward()
    assert Affine.weight_grads == 1 and Affine.seen == [(False, True)]
    close(w.grad, x2.numpy().T @ np.ones((2, 4)))


def test_mg_grad_prunes_branches_that_do_not_reach_the_targets():
    Counted.log = []
    x = mg.tensor(rand(3, 34), requires_grad=True)
    other = mg.tensor(rand(3, 35), requires_grad=True)
    y = (Counted()(x) + Counted()(Counted()(other))).sum()
    gx, = mg.grad([y], [x])
    assert len(Counted.log) == 1                 # the `other` branch never ran backward
    close(gx, np.full(3, 2.0))


# ---- freeing the graph ------------------------------------------------------------
def test_graph_is_freed_without_the_cycle_collector():
    gc.collect()
    gc.disable()
    try:
        x = mg.tensor(rand((3, 4), 36), requires_grad=True)
        w = mg.tensor(rand((4, 2), 37), requires_grad=True)
        h = (x @ w).exp()
        y = (h * h + h[0]).mean()
        refs = [weakref.ref(t) for t in (h, y)] + [weakref.ref(t.creator) for t in (h, y)]
        y.backward()
        # the gradients themselves hold no graph either
        refs += [weakref.ref(x.grad), weakref.ref(w.grad)]
        del h, y
        x.grad = w.grad = None
        assert all(r() is None for r in refs), [r() for r in refs]
        # a graph that never ran backward dies with its last tensor too
        z = (x * w.sum()).exp().sum()
        zrefs = [weakref.ref(z), weakref.ref(z.creator), weakref.ref(z.creator.inputs[0].creator)]
        del z
        assert all(r() is None for r in zrefs)
        # and so does a double-backprop graph built by mg.grad(create_graph=True)
        g, = mg.grad([(x ** 3).sum()], [x], create_graph=True)
        grefs = [weakref.ref(g), weakref.ref(g.creator)]
        (g * g).sum().backward()
        del g
        assert all(r() is None for r in grefs)
    finally:
        gc.enable()


def _live_functions():
    return sum(issubclass(type(o), Function) for o in gc.get_objects())


def test_no_memory_growth_over_many_training_steps():
    rng = np.random.default_rng(38)
    w1 = mg.tensor(rng.standard_normal((8, 16)) * 0.1, requires_grad=True)
    w2 = mg.tensor(rng.standard_normal((16, 1)) * 0.1, requires_grad=True)
    x = mg.tensor(rng.standard_normal((4, 8)))

    def step():
        h = (x @ w1).clamp(min=0)
        loss = ((h @ w2) ** 2).mean() + (w1 * w1).sum() * 1e-3
        g, = mg.grad([loss], [w1], create_graph=True, retain_graph=True)   # a penalty term, as in WGAN-GP
        (loss + (g * g).sum()).backward()
        with mg.no_grad():
            for p in (w1, w2):
                p.array -= 0.01 * p.grad.array
                p.grad = None
        return loss

    for _ in range(20):
        step()
    gc.collect()
    before = _live_functions()
    for _ in range(1000):
        last = step()
    del last
    gc.collect()
    assert _live_functions() <= before


def test_memory_does_not_grow_tracemalloc():
    import tracemalloc
    x = mg.tensor(rand((16, 16), 39), requires_grad=True)

    def step():
        y = ((x @ x).exp().sum(1) / 16).mean()
        y.backward()
        x.grad = None
    tracemalloc.start()
    try:
        for _ in range(200):                     # warm-up under tracing: caches and free lists fill once
            step()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(1000):
            step()
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    # one leaked 56-byte object per step would already be 56 kB; a leaked graph, megabytes
    assert grown < 20_000, f'{grown} bytes more held after 1000 more steps'

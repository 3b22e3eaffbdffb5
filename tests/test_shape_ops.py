"""Shape ops (reshape/view, permute, transpose, flatten, squeeze/unsqueeze,
indexing, cat, stack, broadcast_to/expand) against NumPy, central differences and PyTorch:
forward, gradients, double backward, gradcheck and gradgradcheck (see test_math_ops.check_op)."""
import numpy as np
import pytest

import minigan as mg
import minigan.functional as MF
from conftest import optional_torch
from test_math_ops import check_op

torch = optional_torch()        # None without PyTorch: only the torch half of `reference` calls it


def rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


RESHAPE = [
    ('reshape -1', (2, 3, 4), lambda x: x.reshape(-1)),
    ('reshape tuple', (2, 3, 4), lambda x: x.reshape((4, 6))),
    ('reshape args -1', (2, 3, 4), lambda x: x.reshape(3, -1, 2)),
    ('view', (2, 3, 4), lambda x: x.view(6, 4)),
    ('view -1 first', (5, 3), lambda x: x.view(-1, 5)),
    ('reshape to 0-d', (1, 1), lambda x: x.reshape(())),
    ('reshape after transpose', (3, 4), lambda x: x.transpose(0, 1).reshape(2, 6)),
    ('permute', (2, 3, 4), lambda x: x.permute(2, 0, 1)),
    ('permute tuple negative', (2, 3, 4), lambda x: x.permute((-1, -3, -2))),
    ('transpose 0,2', (2, 3, 4), lambda x: x.transpose(0, 2)),
    ('transpose -1,-2', (2, 3, 4), lambda x: x.transpose(-1, -2)),
    ('transpose 2-d', (3, 5), lambda x: x.transpose(0, 1)),
    ('T', (3, 5), lambda x: x.T),
    ('flatten', (2, 3, 4), lambda x: x.flatten()),
    ('flatten start 1', (2, 3, 4, 1), lambda x: x.flatten(1)),
    ('flatten start_dim kw', (2, 3, 4), lambda x: x.flatten(start_dim=1)),
    ('flatten 0..1', (2, 3, 4), lambda x: x.flatten(0, 1)),
    ('squeeze all', (1, 3, 1, 2), lambda x: x.squeeze()),
    ('squeeze dim', (1, 3, 1, 2), lambda x: x.squeeze(2)),
    ('squeeze dim negative', (1, 3, 1, 2), lambda x: x.squeeze(-4)),
    ('squeeze non-1 dim is a no-op', (1, 3, 1, 2), lambda x: x.squeeze(1)),
    ('unsqueeze 0', (3, 2), lambda x: x.unsqueeze(0)),
    ('unsqueeze end', (3, 2), lambda x: x.unsqueeze(2)),
    ('unsqueeze -1', (3, 2), lambda x: x.unsqueeze(-1)),
    ('expand', (3, 1), lambda x: x.expand(2, 3, 4)),
    ('expand -1', (3, 1), lambda x: x.expand(-1, 5)),
]


NUMPY = [   # (name, shape, minigan op, the same in NumPy)
    ('view', (2, 3, 4), lambda x: x.view(6, 4), lambda a: a.reshape(6, 4)),
    ('permute', (2, 3, 4), lambda x: x.permute(2, 0, 1), lambda a: a.transpose(2, 0, 1)),
    ('transpose', (2, 3, 4), lambda x: x.transpose(0, 2), lambda a: np.swapaxes(a, 0, 2)),
    ('T', (3, 5), lambda x: x.T, lambda a: a.T),
    ('flatten 1', (2, 3, 4, 1), lambda x: x.flatten(1), lambda a: a.reshape(2, -1)),
    ('flatten 0..1', (2, 3, 4), lambda x: x.flatten(0, 1), lambda a: a.reshape(6, 4)),
    ('squeeze', (1, 3, 1, 2), lambda x: x.squeeze(), np.squeeze),
    ('unsqueeze', (3, 2), lambda x: x.unsqueeze(1), lambda a: np.expand_dims(a, 1)),
    ('expand', (3, 1), lambda x: x.expand(2, 3, 4), lambda a: np.broadcast_to(a, (2, 3, 4))),
    ('cat', (2, 3), lambda x: mg.cat([x, x * 2], 1), lambda a: np.concatenate([a, a * 2], 1)),
    ('stack', (2, 3), lambda x: mg.stack([x, x * 2], -1), lambda a: np.stack([a, a * 2], -1)),
]


@pytest.mark.parametrize('name,shape,fn,numpy_fn', NUMPY, ids=[n[0] for n in NUMPY])
def test_values_match_numpy(name, shape, fn, numpy_fn, device):
    x = rand(shape, 9)
    y = fn(mg.tensor(x, device=device))
    np.testing.assert_array_equal(y.numpy(), numpy_fn(x))


@pytest.mark.parametrize('name,shape,fn', RESHAPE, ids=[r[0] for r in RESHAPE])
def test_reshape_family(name, shape, fn, device, reference):
    check_op(fn, [rand(shape, 1)], device, reference)


FUNCTIONAL = [
    ('F.reshape', lambda x: MF.reshape(x, (6, -1)), lambda t: t.reshape(6, -1)),
    ('F.permute', lambda x: MF.permute(x, (1, 2, 0)), lambda t: t.permute(1, 2, 0)),
    ('F.flatten', lambda x: MF.flatten(x, 1), lambda t: torch.flatten(t, 1)),
    ('F.squeeze', lambda x: MF.squeeze(MF.unsqueeze(x, 1), 1), lambda t: t.unsqueeze(1).squeeze(1)),
    ('F.broadcast_to', lambda x: MF.broadcast_to(x, (5, 2, 3, 4)), lambda t: torch.broadcast_to(t, (5, 2, 3, 4))),
    ('F.sum_to', lambda x: MF.sum_to(x, (3, 1)), lambda t: t.sum(dim=(0, 2), keepdim=True)[0]),
]


@pytest.mark.parametrize('name,fn,tfn', FUNCTIONAL, ids=[f[0] for f in FUNCTIONAL])
def test_functional_shape_ops(name, fn, tfn, device, reference):
    check_op(fn, [rand((2, 3, 4), 2)], device, reference, torch_fn=tfn)


def _torch_index(index):
    """Index arrays become torch tensors; torch has no negative-step slices, so those become arange arrays."""
    return tuple(torch.tensor(i) if isinstance(i, np.ndarray) else i for i in index)


INDEX = [
    ('int', (4, 5), (2,)),
    ('negative int', (4, 5), (-1,)),
    ('int, int', (4, 5), (1, -2)),
    ('slice', (6, 5), (slice(1, 5),)),
    ('slice step', (6, 5), (slice(None), slice(0, 5, 2))),
    ('slice and int', (3, 4, 5), (slice(1, None), 2)),
    ('ellipsis', (3, 4, 5), (Ellipsis, 1)),
    ('None', (3, 4), (None, slice(None), 1)),
    ('fancy with repeats', (5, 3), (np.array([0, 2, 0, 4, 0]),)),
    ('fancy 2-d with repeats', (5, 3), (np.array([[1, 1], [4, 1]]),)),
    ('fancy pair', (4, 5), (np.array([0, 3, 3]), np.array([1, 1, 4]))),
    ('fancy and slice', (4, 5), (slice(1, 3), np.array([4, 0, 4]))),
    ('boolean mask', (4, 5), (np.random.default_rng(3).random((4, 5)) > 0.5,)),
    ('boolean row mask', (4, 5), (np.array([True, False, True, True]),)),
]


@pytest.mark.parametrize('name,shape,index', INDEX, ids=[i[0] for i in INDEX])
def test_getitem(name, shape, index, device, reference):
    x = rand(shape, 4)
    np.testing.assert_array_equal(mg.tensor(x, device=device)[index].numpy(), x[index])
    check_op(lambda t: t[index], [x], device, reference, torch_fn=lambda t: t[_torch_index(index)])


NEG_STEP = [
    ('reverse', (6,), (slice(None, None, -1),)),
    ('step -2', (7, 3), (slice(None, None, -2),)),
    ('reverse cols from 3', (4, 5), (slice(None), slice(3, None, -1))),
    ('negative step bounded', (4, 6), (1, slice(5, 0, -2))),
]


@pytest.mark.parametrize('name,shape,index', NEG_STEP, ids=[i[0] for i in NEG_STEP])
def test_getitem_negative_steps(name, shape, index, device, reference):
    # torch slices cannot step backwards: its reference indexes with the equivalent arange arrays
    def as_arrays(t):
        axis = 0                                  # axis of t that index entry k applies to
        for k, i in enumerate(index):
            if isinstance(i, slice):
                t = t.index_select(axis, torch.tensor(np.arange(shape[k])[i].copy()))
                axis += 1
            else:
                t = t.select(axis, i)
        return t
    x = rand(shape, 5)
    np.testing.assert_array_equal(mg.tensor(x)[index].numpy(), x[index])
    check_op(lambda t: t[index], [x], device, reference, torch_fn=as_arrays)


def test_getitem_with_index_tensors_and_lists(device, reference):
    x = rand((5, 4), 6)
    idx = mg.tensor(np.array([3, 0, 3]), device=device)
    mask = mg.tensor(x[:, 0] > 0, device=device)
    check_op(lambda t: t[idx], [x], device, reference, torch_fn=lambda t: t[torch.tensor([3, 0, 3])])
    check_op(lambda t: t[mask], [x], device, reference, torch_fn=lambda t: t[torch.tensor(x[:, 0] > 0)])
    check_op(lambda t: t[[1, 1, 2]], [x], device, reference, torch_fn=lambda t: t[[1, 1, 2]])


def test_getitem_gradient_accumulates_repeated_indices():
    x = mg.tensor(np.arange(4.0), requires_grad=True)
    x[np.array([1, 1, 1, 3])].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 3.0, 0.0, 1.0])


CAT = [
    ('dim 0', [(2, 3), (4, 3), (1, 3)], 0),
    ('dim 1', [(2, 3), (2, 1), (2, 5)], 1),
    ('dim -1 3-d', [(2, 3, 1), (2, 3, 2)], -1),
    ('single', [(3, 2)], 0),
]


@pytest.mark.parametrize('name,shapes,dim', CAT, ids=[c[0] for c in CAT])
def test_cat(name, shapes, dim, device, reference):
    arrays = [rand(s, k) for k, s in enumerate(shapes)]
    check_op(lambda *xs: mg.cat(xs, dim), arrays, device, reference, torch_fn=lambda *ts: torch.cat(ts, dim))
    check_op(lambda *xs: mg.cat(list(xs), dim=dim), arrays, device, reference,
             torch_fn=lambda *ts: torch.cat(ts, dim=dim), double=False, gradcheck=False)


@pytest.mark.parametrize('dim', [0, 1, 2, -1, -3])
def test_stack(dim, device, reference):
    arrays = [rand((2, 3), k) for k in range(3)]
    check_op(lambda *xs: mg.stack(xs, dim), arrays, device, reference, torch_fn=lambda *ts: torch.stack(ts, dim))


def test_cat_gradient_only_for_inputs_that_need_it():
    a = mg.tensor(rand((2, 3), 7), requires_grad=True)
    b = mg.tensor(rand((1, 3), 8))                      # a constant
    y = mg.cat([a, b])
    u = rand((3, 3), 9)
    ga, = mg.grad([y], [a], [mg.tensor(u)])
    np.testing.assert_array_equal(ga.numpy(), u[:2])


def test_shape_op_errors():
    x = mg.tensor(rand((2, 3, 4)))
    with pytest.raises(ValueError, match='cannot reshape'):
        x.reshape(5, -1)
    with pytest.raises(ValueError, match='cannot reshape'):
        x.reshape(-1, -1)
    with pytest.raises(ValueError, match='permutation'):
        x.permute(0, 1, 1)
    for bad in (lambda: x.permute(0, 1, 3), lambda: x.permute(0, 1, -4), lambda: x.transpose(0, 3),
                lambda: x.squeeze(3), lambda: x.unsqueeze(4), lambda: x.flatten(5), lambda: mg.cat([x, x], 3),
                lambda: mg.stack([x, x], 4)):
        with pytest.raises(IndexError, match='out of range'):
            bad()
    with pytest.raises(ValueError, match='start_dim'):
        x.flatten(2, 1)
    with pytest.raises(ValueError, match=r'cannot broadcast shape \(2, 3, 4\)'):
        x.expand(3, 3, 4)
    with pytest.raises(ValueError, match='cannot broadcast'):
        mg.tensor(rand((3, 1))).expand(1, 4)           # (3, 1) and (1, 4) broadcast together, but not 3 -> 1
    with pytest.raises(ValueError, match='cannot broadcast'):
        x.expand(3, 4)                                  # fewer dims
    with pytest.raises(ValueError, match='do not match'):
        mg.cat([x, mg.tensor(rand((2, 2, 4)))], 0)
    with pytest.raises(ValueError, match='0-d'):
        mg.cat([mg.tensor(1.0), mg.tensor(2.0)])
    with pytest.raises(ValueError, match='one shape'):
        mg.stack([x, x[0]])
    with pytest.raises(ValueError, match='at least one'):
        mg.cat([])


def test_view_and_reshape_shapes_match_torch(torch):
    x, t = mg.tensor(rand((2, 3, 4))), torch.tensor(rand((2, 3, 4)))
    for args in [(-1,), (4, -1), (2, 1, -1, 3), ((24,),), ((1, 24),)]:
        assert x.reshape(*args).shape == tuple(t.reshape(*args).shape)
        assert x.view(*args).shape == tuple(t.view(*args).shape)
    for start in range(-3, 3):
        assert x.flatten(start).shape == tuple(t.flatten(start).shape)
    assert x.squeeze(0).shape == tuple(t.squeeze(0).shape)
    assert mg.tensor(rand((1, 3, 1))).squeeze((0, 2)).shape == (3,)

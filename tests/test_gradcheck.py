"""mg.gradcheck / mg.gradgradcheck themselves: they pass correct ops, catch wrong
first and second derivatives, name the worst element with both values, and
refuse float32."""
import re

import numpy as np
import pytest

import minigan as mg
from minigan.autograd import Function
from minigan.tensor import Tensor


def rand(shape, seed=0, device='cpu', requires_grad=True):
    return mg.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=requires_grad,
                     device=device)


class BumpedSquare(Function):
    """y = x²; backward is 2x·gy plus a wrong constant `bump` at one element, and records gy."""
    def __init__(self, at, bump):
        self.at, self.bump = at, bump

    def forward(self, x):
        return x * x

    def backward(self, gy):                      # correct would be dx = 2 x gy
        self.gy = gy.numpy()
        error = np.zeros(gy.shape)
        error[self.at] = self.bump
        return gy * 2 * self.inputs[0] + Tensor(error)


class ConstantSlopeSquare(Function):
    """y = x²; backward 2x·gy with 2x taken as a constant array: right in first order,
    but its own derivative w.r.t. x is 0 instead of 2·gy."""
    def forward(self, x):
        return x * x

    def backward(self, gy):
        return gy * Tensor(2 * self.inputs[0].array)


def test_passes_correct_ops(device):
    x, w = rand((3, 4), 1, device), rand((4, 2), 2, device)
    assert mg.gradcheck(lambda a, b: (a @ b).exp() / (1 + a.sum()), [x, w])
    assert mg.gradgradcheck(lambda a, b: (a @ b).exp() / (1 + a.sum()), [x, w])
    assert mg.gradcheck(lambda a: (a * a, a.exp()), [x])           # several outputs


def test_catches_a_wrong_backward_and_names_the_worst_element(device):
    x = rand((3, 4), 3, device)
    made = []

    def fn(a):
        made.append(BumpedSquare((1, 2), 0.75))
        return made[-1](a)
    with pytest.raises(mg.GradcheckError) as info:
        mg.gradcheck(fn, [x])
    msg = str(info.value)
    assert 'input 0' in msg and 'element (1, 2)' in msg, msg
    gy = next(f.gy for f in made if hasattr(f, 'gy'))           # the cotangent gradcheck used
    right = 2 * x.numpy()[1, 2] * gy[1, 2]
    got, want = (float(v) for v in re.search(r'autograd gave (\S+), central differences gave (\S+?) ',
                                              msg).groups())
    assert got == pytest.approx(right + 0.75, rel=1e-6) and want == pytest.approx(right, rel=1e-5)
    assert isinstance(info.value, AssertionError)
    assert mg.gradcheck(fn, [x], raise_exception=False) is False


def test_catches_an_error_hidden_in_a_sum_of_ones():
    """A backward whose errors cancel under an all-ones cotangent (as a softmax bug would) is still caught."""
    class ZeroSumError(Function):
        def forward(self, x):
            return x * 3

        def backward(self, gy):                  # correct: 3 gy; adds gy minus its mean
            return gy * 3 + (gy - gy.mean())
    x = rand(5, 4)
    assert np.allclose(mg.grad(ZeroSumError()(x).sum(), x)[0].numpy(), 3)   # looks right with ones
    with pytest.raises(mg.GradcheckError):
        mg.gradcheck(lambda a: ZeroSumError()(a), [x])


def test_random_directions_for_large_inputs():
    x = rand((4, 5), 5)
    assert mg.gradcheck(lambda a: (a * a).exp(), [x], max_elements=10)
    with pytest.raises(mg.GradcheckError, match=r'random directions.*direction \d+'):
        mg.gradcheck(lambda a: BumpedSquare((2, 3), 0.5)(a), [x], max_elements=10)


def test_refuses_float32():
    x = mg.tensor(np.ones(3, np.float32), requires_grad=True)
    with pytest.raises(TypeError, match='float64'):
        mg.gradcheck(lambda a: a * 2, [x])
    with pytest.raises(TypeError, match='float64'):
        mg.gradgradcheck(lambda a: a * 2, [x])
    with pytest.raises(ValueError, match='no input requires grad'):
        mg.gradcheck(lambda a: a * 2, [rand(3, requires_grad=False)])


def test_checks_only_inputs_that_require_grad():
    x, c = rand((2, 3), 6), rand((2, 3), 7, requires_grad=False)
    assert mg.gradcheck(lambda a, b: a * b.exp(), [x, c])


def test_gradgradcheck_catches_a_wrong_second_derivative(device):
    x = rand((2, 3), 8, device)
    assert mg.gradcheck(lambda a: ConstantSlopeSquare()(a), [x])  # first order is right...
    with pytest.raises(mg.GradcheckError, match='gradcheck failed for input 0'):
        mg.gradgradcheck(lambda a: ConstantSlopeSquare()(a), [x])  # ...the second is not
    assert mg.gradgradcheck(lambda a: a * a, [x])


def test_non_contiguous_input_is_perturbed_in_place():
    base = np.random.default_rng(9).standard_normal((4, 3))
    x = Tensor(base.T, requires_grad=True)                          # a transposed view
    assert not x.array.flags.c_contiguous
    assert mg.gradcheck(lambda a: (a * a).exp(), [x])
    np.testing.assert_array_equal(x.numpy(), base.T)                # left as it was


def test_works_under_no_grad_and_restores_inputs():
    x = rand((2, 2), 10)
    before = x.numpy()
    with mg.no_grad():
        assert mg.gradcheck(lambda a: a.exp(), [x])
        assert mg.gradgradcheck(lambda a: a.exp(), [x])
    np.testing.assert_array_equal(x.numpy(), before)


def test_tolerances_are_used():
    x = rand(3, 11)
    fn = lambda a: BumpedSquare((1,), 1e-4)(a)                     # noqa: E731
    with pytest.raises(mg.GradcheckError):
        mg.gradcheck(fn, [x], atol=1e-6, rtol=0)
    assert mg.gradcheck(fn, [x], atol=1e-3, rtol=0)

"""Numerical gradient checks: central differences in float64 against autograd.

The function is reduced to a scalar with a *random* cotangent u, L(x) = <u, f(x)>:
a cotangent of all ones would hide bugs whose errors sum to zero (softmax's).
Small inputs are checked element by element; large ones along random directions.
"""
import numpy as np

from . import backend
from .autograd import enable_grad, grad, no_grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    pass


def _as_list(y):
    return list(y) if isinstance(y, (tuple, list)) else [y]


def _scalar(fn, inputs, us):
    with no_grad():
        ys = _as_list(fn(*inputs))
    return float(sum(float((y.array * u.array).sum()) for y, u in zip(ys, us) if y is not None))


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0, max_elements=400, directions=20,
              raise_exception=True):
    """Check autograd's gradients of fn(*inputs) against central differences.

    inputs: Tensors; those with requires_grad are checked and must be float64.
    Raises GradcheckError naming the worst element, its index and both values.
    """
    inputs = list(inputs)
    rng = np.random.default_rng(seed)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError('gradcheck: no input requires grad')
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise TypeError(f'gradcheck: input {i} is {inputs[i].dtype}; check gradients in float64')
    with enable_grad():                         # gradcheck works even when called under no_grad
        ys = _as_list(fn(*inputs))
    us = [_random_like(rng, y) if y is not None else None for y in ys]
    pairs = [(y, u) for y, u in zip(ys, us) if y is not None and y.requires_grad]
    if not pairs:
        raise GradcheckError('gradcheck: no output depends on an input that requires grad')
    analytic = grad([y for y, _ in pairs], [inputs[i] for i in checked],
                    [Tensor(u.array.astype(y.dtype)) for y, u in pairs], allow_unused=True)
    ok = True
    for k, i in enumerate(checked):
        x = inputs[i]
        a = np.zeros(x.shape) if analytic[k] is None else np.asarray(analytic[k].numpy(), dtype=np.float64)
        data = x.array
        if data.size <= max_elements:           # every element: numeric dL/dx[j]
            num = np.empty(data.size)
            for j in range(data.size):          # index in place: data may be a non-contiguous view
                at = np.unravel_index(j, data.shape)
                old = data[at].item()
                data[at] = old + eps
                plus = _scalar(fn, inputs, us)
                data[at] = old - eps
                minus = _scalar(fn, inputs, us)
                data[at] = old
                num[j] = (plus - minus) / (2 * eps)
            ok &= _compare(a.reshape(-1), num, atol, rtol, f'input {i}', x.shape, raise_exception)
        else:                                   # random directions v: <dL/dx, v>
            got, want = [], []
            for _ in range(directions):
                v = rng.standard_normal(x.shape)
                original = data.copy()
                data[...] = original + eps * backend.to_device(v, x.device)
                plus = _scalar(fn, inputs, us)
                data[...] = original - eps * backend.to_device(v, x.device)
                minus = _scalar(fn, inputs, us)
                data[...] = original
                want.append((plus - minus) / (2 * eps))
                got.append(float((a * v).sum()))
            ok &= _compare(np.array(got), np.array(want), atol, rtol, f'input {i} (random directions)', None,
                           raise_exception)
    return ok


def _random_like(rng, y, requires_grad=False):
    """A float64 standard-normal tensor of y's shape on y's device (a random cotangent)."""
    return Tensor(backend.to_device(rng.standard_normal(y.shape), y.device), requires_grad=requires_grad)


def _compare(analytic, numeric, atol, rtol, what, shape, raise_exception):
    err = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
    if (err > 0).any() or not np.isfinite(analytic).all():
        j = int(np.argmax(np.where(np.isfinite(analytic), err, np.inf)))
        where = f'element {tuple(int(i) for i in np.unravel_index(j, shape))}' if shape else f'direction {j}'
        msg = (f'gradcheck failed for {what}: worst at {where}: autograd gave {analytic[j]:.10g}, '
               f'central differences gave {numeric[j]:.10g} (atol={atol}, rtol={rtol})')
        if raise_exception:
            raise GradcheckError(msg)
        return False
    return True


def gradgradcheck(fn, inputs, grad_outputs=None, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0, **kwargs):
    """Check second derivatives: gradcheck applied to x, u -> grad(<u, fn(x)>, x, create_graph=True)."""
    inputs = list(inputs)
    rng = np.random.default_rng(seed + 1)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    with enable_grad():
        ys = _as_list(fn(*inputs))
    if grad_outputs is None:
        grad_outputs = [_random_like(rng, y, requires_grad=True) for y in ys]
    grad_outputs = _as_list(grad_outputs)
    n = len(inputs)

    def first_derivative(*args):
        xs, us = list(args[:n]), list(args[n:])
        with enable_grad():                     # gradcheck evaluates us under no_grad
            ys = _as_list(fn(*xs))
            gs = grad(ys, [xs[i] for i in checked], us, create_graph=True, allow_unused=True)
        return tuple(g for g in gs if g is not None)

    return gradcheck(first_derivative, inputs + grad_outputs, eps, atol, rtol, seed, **kwargs)

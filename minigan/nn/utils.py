"""torch.nn.utils' gradient clipping: in place on each parameter's .grad, as PyTorch."""
import math

import numpy as np

from ..autograd import no_grad
from ..tensor import Tensor


def _grads(parameters):
    parameters = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p.grad for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale every gradient by max_norm / total_norm when the norm of all of them together exceeds
    max_norm; returns the total norm (a Tensor) before clipping."""
    grads = _grads(parameters)
    if not grads:
        return Tensor(0.0)
    with no_grad():
        if norm_type == math.inf:
            total = max(float(g.abs().max().item()) for g in grads)
        else:
            total = sum(float((g.abs() ** norm_type).sum().item()) for g in grads) ** (1.0 / norm_type)
        if error_if_nonfinite and not math.isfinite(total):
            raise RuntimeError(f'the total norm of order {norm_type} of the gradients is non-finite, '
                               'so it cannot be clipped')
        coef = max_norm / (total + 1e-6)
        if coef < 1:
            for g in grads:
                g.mul_(coef)
    return Tensor(np.asarray(total, dtype=grads[0].dtype))


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient element to [-clip_value, clip_value]."""
    with no_grad():
        for g in _grads(parameters):
            g.clamp_(-clip_value, clip_value)

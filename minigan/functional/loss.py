"""Losses, composed from differentiable ops (so each is twice differentiable):
cross_entropy, nll_loss, binary_cross_entropy_with_logits, binary_cross_entropy, mse_loss.

Each takes reduction='mean' (the default), 'sum' or 'none', as in PyTorch.
"""
import warnings

import numpy as np

from ..backend import get_array_module, to_device
from ..tensor import Tensor, as_tensor
from .activation import log_softmax, softplus
from .math import log
from .shape import getitem

_REDUCTIONS = ('mean', 'sum', 'none')


def _reduce(loss, reduction):
    if reduction == 'mean':
        return loss.mean()
    if reduction == 'sum':
        return loss.sum()
    return loss


def _check_reduction(reduction, op):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _check_input(x, op, name='input'):
    if not isinstance(x, Tensor):
        raise TypeError(f'{op}: {name} must be a Tensor, got {type(x).__name__}')
    if x.dtype.kind != 'f':
        raise TypeError(f'{op}: {name} must be floating point, got {x.dtype}: convert it with .float()')


def _as_target(target, x):
    """A number or array target as a Tensor with x's dtype on x's device; Tensors pass through."""
    if isinstance(target, Tensor):
        return target
    if np.isscalar(target):
        return as_tensor(target, like=x)
    arr = target if hasattr(target, 'dtype') and hasattr(target, 'shape') else np.asarray(target)
    return Tensor(arr).to(x.device, x.dtype)


def _target_like(target, x, op):
    """The target as a Tensor of x's shape, dtype and device (a Tensor target keeps its graph)."""
    target = _as_target(target, x)
    if target.shape != x.shape:
        raise ValueError(f'{op}: target size {target.shape} must be the same as input size {x.shape}')
    return target.to(x.device, x.dtype)


def _labels(labels, n, classes, device, op):
    """Class-index labels as an int64 array on `device`, checked against (N,) and [0, classes)."""
    if isinstance(labels, Tensor):
        labels = labels.array
    elif not hasattr(labels, 'dtype'):
        labels = np.asarray(labels)
    if labels.dtype.kind not in 'iu':
        raise TypeError(f'{op}: labels must hold integer class indices (int64), got {labels.dtype}')
    if labels.shape != (n,):
        raise ValueError(f'{op}: labels must have shape ({n},), one class index per row of the input, '
                         f'got {tuple(labels.shape)}')
    if n:
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= classes:
            bad = lo if lo < 0 else hi
            raise IndexError(f'{op}: label {bad} is out of range for {classes} classes: '
                             f'labels must be in [0, {classes - 1}]')
    return to_device(labels.astype(np.int64, copy=False), device)


def nll_loss(log_probs, labels, reduction='mean'):
    """-log_probs[i, labels[i]], for (N, C) log-probabilities and (N,) class indices."""
    _check_input(log_probs, 'nll_loss')
    _check_reduction(reduction, 'nll_loss')
    if log_probs.ndim != 2:
        raise ValueError(f'nll_loss takes (N, C) log-probabilities, got shape {log_probs.shape}')
    n, c = log_probs.shape
    labels = _labels(labels, n, c, log_probs.device, 'nll_loss')
    rows = get_array_module(labels).arange(n)
    return _reduce(-getitem(log_probs, (rows, labels)), reduction)


def cross_entropy(logits, labels, reduction='mean'):
    """log_softmax then nll_loss: logits (N, C), labels (N,) int class indices. Stable for any logits."""
    _check_input(logits, 'cross_entropy', 'logits')
    _check_reduction(reduction, 'cross_entropy')
    if logits.ndim != 2:
        raise ValueError(f'cross_entropy takes (N, C) logits, got shape {logits.shape}')
    return nll_loss(log_softmax(logits, 1), labels, reduction)


def binary_cross_entropy_with_logits(logits, targets, reduction='mean'):
    """-[t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))] = softplus(x) - x t: finite for any x."""
    _check_input(logits, 'binary_cross_entropy_with_logits', 'logits')
    _check_reduction(reduction, 'binary_cross_entropy_with_logits')
    targets = _target_like(targets, logits, 'binary_cross_entropy_with_logits')
    return _reduce(softplus(logits) - logits * targets, reduction)


def binary_cross_entropy(probs, targets, reduction='mean'):
    """-[t log p + (1 - t) log(1 - p)] for probabilities p in [0, 1]; each log clamped at -100, as torch.
    Prefer binary_cross_entropy_with_logits on logits: it is stable."""
    _check_input(probs, 'binary_cross_entropy', 'probs')
    _check_reduction(reduction, 'binary_cross_entropy')
    targets = _target_like(targets, probs, 'binary_cross_entropy')
    if probs.numel() and (float(probs.array.min()) < 0 or float(probs.array.max()) > 1):
        raise ValueError('binary_cross_entropy: all elements of input should be between 0 and 1 '
                         '(pass logits to binary_cross_entropy_with_logits instead)')
    log_p, log_q = _clamped_log(probs), _clamped_log(1 - probs)
    return _reduce(-(targets * log_p + (1 - targets) * log_q), reduction)


def _clamped_log(p):
    """log(p) clamped below at -100 (torch's BCE rule); gradient 0 in the clamped region, never NaN."""
    tiny = (p.array < p.dtype.type(np.exp(-100))).astype(p.dtype)
    mask = Tensor(tiny)                          # 1 where log(p) < -100: log is taken of 1 there instead
    return log(p * (1 - mask) + mask) - 100 * mask


def mse_loss(input, target, reduction='mean'):
    """(input - target)², reduced. Shapes should match; broadcasting is allowed with a warning, as torch."""
    _check_input(input, 'mse_loss')
    _check_reduction(reduction, 'mse_loss')
    target = _as_target(target, input)
    if target.shape != input.shape:
        warnings.warn(f'mse_loss: target size {target.shape} differs from input size {input.shape}; they will '
                      'be broadcast, which is likely a mistake: make the shapes equal', UserWarning, stacklevel=2)
    diff = input - target
    return _reduce(diff * diff, reduction)

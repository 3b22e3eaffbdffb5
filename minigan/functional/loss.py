"""Losses, composed from differentiable ops (so each is twice differentiable):
cross_entropy, nll_loss, binary_cross_entropy_with_logits, binary_cross_entropy, mse_loss, l1_loss.

PyTorch's signatures: each takes reduction='mean' (the default), 'sum' or 'none'; the
class losses take per-class `weight` and `ignore_index`, the binary ones an elementwise `weight`.
The deprecated size_average/reduce flags are read as PyTorch reads them.
"""
import warnings

import numpy as np

from ..backend import get_array_module, to_device
from ..tensor import Tensor, as_tensor
from .activation import log_softmax, softplus
from .math import abs, log
from .shape import getitem

_REDUCTIONS = ('mean', 'sum', 'none')


def _reduce(loss, reduction):
    if reduction == 'mean':
        return loss.mean()
    if reduction == 'sum':
        return loss.sum()
    return loss


def _legacy_reduction(size_average, reduce, reduction):
    """PyTorch's old flags: reduce=False gives 'none', else size_average=False gives 'sum'."""
    if size_average is None and reduce is None:
        return reduction
    if reduce is False:
        return 'none'
    return 'sum' if size_average is False else 'mean'


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


def _labels(labels, n, classes, device, op, ignore_index=-100):
    """Class-index labels as an int64 array on `device`, checked against (N,) and [0, classes)
    (rows labelled ignore_index are not checked)."""
    if isinstance(labels, Tensor):
        labels = labels.array
    elif not hasattr(labels, 'dtype'):
        labels = np.asarray(labels)
    if labels.dtype.kind not in 'iu':
        raise TypeError(f'{op}: labels must hold integer class indices (int64), got {labels.dtype}')
    if labels.shape != (n,):
        raise ValueError(f'{op}: labels must have shape ({n},), one class index per row of the input, '
                         f'got {tuple(labels.shape)}')
    kept = labels[labels != ignore_index]
    if kept.size:
        lo, hi = int(kept.min()), int(kept.max())
        if lo < 0 or hi >= classes:
            bad = lo if lo < 0 else hi
            raise IndexError(f'{op}: label {bad} is out of range for {classes} classes: '
                             f'labels must be in [0, {classes - 1}]')
    return to_device(labels.astype(np.int64, copy=False), device)


def _class_weights(weight, labels, ignore_index, x, op):
    """Per-row weights weight[label] (1 without weight), 0 on ignored rows; None when all are 1."""
    ignored = labels == ignore_index
    if weight is None and not bool(ignored.any()):
        return None
    xp = get_array_module(labels)
    safe = xp.where(ignored, 0, labels)
    if weight is None:
        w = xp.ones(labels.shape, x.dtype)
    else:
        w = to_device(weight.array if isinstance(weight, Tensor) else np.asarray(weight), x.device)
        if w.shape != (x.shape[1],):
            raise ValueError(f'{op}: weight must have one entry per class, shape ({x.shape[1]},), '
                             f'got {tuple(w.shape)}')
        w = w.astype(x.dtype)[safe]
    return Tensor(w * (~ignored)), safe


def _weighted_reduce(loss, row_weights, reduction):
    """PyTorch's rule for class weights: 'mean' divides by the sum of the rows' weights."""
    if row_weights is None:
        return _reduce(loss, reduction)
    loss = loss * row_weights
    if reduction == 'mean':
        return loss.sum() / row_weights.sum()
    return _reduce(loss, reduction)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction='mean'):
    """-input[i, target[i]] (times weight[target[i]]), for (N, C) log-probabilities and (N,) class indices."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_input(input, 'nll_loss')
    _check_reduction(reduction, 'nll_loss')
    if input.ndim != 2:
        raise ValueError(f'nll_loss takes (N, C) log-probabilities, got shape {input.shape}')
    n, c = input.shape
    labels = _labels(target, n, c, input.device, 'nll_loss', ignore_index)
    rows = get_array_module(labels).arange(n)
    weighted = _class_weights(weight, labels, ignore_index, input, 'nll_loss')
    if weighted is None:
        return _reduce(-getitem(input, (rows, labels)), reduction)
    row_weights, safe = weighted
    return _weighted_reduce(-getitem(input, (rows, safe)), row_weights, reduction)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction='mean', label_smoothing=0.0):
    """log_softmax then nll_loss: input (N, C) logits, target (N,) class indices. Stable for any logits.

    label_smoothing=e mixes in, with weight e, the mean over classes of -log p (PyTorch's rule)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_input(input, 'cross_entropy', 'logits')
    _check_reduction(reduction, 'cross_entropy')
    if input.ndim != 2:
        raise ValueError(f'cross_entropy takes (N, C) logits, got shape {input.shape}')
    log_p = log_softmax(input, 1)
    if not label_smoothing:
        return nll_loss(log_p, target, weight, ignore_index=ignore_index, reduction=reduction)
    if weight is not None:
        raise NotImplementedError('cross_entropy: label_smoothing together with weight is not supported; '
                                  'pass one of them')
    nll = nll_loss(log_p, target, ignore_index=ignore_index, reduction='none')
    labels = _labels(target, *input.shape, input.device, 'cross_entropy', ignore_index)
    kept = Tensor((labels != ignore_index).astype(input.dtype))
    smooth = -log_p.mean(axis=1) * kept
    loss = nll * (1 - label_smoothing) + smooth * label_smoothing
    if reduction == 'mean':
        return loss.sum() / kept.sum()
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction='mean', pos_weight=None):
    """-[t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))] = softplus(x) - x t: finite for any x.
    With pos_weight: (1 - t) x + (1 + (pos_weight - 1) t) softplus(-x)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_input(input, 'binary_cross_entropy_with_logits', 'logits')
    _check_reduction(reduction, 'binary_cross_entropy_with_logits')
    target = _target_like(target, input, 'binary_cross_entropy_with_logits')
    if pos_weight is None:
        loss = softplus(input) - input * target
    else:
        log_weight = (_as_target(pos_weight, input) - 1) * target + 1
        loss = (1 - target) * input + log_weight * softplus(-input)
    return _reduce(loss if weight is None else loss * _as_target(weight, input), reduction)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction='mean'):
    """-[t log p + (1 - t) log(1 - p)] for probabilities p in [0, 1]; each log clamped at -100, as torch.
    Prefer binary_cross_entropy_with_logits on logits: it is stable."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_input(input, 'binary_cross_entropy', 'probs')
    _check_reduction(reduction, 'binary_cross_entropy')
    target = _target_like(target, input, 'binary_cross_entropy')
    if input.numel() and (float(input.array.min()) < 0 or float(input.array.max()) > 1):
        raise ValueError('binary_cross_entropy: all elements of input should be between 0 and 1 '
                         '(pass logits to binary_cross_entropy_with_logits instead)')
    log_p, log_q = _clamped_log(input), _clamped_log(1 - input)
    loss = -(target * log_p + (1 - target) * log_q)
    return _reduce(loss if weight is None else loss * _as_target(weight, input), reduction)


def _clamped_log(p):
    """log(p) clamped below at -100 (torch's BCE rule); gradient 0 in the clamped region, never NaN."""
    tiny = (p.array < p.dtype.type(np.exp(-100))).astype(p.dtype)
    mask = Tensor(tiny)                          # 1 where log(p) < -100: log is taken of 1 there instead
    return log(p * (1 - mask) + mask) - 100 * mask


def _difference(input, target, op):
    """input - target. Shapes should match; broadcasting is allowed with a warning, as torch."""
    _check_input(input, op)
    target = _as_target(target, input)
    if target.shape != input.shape:
        warnings.warn(f'{op}: target size {target.shape} differs from input size {input.shape}; they will '
                      'be broadcast, which is likely a mistake: make the shapes equal', UserWarning, stacklevel=3)
    return input - target


def mse_loss(input, target, size_average=None, reduce=None, reduction='mean'):
    """(input - target)², reduced."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction, 'mse_loss')
    diff = _difference(input, target, 'mse_loss')
    return _reduce(diff * diff, reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction='mean'):
    """|input - target|, reduced (gradient sign(input - target), 0 where they are equal)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction, 'l1_loss')
    return _reduce(abs(_difference(input, target, 'l1_loss')), reduction)

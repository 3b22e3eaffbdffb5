"""Adam and AdamW with PyTorch's bias-corrected update (eps added after the square root):

    g     = grad + weight_decay * p            (Adam's L2; AdamW instead does p *= 1 - lr * weight_decay)
    m     = beta1 m + (1 - beta1) g
    v     = beta2 v + (1 - beta2) g^2          (amsgrad: v_max = max(v_max, v), used below)
    denom = sqrt(v) / sqrt(1 - beta2^t) + eps
    p     = p - lr / (1 - beta1^t) * m / denom
"""
from .. import kernel_table, reference
from ..backend import get_array_module
from .optimizer import Optimizer


class Adam(Optimizer):
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
                 maximize=False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def _check_hyperparameters(self, g):
        name = type(self).__name__
        self._check(g['lr'] >= 0, f'{name}: invalid learning rate lr={g["lr"]}: it must be >= 0')
        self._check(g['eps'] >= 0, f'{name}: invalid eps={g["eps"]}: it must be >= 0')
        self._check(len(g['betas']) == 2, f'{name}: betas must be a pair (beta1, beta2), got {g["betas"]}')
        for i, b in enumerate(g['betas']):
            self._check(0.0 <= b < 1.0, f'{name}: invalid beta{i + 1}={b}: it must be in [0, 1)')
        self._check(g['weight_decay'] >= 0, f'{name}: invalid weight_decay={g["weight_decay"]}: it must be >= 0')

    def _update(self, p, g, state, group):
        xp = get_array_module(p)
        lr, (beta1, beta2), eps, wd = group['lr'], group['betas'], group['eps'], group['weight_decay']
        if group['maximize']:
            g = -g
        if not state:
            state['step'] = 0
            state['exp_avg'] = xp.zeros_like(p)
            state['exp_avg_sq'] = xp.zeros_like(p)
            if group['amsgrad']:
                state['max_exp_avg_sq'] = xp.zeros_like(p)
        state['step'] += 1
        t = state['step']
        m, v = state['exp_avg'], state['exp_avg_sq']
        if group['amsgrad']:                         # no fused kernel keeps v_max: the reference runs
            if 'max_exp_avg_sq' not in state:
                state['max_exp_avg_sq'] = xp.zeros_like(p)
            reference.adam_step(p, g, m, v, lr, beta1, beta2, eps, wd, self._decoupled, t, state['max_exp_avg_sq'])
        else:
            kernel_table.adam_step(p, g, m, v, lr, beta1, beta2, eps, wd, self._decoupled, t)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p *= 1 - lr * weight_decay."""
    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
                 maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)

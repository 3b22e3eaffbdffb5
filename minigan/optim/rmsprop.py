"""RMSprop as PyTorch has it (eps outside the square root):

    g   = grad + weight_decay * p
    s   = alpha s + (1 - alpha) g^2
    avg = sqrt(s - gbar^2) + eps  with gbar = alpha gbar + (1 - alpha) g  (centered)
        = sqrt(s) + eps                                                   (otherwise)
    buf = momentum buf + g / avg;  p = p - lr buf                         (momentum > 0)
    p   = p - lr g / avg                                                  (otherwise)
"""
from .. import kernel_table
from ..backend import get_array_module
from .optimizer import Optimizer


class RMSprop(Optimizer):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 maximize=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    def _check_hyperparameters(self, g):
        self._check(g['lr'] >= 0, f'RMSprop: invalid learning rate lr={g["lr"]}: it must be >= 0')
        self._check(g['eps'] >= 0, f'RMSprop: invalid eps={g["eps"]}: it must be >= 0')
        self._check(g['momentum'] >= 0, f'RMSprop: invalid momentum={g["momentum"]}: it must be >= 0')
        self._check(g['weight_decay'] >= 0,
                    f'RMSprop: invalid weight_decay={g["weight_decay"]}: it must be >= 0')
        self._check(g['alpha'] >= 0, f'RMSprop: invalid alpha={g["alpha"]}: it must be >= 0')

    def _update(self, p, g, state, group):
        xp = get_array_module(p)
        alpha, eps, mu = group['alpha'], group['eps'], group['momentum']
        if group['maximize']:
            g = -g
        if not state:
            state['step'] = 0
            state['square_avg'] = xp.zeros_like(p)
        if mu > 0 and 'momentum_buffer' not in state:
            state['momentum_buffer'] = xp.zeros_like(p)
        if group['centered'] and 'grad_avg' not in state:
            state['grad_avg'] = xp.zeros_like(p)
        state['step'] += 1
        if not group['centered'] and mu == 0:
            kernel_table.rmsprop_step(p, g, state['square_avg'], group['lr'], alpha, eps, group['weight_decay'])
            return                                   # the formulas below, in one pass
        if group['weight_decay'] != 0:
            g = g + group['weight_decay'] * p
        s = state['square_avg']
        s *= alpha
        s += (1 - alpha) * (g * g)
        if group['centered']:
            gbar = state['grad_avg']
            gbar *= alpha
            gbar += (1 - alpha) * g
            avg = xp.sqrt(s - gbar * gbar) + eps
        else:
            avg = xp.sqrt(s) + eps
        if mu > 0:
            buf = state['momentum_buffer']
            buf *= mu
            buf += g / avg
            p -= group['lr'] * buf
        else:
            p -= group['lr'] * (g / avg)

"""SGD with optional momentum, dampening, Nesterov and L2 weight decay: PyTorch's formula.

    g   = grad + weight_decay * p
    buf = g                                   (first step)
    buf = momentum * buf + (1 - dampening) g  (later steps)
    g   = g + momentum * buf if nesterov else buf
    p   = p - lr * g
"""
from .. import kernel_table
from .optimizer import Optimizer


class SGD(Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                 maximize=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    def _check_hyperparameters(self, g):
        self._check(g['lr'] >= 0, f'SGD: invalid learning rate lr={g["lr"]}: it must be >= 0')
        self._check(g['momentum'] >= 0, f'SGD: invalid momentum={g["momentum"]}: it must be >= 0')
        self._check(g['weight_decay'] >= 0, f'SGD: invalid weight_decay={g["weight_decay"]}: it must be >= 0')
        self._check(not g['nesterov'] or (g['momentum'] > 0 and g['dampening'] == 0),
                    'SGD: nesterov=True needs momentum > 0 and dampening = 0')

    def _update(self, p, g, state, group):
        if group['maximize']:
            g = -g
        mu = group['momentum']
        if mu != 0 and group['dampening'] == 0 and not group['nesterov'] and 'momentum_buffer' in state:
            kernel_table.sgd_momentum_step(p, g, state['momentum_buffer'], group['lr'], mu, group['weight_decay'])
            return                                   # the formulas below, in one pass
        if group['weight_decay'] != 0:
            g = g + group['weight_decay'] * p
        if mu != 0:
            buf = state.get('momentum_buffer')
            if buf is None:
                buf = state['momentum_buffer'] = g.copy()
            else:
                buf *= mu
                buf += (1 - group['dampening']) * g
            g = g + mu * buf if group['nesterov'] else buf
        p -= group['lr'] * g

"""Adadelta (Zeiler, 2012), PyTorch's formula (the optimiser of PyTorch's MNIST example).

    g         = grad + weight_decay * p
    v         = rho v + (1 - rho) g²                         (square_avg)
    delta     = sqrt(u + eps) / sqrt(v + eps) * g
    u         = rho u + (1 - rho) delta²                     (acc_delta)
    p         = p - lr * delta
"""
import numpy as np

from .optimizer import Optimizer


class Adadelta(Optimizer):
    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, maximize=False):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize))

    def _check_hyperparameters(self, g):
        self._check(g['lr'] >= 0, f'Adadelta: invalid learning rate lr={g["lr"]}: it must be >= 0')
        self._check(0 <= g['rho'] <= 1, f'Adadelta: invalid rho={g["rho"]}: it must be in [0, 1]')
        self._check(g['eps'] >= 0, f'Adadelta: invalid eps={g["eps"]}: it must be >= 0')
        self._check(g['weight_decay'] >= 0, f'Adadelta: invalid weight_decay={g["weight_decay"]}: it must be >= 0')

    def _update(self, p, g, state, group):
        if group['maximize']:
            g = -g
        if group['weight_decay'] != 0:
            g = g + group['weight_decay'] * p
        if 'square_avg' not in state:
            state['step'] = 0
            state['square_avg'] = np.zeros_like(p) if isinstance(p, np.ndarray) else p * 0
            state['acc_delta'] = np.zeros_like(p) if isinstance(p, np.ndarray) else p * 0
        state['step'] += 1
        rho, eps = group['rho'], group['eps']
        v, u = state['square_avg'], state['acc_delta']
        v *= rho
        v += (1 - rho) * g * g
        delta = ((u + eps) ** 0.5) / ((v + eps) ** 0.5) * g
        u *= rho
        u += (1 - rho) * delta * delta
        p -= group['lr'] * delta

"""Optimizer base class: parameter groups, zero_grad, and PyTorch-format state dicts.

Updates change each parameter's array in place (the Parameter objects and their
arrays keep their identity), under no_grad; parameters whose .grad is None are
skipped. Per-parameter state is keyed by the parameter's position across all
groups, so ``state_dict()`` has PyTorch's layout:
``{'state': {0: {'step': 3, 'exp_avg': array, ...}, ...},
   'param_groups': [{'lr': ..., ..., 'params': [0, 1, ...]}]}``
"""
import copy
import numbers

import numpy as np

from .. import backend
from ..autograd import no_grad
from ..tensor import Tensor


class _Required:
    def __repr__(self):
        return '<required parameter>'


required = _Required()


class Optimizer:
    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = {}                      # id(param) -> dict of arrays / numbers
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError('params must be an iterable of Tensors (e.g. model.parameters()), '
                            'not a single Tensor: wrap it in a list')
        groups = list(params)
        if not groups:
            raise ValueError(f'{type(self).__name__} got an empty parameter list: '
                             'did the model register its Parameters (and was the generator already used up)?')
        if not isinstance(groups[0], dict):
            groups = [{'params': groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group):
        """Add a dict {'params': [...], option: value}; missing options take the defaults."""
        if not isinstance(group, dict):
            raise TypeError(f'a parameter group must be a dict, got {type(group).__name__}')
        group = dict(group)
        params = group['params']
        params = [params] if isinstance(params, Tensor) else list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f'{type(self).__name__} can only optimise Tensors, '
                                f'but parameter {i} is a {type(p).__name__}')
            if p.creator is not None:
                raise ValueError(f'parameter {i} is not a leaf tensor (it was computed from others): '
                                 'optimise the leaf, or detach() it and requires_grad_() the copy')
            if p.dtype.kind != 'f':
                raise TypeError(f'parameter {i} has dtype {p.dtype}: only floating-point tensors can be optimised')
        group['params'] = params
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f'parameter group didn\'t specify a value of required option {name!r}')
            group.setdefault(name, default)
        self._check_hyperparameters(group)
        seen = {id(p) for g in self.param_groups for p in g['params']}
        if len({id(p) for p in params}) != len(params) or seen & {id(p) for p in params}:
            raise ValueError('some parameters appear more than once (in a group or across groups): '
                             'each parameter may be listed only once')
        self.param_groups.append(group)

    def _check_hyperparameters(self, group):
        """Subclasses check their options here and raise ValueError naming the bad one."""

    @staticmethod
    def _check(cond, message):
        if not cond:
            raise ValueError(message)

    # ---- the update ------------------------------------------------------
    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns closure() if given."""
        loss = None
        if closure is not None:
            from ..autograd import enable_grad
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for p in group['params']:
                    if p.grad is None:
                        continue
                    g = p.grad.array
                    if g.shape != p.array.shape:
                        raise RuntimeError(f'a parameter of shape {p.shape} has a gradient of shape {g.shape}')
                    if backend.device_of(g) != p.device:
                        raise RuntimeError(f'a parameter on {p.device} has its gradient on '
                                           f'{backend.device_of(g)}: move the model before training')
                    state = self.state.setdefault(id(p), {})
                    self._update(p.array, g.astype(p.dtype, copy=False), state, group)
        return loss

    def _update(self, p, g, state, group):
        """Change array p in place given gradient array g; state is this parameter's dict."""
        raise NotImplementedError

    def zero_grad(self, set_to_none=True):
        """Clear every parameter's .grad (to None by default, as PyTorch does)."""
        for group in self.param_groups:
            for p in group['params']:
                if p.grad is not None:
                    p.grad = None if set_to_none else Tensor(p.grad.array * 0)

    # ---- state dict ------------------------------------------------------
    def _all_params(self):
        return [p for g in self.param_groups for p in g['params']]

    def state_dict(self):
        """{'state': {index: {name: NumPy copy or number}}, 'param_groups': [{options, 'params': [index]}]}."""
        index = {id(p): i for i, p in enumerate(self._all_params())}
        state = {}
        for p in self._all_params():
            if id(p) in self.state and self.state[id(p)]:
                state[index[id(p)]] = {k: (backend.to_device(v, 'cpu').copy() if hasattr(v, 'shape') else v)
                                       for k, v in self.state[id(p)].items()}
        groups = []
        for g in self.param_groups:
            entry = {k: copy.deepcopy(v) for k, v in g.items() if k != 'params'}
            entry['params'] = [index[id(p)] for p in g['params']]
            groups.append(entry)
        return {'state': state, 'param_groups': groups}

    def load_state_dict(self, state_dict):
        """Restore options and per-parameter state (copies, cast to each parameter's dtype and device).

        Accepts this class's state_dict(), and a PyTorch optimizer's of the same kind
        (values may be NumPy arrays, minigan Tensors or torch tensors)."""
        if not isinstance(state_dict, dict) or 'state' not in state_dict or 'param_groups' not in state_dict:
            raise ValueError("an optimizer state_dict is a dict with keys 'state' and 'param_groups'")
        saved_groups = state_dict['param_groups']
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f'the state_dict has {len(saved_groups)} parameter groups, '
                             f'this optimizer has {len(self.param_groups)}')
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved['params']) != len(group['params']):
                raise ValueError(f'parameter group {i} has {len(saved["params"])} parameters in the state_dict '
                                 f'but {len(group["params"])} in this optimizer')
        params = self._all_params()
        saved_ids = [k for g in saved_groups for k in g['params']]
        by_saved_id = dict(zip(saved_ids, params))
        new_state = {}
        for key, entries in state_dict['state'].items():
            key = int(key)
            if key not in by_saved_id:
                raise ValueError(f'the state_dict has state for parameter {key}, '
                                 'which none of its param_groups lists')
            p = by_saved_id[key]
            new_state[id(p)] = {name: _restore(value, p, name) for name, value in entries.items()}
        for saved, group in zip(saved_groups, self.param_groups):
            for k, v in saved.items():
                if k != 'params':
                    group[k] = copy.deepcopy(v)
        self.state = new_state

    def __repr__(self):
        lines = [f'{type(self).__name__} (']
        for i, g in enumerate(self.param_groups):
            lines.append(f'Parameter Group {i}')
            for k in sorted(g):
                if k != 'params':
                    lines.append(f'    {k}: {g[k]}')
        lines.append(')')
        return '\n'.join(lines)


def _restore(value, p, name):
    """A state entry for parameter p: arrays become copies with p's dtype and device; numbers stay numbers."""
    if isinstance(value, Tensor):
        value = value.array
    elif hasattr(value, 'detach') and hasattr(value, 'cpu'):        # a torch tensor
        value = value.detach().cpu().numpy()
    if name == 'step':                                             # torch keeps step as a tensor
        return int(np.asarray(backend.to_device(value, 'cpu')).item()) \
            if hasattr(value, 'shape') else int(value)
    if value is None or isinstance(value, numbers.Number):
        return value
    if tuple(value.shape) != p.shape:
        raise ValueError(f'state {name!r} has shape {tuple(value.shape)} but its parameter has shape {p.shape}')
    src = value if backend.is_cupy_array(value) else np.asarray(value)
    return backend.to_device(src, p.device).astype(p.dtype, copy=True)

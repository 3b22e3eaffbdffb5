"""Sequential and ModuleList: modules held in order, named "0", "1", ... as in PyTorch."""
import operator
from collections import OrderedDict

from .module import Module


class Sequential(Module):
    """Calls its modules one after another: Sequential(m0, m1, ...) or Sequential(OrderedDict(name=m)).

    Indexable (seq[0], seq[-1], seq[1:3] gives a Sequential), len(), iteration; children are
    named "0", "1", ... so state_dict keys read "0.weight", "1.running_mean", ...
    """

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, m in args[0].items():
                self.add_module(name, _check_module(m, name))
        else:
            for i, m in enumerate(args):
                self.add_module(str(i), _check_module(m, i))

    def _index(self, idx):
        n = len(self._modules)
        try:
            idx = operator.index(idx)
        except TypeError:
            raise TypeError(f'{type(self).__name__} indices must be integers or slices, '
                            f'not {type(idx).__name__}') from None
        if not -n <= idx < n:
            raise IndexError(f'index {idx} is out of range for a {type(self).__name__} of length {n}')
        return idx % n

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return Sequential(OrderedDict(list(self._modules.items())[idx]))   # keeps the names
        return list(self._modules.values())[self._index(idx)]

    def __setitem__(self, idx, module):
        key = list(self._modules.keys())[self._index(idx)]
        self._modules[key] = _check_module(module, key)

    def __delitem__(self, idx):
        if isinstance(idx, slice):
            for key in list(self._modules.keys())[idx]:
                del self._modules[key]
        else:
            del self._modules[list(self._modules.keys())[self._index(idx)]]
        # renumber so the names stay "0", "1", ... as PyTorch does
        items = list(self._modules.values())
        self._modules.clear()
        for i, m in enumerate(items):
            self._modules[str(i)] = m

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self)), _check_module(module, len(self)))
        return self

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x


class ModuleList(Module):
    """A list of modules that registers them (so their parameters are found); it has no forward."""

    def __init__(self, modules=None):
        super().__init__()
        for m in (modules or []):
            self.append(m)

    def __getitem__(self, idx):
        items = list(self._modules.values())
        if isinstance(idx, slice):
            return ModuleList(items[idx])
        return items[idx]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self)), _check_module(module, len(self)))
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self


def _check_module(m, name):
    if not isinstance(m, Module):
        raise TypeError(f'element {name!r} is a {type(m).__name__}, not an nn.Module '
                        '(did you pass a function? wrap it in a Module)')
    return m

"""mg.save / mg.load: state dicts and other nested containers in a safe file format.

The file is a NumPy .npz archive: every array in its own entry, and one entry `__minigan__`
holding JSON that describes the structure (dicts, lists, tuples, numbers, strings, None, and
where each array or Tensor goes). It is read with allow_pickle=False, so loading a file can
never run code. These are not PyTorch's .pt/.pth files (those are pickles): load refuses them,
and anything else it did not write, with one clear message.
"""
import collections
import io
import json
import os

import numpy as np

from . import backend
from .tensor import Tensor

_FORMAT, _VERSION = 'minigan.save', 1
_KEY = '__minigan__'


class UnsupportedFileError(ValueError, RuntimeError):
    """A file mg.load cannot read: not written by mg.save (a PyTorch .pth, a pickle, ...)."""


def save(obj, f):
    """Write obj (a state dict, an optimizer's state, nested dicts/lists/tuples of Tensors, arrays,
    numbers, strings and None) to the path or binary file object f."""
    arrays = {}
    structure = _encode(obj, arrays, 'obj')
    header = json.dumps({'format': _FORMAT, 'version': _VERSION, 'object': structure})
    arrays[_KEY] = np.array(header)
    if isinstance(f, (str, os.PathLike)):
        with open(f, 'wb') as fh:              # opened here: np.savez would append ".npz" to a name
            np.savez(fh, **arrays)
    else:
        np.savez(f, **arrays)


def _encode(obj, arrays, where):
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, float)) and not isinstance(obj, np.generic):
        return obj
    if isinstance(obj, Tensor):
        from .nn.module import Parameter
        return {'tensor': _store(obj.array, arrays), 'requires_grad': obj.requires_grad,
                'parameter': isinstance(obj, Parameter)}
    if isinstance(obj, np.generic):
        return {'scalar': _store(np.asarray(obj), arrays)}
    if isinstance(obj, np.ndarray) or backend.is_cupy_array(obj):
        return {'ndarray': _store(obj, arrays)}
    if isinstance(obj, dict):
        kind = 'ordered_dict' if isinstance(obj, collections.OrderedDict) else 'dict'
        return {kind: [[_encode(k, arrays, f'{where} key'), _encode(v, arrays, f'{where}[{k!r}]')]
                       for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        kind = 'list' if isinstance(obj, list) else 'tuple'
        return {kind: [_encode(v, arrays, f'{where}[{i}]') for i, v in enumerate(obj)]}
    raise TypeError(f'mg.save cannot store {where}, a {type(obj).__name__}: it saves Tensors, NumPy arrays, '
                    'numbers, strings, None and dicts/lists/tuples of them (for a model, save model.state_dict())')


def _store(array, arrays):
    key = f'a{len(arrays)}'
    array = np.asarray(backend.to_device(array, 'cpu'))
    if array.dtype.kind not in 'biufc':
        raise TypeError(f'mg.save stores arrays of numbers only, not dtype {array.dtype}')
    arrays[key] = array
    return key


def load(f, map_location=None, weights_only=None):
    """Read what save wrote. map_location ("cpu", "cuda", a mg.device, a {from: to} dict) moves every array there;
    weights_only is accepted for PyTorch's scripts (minigan files never hold code anyway)."""
    name = f if isinstance(f, (str, os.PathLike)) else getattr(f, 'name', 'the file')
    try:
        source = f if not isinstance(f, (str, os.PathLike)) else open(f, 'rb')
    except OSError as e:
        raise FileNotFoundError(f'mg.load: cannot open {name}: {e.strerror}') from e
    try:
        data = source.read()
    finally:
        if source is not f:
            source.close()
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            header = json.loads(str(archive[_KEY][()]))
            if header.get('format') != _FORMAT:
                raise KeyError(_KEY)
            arrays = {k: archive[k] for k in archive.files if k != _KEY}
    except Exception as e:
        raise UnsupportedFileError(
            f'mg.load: {name} is not a file written by mg.save (an .npz archive with a JSON structure); '
            'minigan never unpickles, so PyTorch .pt/.pth files and pickles cannot be read: load those '
            'with torch and pass the tensors to model.load_state_dict(), which accepts them') from e
    if header.get('version', 0) > _VERSION:
        raise UnsupportedFileError(f'mg.load: {name} was written by a newer minigan (format version '
                                   f'{header["version"]}): update minigan to read it')
    return _decode(header['object'], arrays, _target_device(map_location))


def _target_device(map_location):
    """None (arrays stay on the host, as saved) for None and for PyTorch's `lambda storage, loc: storage`;
    a dict {from: to} maps everything to its one target; else a device name or mg.device."""
    if map_location is None or callable(map_location) and not isinstance(map_location, str):
        return None
    if isinstance(map_location, dict):
        targets = {backend.check_device(v) for v in map_location.values()}
        return targets.pop() if len(targets) == 1 else None
    return backend.check_device(map_location)


def _decode(node, arrays, device):
    if not isinstance(node, (dict, list)):
        return node
    if 'tensor' in node:
        array = _array(arrays[node['tensor']], device)
        if node.get('parameter'):
            from .nn.module import Parameter
            return Parameter(array, requires_grad=node['requires_grad'])
        return Tensor(array, requires_grad=node['requires_grad'])
    if 'ndarray' in node:
        return _array(arrays[node['ndarray']], device)
    if 'scalar' in node:
        return arrays[node['scalar']][()]
    if 'list' in node:
        return [_decode(v, arrays, device) for v in node['list']]
    if 'tuple' in node:
        return tuple(_decode(v, arrays, device) for v in node['tuple'])
    kind = collections.OrderedDict if 'ordered_dict' in node else dict
    items = node.get('ordered_dict', node.get('dict'))
    return kind((_hashable(_decode(k, arrays, device)), _decode(v, arrays, device)) for k, v in items)


def _hashable(key):
    return tuple(key) if isinstance(key, list) else key


def _array(array, device):
    return array if device is None else backend.to_device(array, device)

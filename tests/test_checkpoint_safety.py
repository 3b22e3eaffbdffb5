"""Checkpoints: never NaN, never a traceback for a bad one, and a fallback to the newest usable one."""
import json
import zipfile

import numpy as np
import pytest

import minigan.nn as nn
from minigan import checkpoint, errors
from minigan.errors import CheckpointError, NonFiniteError


def _state(step, value=0.5):
    return {'step': step, 'G': {'weight': np.full((3, 2), value, np.float32)}, 'note': 'x'}


def test_save_refuses_non_finite_arrays_and_writes_nothing(tmp_path):
    path = tmp_path / 'latest.npz'
    checkpoint.save(path, _state(1))
    with pytest.raises(NonFiniteError, match=r'G\.weight'):
        checkpoint.save(path, _state(2, np.nan))
    assert checkpoint.load(path)['step'] == 1
    assert errors.exit_code(NonFiniteError('x')) == errors.NON_FINITE == 3


def test_find_latest_passes_over_nan_and_damaged_checkpoints_saying_so(tmp_path):
    run = str(tmp_path)
    checkpoint.save(checkpoint.epoch_path(run, 1), _state(6))
    checkpoint.save(checkpoint.epoch_path(run, 2), _state(12))
    checkpoint.save(checkpoint.latest_path(run), _state(14, np.inf), allow_non_finite=True)
    said = []
    path, state = checkpoint.load_latest(run, say=said.append)
    assert path == checkpoint.epoch_path(run, 2) and state['step'] == 12
    assert len(said) == 1 and 'latest.npz holds NaN or infinite values (G.weight)' in said[0]
    assert said[0].endswith(f'using {checkpoint.epoch_path(run, 2)} instead')
    with open(checkpoint.epoch_path(run, 2), 'r+b') as f:          # cut the newest epoch file short
        f.truncate(100)
    said.clear()
    assert checkpoint.find_latest(run, say=said.append) == checkpoint.epoch_path(run, 1)
    assert 'epoch_002.npz cannot be read' in said[0]
    checkpoint.save(checkpoint.epoch_path(run, 1), _state(6, np.nan), allow_non_finite=True)
    said.clear()
    assert checkpoint.find_latest(run, say=said.append) is None
    assert 'no other checkpoint to fall back on' in said[0]
    assert checkpoint.has_checkpoint(run)


def _rewrite_meta(path, meta_text):
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    arrays['__meta__'] = np.array(meta_text)
    np.savez(path, **arrays)


@pytest.mark.parametrize('meta,match', [
    ('{not json', 'unreadable metadata'),
    ('[1, 2]', 'metadata minigan did not write'),
    (json.dumps({'format': 1, 'state': {'__tensor__': 'a99'}}), 'does not match its arrays'),
    (json.dumps({'format': 1, 'state': {'__what__': 1}}), 'unknown entry'),
    (json.dumps({'format': 7, 'state': {}}), 'format 7'),
])
def test_bad_metadata_is_a_checkpoint_error_naming_the_file(tmp_path, meta, match):
    path = tmp_path / 'c.npz'
    checkpoint.save(path, _state(1))
    _rewrite_meta(path, meta)
    with pytest.raises(CheckpointError, match=match) as err:
        checkpoint.load(path)
    assert str(path) in str(err.value) and errors.exit_code(err.value) == errors.CHECKPOINT == 5


def test_not_a_checkpoint_missing_keys_and_wrong_shapes(tmp_path):
    path = tmp_path / 'c.npz'
    with zipfile.ZipFile(path, 'w') as z:
        z.writestr('x.txt', 'hello')
    with pytest.raises(CheckpointError, match='not a minigan checkpoint'):
        checkpoint.load(path)
    with pytest.raises(checkpoint.CheckpointNotFound, match='no checkpoint at'):
        checkpoint.load(tmp_path / 'none.npz')
    with pytest.raises(CheckpointError, match='lacks D, opt_d'):
        checkpoint.require({'G': {}}, ['G', 'D', 'opt_d'], 'c.npz')
    net = nn.Linear(3, 2)
    with pytest.raises(CheckpointError, match=r"the G weights in c\.npz do not fit .*shape mismatch for 'weight'"):
        checkpoint.load_weights(net, {'weight': np.zeros((4, 3)), 'bias': np.zeros(2)}, 'c.npz', 'G')
    checkpoint.load_weights(net, {'weight': np.ones((2, 3)), 'bias': np.zeros(2)}, 'c.npz', 'G')
    np.testing.assert_array_equal(net.weight.numpy(), np.ones((2, 3)))


def test_exit_codes_are_distinct_and_documented():
    codes = [errors.OK, errors.INTERNAL, errors.USAGE, errors.NON_FINITE, errors.DATA, errors.CHECKPOINT,
             errors.BUSY, errors.WRITE, errors.INTERRUPTED, errors.TERMINATED]
    assert len(set(codes)) == len(codes)
    for code in codes:
        assert f'\n    {code:<4} ' in errors.__doc__, code

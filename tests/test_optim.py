"""minigan.optim against the update rules of torch.optim's documentation written out in NumPy, and
against torch.optim itself, step for step.

Problem: a small random least-squares fit with a quartic penalty,
    loss(W, b) = mean((X W^T + b - Y)^2) + 0.1 sum(W^4),
X (8, 5), Y (8, 3), W (3, 5), b (3,), seeded. minigan and the reference (the `reference`
fixture: NumPy, or PyTorch where installed) start from the same weights, take ten steps, and the
weights must agree after every step to rtol 1e-6 in float64 (1e-4 in float32). A mid-way
state_dict round trip must not change the path.
"""
import numpy as np
import pytest

import minigan as mg
import minigan.optim as optim
from conftest import to_numpy

CONFIGS = [
    ('SGD', dict(lr=0.05)),
    ('SGD', dict(lr=0.05, momentum=0.9)),
    ('SGD', dict(lr=0.05, momentum=0.9, weight_decay=0.1)),
    ('SGD', dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01)),
    ('SGD', dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05)),
    ('SGD', dict(lr=0.05, weight_decay=0.2, maximize=False)),
    ('Adam', dict(lr=0.01)),
    ('Adam', dict(lr=2e-3, betas=(0.5, 0.999))),
    ('Adam', dict(lr=1e-2, betas=(0.0, 0.9), eps=1e-6, weight_decay=0.1)),
    ('Adam', dict(lr=1e-2, amsgrad=True)),
    ('Adam', dict(lr=1e-2, eps=0.1)),               # a large eps: where it is added matters
    ('AdamW', dict(lr=1e-2, weight_decay=0.1)),
    ('RMSprop', dict(lr=1e-2)),
    ('RMSprop', dict(lr=5e-3, alpha=0.9, eps=1e-6, weight_decay=0.1)),
    ('RMSprop', dict(lr=5e-3, momentum=0.9)),
    ('RMSprop', dict(lr=5e-3, eps=0.1)),
    ('RMSprop', dict(lr=5e-3, momentum=0.5, centered=True, weight_decay=0.01)),
]
IDS = [f'{name}-' + '-'.join(f'{k}={v}' for k, v in kw.items()) for name, kw in CONFIGS]


def make_problem(seed, dtype):
    rng = np.random.default_rng(seed)
    return {'X': rng.standard_normal((8, 5)).astype(dtype), 'Y': rng.standard_normal((8, 3)).astype(dtype),
            'W': rng.standard_normal((3, 5)).astype(dtype) * 0.5, 'b': rng.standard_normal(3).astype(dtype)}


def loss_fn(X, Y, W, b):          # the same expression in both libraries
    r = X @ W.T + b - Y
    return (r * r).mean() + 0.1 * (W * W * W * W).sum()


def numpy_grads(X, Y, W, b):
    """loss_fn's gradients by hand: r = X W^T + b - Y; dW = 2 r^T X / r.size + 0.4 W^3, db = 2 sum_rows r / r.size."""
    r = X @ W.T + b - Y
    return [2 * r.T @ X / r.size + 0.4 * W ** 3, 2 * r.sum(0) / r.size]


# torch.optim's update rules as its documentation states them; `st` is one parameter's state,
# under torch's names, so that state_dicts can be compared entry by entry
def sgd(p, g, st, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False, maximize=False):
    g = (-g if maximize else g) + weight_decay * p
    if momentum:
        buf = st.get('momentum_buffer')
        st['momentum_buffer'] = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
        g = g + momentum * st['momentum_buffer'] if nesterov else st['momentum_buffer']
    else:
        st['momentum_buffer'] = None
    p -= lr * g


def adam(p, g, st, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, decoupled=False):
    if decoupled:                                   # AdamW: the decay shrinks the weights directly
        p *= 1 - lr * weight_decay
    else:
        g = g + weight_decay * p
    (b1, b2), t = betas, st.get('step', 0) + 1
    st['step'] = t
    st['exp_avg'] = b1 * st.get('exp_avg', 0) + (1 - b1) * g
    st['exp_avg_sq'] = b2 * st.get('exp_avg_sq', 0) + (1 - b2) * g * g
    v = st['exp_avg_sq']
    if amsgrad:
        v = st['max_exp_avg_sq'] = np.maximum(st.get('max_exp_avg_sq', 0), v)
    p -= lr / (1 - b1 ** t) * st['exp_avg'] / (np.sqrt(v) / np.sqrt(1 - b2 ** t) + eps)


def adamw(p, g, st, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
    adam(p, g, st, lr, betas, eps, weight_decay, amsgrad, decoupled=True)


def rmsprop(p, g, st, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False):
    g = g + weight_decay * p
    st['step'] = st.get('step', 0) + 1
    st['square_avg'] = alpha * st.get('square_avg', 0) + (1 - alpha) * g * g
    v = st['square_avg']
    if centered:
        st['grad_avg'] = alpha * st.get('grad_avg', 0) + (1 - alpha) * g
        v = v - st['grad_avg'] ** 2
    step = g / (np.sqrt(v) + eps)
    if momentum:
        step = st['momentum_buffer'] = momentum * st.get('momentum_buffer', 0) + step
    p -= lr * step


NUMPY_RULES = {'SGD': sgd, 'Adam': adam, 'AdamW': adamw, 'RMSprop': rmsprop}


class Pair:
    """The same problem and optimiser in minigan and in the reference: NumPy (torch=None) or torch."""

    def __init__(self, name, kw, dtype=np.float64, device='cpu', seed=0, torch=None):
        prob = make_problem(seed, dtype)
        self.mX = mg.tensor(prob['X']).to(device)
        self.mY = mg.tensor(prob['Y']).to(device)
        self.mp = [mg.tensor(prob['W'], requires_grad=True, device=device),
                   mg.tensor(prob['b'], requires_grad=True, device=device)]
        self.name, self.kw, self.torch = name, kw, torch
        self.mopt = getattr(optim, name)(self.mp, **kw)
        if torch is None:
            self.X, self.Y = prob['X'], prob['Y']
            self.tp = [prob['W'].copy(), prob['b'].copy()]
            self.np_state = [{}, {}]
        else:
            self.tX, self.tY = torch.from_numpy(prob['X']), torch.from_numpy(prob['Y'])
            self.tp = [torch.tensor(prob['W'], requires_grad=True), torch.tensor(prob['b'], requires_grad=True)]
            self.topt = getattr(torch.optim, name)(self.tp, **kw)

    def step_minigan(self):
        self.mopt.zero_grad()
        loss_fn(self.mX, self.mY, *self.mp).backward()
        self.mopt.step()

    def step_torch(self):
        """One step of the reference."""
        if self.torch is None:
            for p, g, st in zip(self.tp, numpy_grads(self.X, self.Y, *self.tp), self.np_state):
                NUMPY_RULES[self.name](p, g.astype(p.dtype), st, **self.kw)
            return
        self.topt.zero_grad()
        loss_fn(self.tX, self.tY, *self.tp).backward()
        self.topt.step()

    def reference_state(self):
        """The reference's per-parameter state, as {index: {name: array or number}}."""
        if self.torch is None:
            return dict(enumerate(self.np_state))
        return {i: {k: (v if v is None or k == 'step' else v.numpy()) for k, v in e.items()}
                for i, e in self.topt.state_dict()['state'].items()}

    def assert_close(self, rtol, what):
        for i, (m, t) in enumerate(zip(self.mp, self.tp)):
            np.testing.assert_allclose(to_numpy(m), to_numpy(t), rtol=rtol, atol=rtol * 1e-2,
                                       err_msg=f'{self.name} {self.kw} param {i} {what}')


@pytest.mark.parametrize('name,kw', CONFIGS, ids=IDS)
def test_ten_steps_float64(name, kw, device, reference):
    pair = Pair(name, kw, np.float64, device, torch=reference)
    data_ids = [id(p.array) for p in pair.mp]
    for step in range(10):
        pair.step_minigan()
        pair.step_torch()
        pair.assert_close(1e-6, f'after step {step + 1}')
    # the update is in place: the Parameter objects keep their arrays
    assert [id(p.array) for p in pair.mp] == data_ids
    # and the weights did move
    assert not np.allclose(to_numpy(pair.mp[0]), make_problem(0, np.float64)['W'])


@pytest.mark.parametrize('name,kw', [CONFIGS[2], CONFIGS[7], CONFIGS[-1]], ids=[IDS[2], IDS[7], IDS[-1]])
def test_ten_steps_float32(name, kw, device, reference):
    pair = Pair(name, kw, np.float32, device, seed=1, torch=reference)
    for step in range(10):
        pair.step_minigan()
        pair.step_torch()
    pair.assert_close(1e-4, 'after 10 steps (float32)')
    assert pair.mp[0].dtype == np.float32


@pytest.mark.parametrize('name,kw', CONFIGS, ids=IDS)
def test_state_dict_round_trip_midway(name, kw, reference):
    """5 steps, state_dict, a fresh optimiser (other lr) loads it, 5 more steps == the reference's 10 steps."""
    pair = Pair(name, kw, np.float64, seed=2, torch=reference)
    for _ in range(5):
        pair.step_minigan()
        pair.step_torch()
    sd = pair.mopt.state_dict()
    assert sorted(sd) == ['param_groups', 'state']
    assert sd['param_groups'][0]['params'] == [0, 1]
    assert sd['param_groups'][0]['lr'] == kw['lr']
    assert set(sd['state']) <= {0, 1}
    # the keys of each parameter's state are torch's, and the values the reference's
    tsd = pair.reference_state()
    for i, entry in sd['state'].items():
        assert set(entry) == set(tsd[i]), (entry.keys(), tsd[i].keys())
        for k, v in entry.items():
            if k == 'step':
                assert v == int(tsd[i][k])
            elif v is not None:
                np.testing.assert_allclose(v, tsd[i][k], rtol=1e-6, atol=1e-12)
    snapshot = {i: {k: np.array(v, copy=True) for k, v in e.items() if v is not None} for i, e in sd['state'].items()}

    pair.mopt = getattr(optim, name)(pair.mp, **{**kw, 'lr': 123.0})
    pair.mopt.load_state_dict(sd)
    assert pair.mopt.param_groups[0]['lr'] == kw['lr']
    for _ in range(5):
        pair.step_minigan()
        pair.step_torch()
        pair.assert_close(1e-6, 'after the round trip')
    # state_dict() returned copies: stepping on did not change them
    for i, e in snapshot.items():
        for k, v in e.items():
            np.testing.assert_array_equal(np.asarray(sd['state'][i][k]), v)


@pytest.mark.parametrize('name,kw', [CONFIGS[1], CONFIGS[8], CONFIGS[-1]], ids=[IDS[1], IDS[8], IDS[-1]])
def test_load_torch_state_dict_and_back(name, kw, torch):
    """A torch optimiser's state_dict loads into minigan's and the reverse, mid-training."""
    pair = Pair(name, kw, np.float64, seed=3, torch=torch)
    for _ in range(4):
        pair.step_minigan()
        pair.step_torch()
    # torch -> minigan: a fresh minigan optimiser picks up torch's buffers
    pair.mopt = getattr(optim, name)(pair.mp, **kw)
    pair.mopt.load_state_dict(pair.topt.state_dict())
    for _ in range(3):
        pair.step_minigan()
        pair.step_torch()
    pair.assert_close(1e-6, 'after loading torch state')
    # minigan -> torch
    sd = pair.mopt.state_dict()
    tsd = {'param_groups': sd['param_groups'],
           'state': {i: {k: (torch.tensor(float(v), dtype=torch.float32) if k == 'step' else torch.from_numpy(v))
                         for k, v in e.items()} for i, e in sd['state'].items()}}
    pair.topt = getattr(torch.optim, name)(pair.tp, **kw)
    pair.topt.load_state_dict(tsd)
    for _ in range(3):
        pair.step_minigan()
        pair.step_torch()
    pair.assert_close(1e-6, 'after torch loaded minigan state')


def test_param_groups_match_torch(torch):
    prob = make_problem(4, np.float64)
    mW, mb = mg.tensor(prob['W'], requires_grad=True), mg.tensor(prob['b'], requires_grad=True)
    tW, tb = torch.tensor(prob['W'], requires_grad=True), torch.tensor(prob['b'], requires_grad=True)
    mopt = optim.Adam([{'params': [mW]}, {'params': [mb], 'lr': 0.1, 'betas': (0.5, 0.9)}], lr=0.01)
    topt = torch.optim.Adam([{'params': [tW]}, {'params': [tb], 'lr': 0.1, 'betas': (0.5, 0.9)}], lr=0.01)
    X, Y = prob['X'], prob['Y']
    for _ in range(10):
        for opt, ps, lib in ((mopt, (mW, mb), mg), (topt, (tW, tb), torch)):
            opt.zero_grad()
            loss_fn(lib.tensor(X), lib.tensor(Y), *ps).backward()
            opt.step()
    np.testing.assert_allclose(mW.numpy(), tW.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(mb.numpy(), tb.detach().numpy(), rtol=1e-6)
    assert mopt.state_dict()['param_groups'][1]['params'] == [1]


@pytest.mark.parametrize('name', ['SGD', 'Adam', 'RMSprop'])
def test_parameters_without_grad_are_skipped(name):
    rng = np.random.default_rng(5)
    used = mg.tensor(rng.standard_normal(4), requires_grad=True)
    unused = mg.tensor(rng.standard_normal(3), requires_grad=True)
    before = unused.numpy()
    opt = getattr(optim, name)([used, unused], lr=0.1, momentum=0.9) if name != 'Adam' else \
        optim.Adam([used, unused], lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        (used * used).sum().backward()
        opt.step()
    np.testing.assert_array_equal(unused.numpy(), before)
    assert unused.grad is None
    assert list(opt.state_dict()['state']) == [0]


def test_zero_grad_sets_none():
    w = mg.tensor(np.random.default_rng(6).standard_normal(3), requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    (w * w).sum().backward()
    assert w.grad is not None
    opt.zero_grad()
    assert w.grad is None


def test_accepts_a_generator_of_parameters():
    rng = np.random.default_rng(7)
    ps = [mg.tensor(rng.standard_normal(2), requires_grad=True) for _ in range(3)]
    opt = optim.SGD((p for p in ps), lr=0.1)
    assert [id(p) for p in opt.param_groups[0]['params']] == [id(p) for p in ps]


@pytest.mark.parametrize('make,match', [
    (lambda p: optim.SGD(p, lr=-0.1), 'learning rate'),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-1), 'momentum'),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1), 'weight_decay'),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), 'nesterov'),
    (lambda p: optim.Adam(p, lr=-1e-3), 'learning rate'),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), 'beta1'),
    (lambda p: optim.Adam(p, betas=(0.9, -0.1)), 'beta2'),
    (lambda p: optim.Adam(p, eps=-1e-8), 'eps'),
    (lambda p: optim.RMSprop(p, alpha=-0.5), 'alpha'),
    (lambda p: optim.RMSprop(p, eps=-1.0), 'eps'),
    (lambda p: optim.SGD([], lr=0.1), 'empty parameter list'),
    (lambda p: optim.SGD(p + p, lr=0.1), 'more than once'),
])
def test_bad_hyperparameters_raise(make, match):
    p = [mg.tensor(np.ones(2), requires_grad=True)]
    with pytest.raises(ValueError, match=match):
        make(p)


def test_load_state_dict_rejects_mismatched_groups():
    rng = np.random.default_rng(8)
    a, b = (mg.tensor(rng.standard_normal(2), requires_grad=True) for _ in range(2))
    opt = optim.Adam([a, b])
    (a * b).sum().backward()
    opt.step()
    with pytest.raises(ValueError, match='parameters'):
        optim.Adam([a]).load_state_dict(opt.state_dict())
    c = mg.tensor(rng.standard_normal(5), requires_grad=True)
    with pytest.raises(ValueError, match='shape'):
        optim.Adam([c, b]).load_state_dict(opt.state_dict())

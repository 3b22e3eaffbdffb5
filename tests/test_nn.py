"""minigan.nn: Module mechanics, state dicts against torch, default initialisation, and each layer
against its torch.nn twin (forward and parameter gradients, float64 rtol 1e-6, float32 rtol 1e-4)."""
import math
from collections import OrderedDict

import numpy as np
import pytest

import minigan as mg
import minigan.nn as nn
import minigan.nn.functional as F
from minigan.nn import init
from conftest import optional_torch, to_numpy

torch = optional_torch()        # None without PyTorch: the twins below are built only by tests that take
tnn = torch.nn if torch else None   # the `torch` fixture, which skips them, saying why, when it is missing


# ---------------------------------------------------------------------------------------------
# helpers
def copy_torch_to_minigan(tmod, mmod):
    mmod.load_state_dict({k: v.detach().numpy() for k, v in tmod.state_dict().items()})


def copy_minigan_to_torch(mmod, tmod):
    tmod.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in mmod.state_dict().items()})


def assert_state_equal(mmod, tmod, rtol=0.0, atol=0.0):
    msd, tsd = mmod.state_dict(), tmod.state_dict()
    assert list(msd) == list(tsd)
    for k in tsd:
        assert msd[k].shape == tuple(tsd[k].shape), k
        np.testing.assert_allclose(msd[k], tsd[k].numpy(), rtol=rtol, atol=atol, err_msg=k)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.scale = nn.Parameter(mg.ones(3))
        self.register_buffer('steps', mg.zeros(1))
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x):
        return self.act(self.bn(self.conv(x))) * self.scale.reshape(1, 3, 1, 1)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5), nn.ReLU(), nn.Dropout(0.3))


def torch_net():
    """Net's torch twin (classes made on call: torch.nn exists only where PyTorch is installed)."""
    class TorchBlock(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv = tnn.Conv2d(2, 3, 3, padding=1)
            self.bn = tnn.BatchNorm2d(3)
            self.scale = tnn.Parameter(torch.ones(3))
            self.register_buffer('steps', torch.zeros(1))
            self.act = tnn.LeakyReLU(0.2)

    class TorchNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.block = TorchBlock()
            self.head = tnn.Sequential(tnn.Flatten(), tnn.Linear(3 * 4 * 4, 5), tnn.ReLU(), tnn.Dropout(0.3))
    return TorchNet()


# ---------------------------------------------------------------------------------------------
# Module mechanics
def test_registration_order_and_names_match_torch(torch):
    m, t = Net(), torch_net()
    assert [n for n, _ in m.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert [n for n, _ in m.named_buffers()] == [n for n, _ in t.named_buffers()]
    assert [n for n, _ in m.named_children()] == [n for n, _ in t.named_children()]
    assert [n for n, _ in m.named_modules()] == [n for n, _ in t.named_modules()]
    assert list(m.state_dict()) == list(t.state_dict())
    assert all(isinstance(p, nn.Parameter) and isinstance(p, mg.Tensor) and p.requires_grad
               for p in m.parameters())
    assert not any(b.requires_grad for b in m.buffers())
    assert len(list(m.parameters())) == 7 and len(list(m.buffers())) == 4
    assert [type(c).__name__ for c in m.children()] == ['Block', 'Sequential']
    assert len(list(m.modules())) == 10
    assert [n for n, _ in m.block.named_parameters(recurse=False)] == ['scale']


def test_shared_parameter_listed_once_and_reassignment():
    m = nn.Module()
    lin = nn.Linear(3, 3)
    m.a, m.b = lin, lin
    assert len(list(m.parameters())) == 2
    m.w = nn.Parameter(mg.zeros(2))
    m.w = nn.Parameter(mg.ones(4))              # replacing keeps one entry
    assert [n for n, _ in m.named_parameters()] == ['w', 'a.weight', 'a.bias']   # own first, as torch
    assert m.w.shape == (4,)
    m.w = None                                   # a declared-but-absent parameter
    assert 'w' not in dict(m.named_parameters())
    with pytest.raises(TypeError, match='Parameter'):
        m.a.weight = mg.zeros(3, 3)
    del m.b
    assert [n for n, _ in m.named_children()] == ['a']


def test_assign_before_init_raises_a_clear_error():
    class Bad(nn.Module):
        def __init__(self):
            self.lin = nn.Linear(2, 2)
    with pytest.raises(AttributeError, match='super'):
        Bad()


def test_train_eval_apply_requires_grad_zero_grad():
    m = Net()
    assert m.training and m.head[3].training
    assert m.eval() is m
    assert not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())
    order = []
    assert m.apply(lambda mod: order.append(type(mod).__name__)) is m
    assert order[-1] == 'Net' and order.index('Conv2d') < order.index('Block')
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())
    m.requires_grad_(True)
    for p in m.parameters():
        p.grad = mg.ones(*p.shape)
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_to_dtype_keeps_parameter_identity(device):
    m = Net()
    ids = [id(p) for p in m.parameters()]
    assert m.to(device, np.float64) is m
    assert [id(p) for p in m.parameters()] == ids
    assert all(p.dtype == np.float64 and p.device == device for p in m.parameters())
    assert m.block.bn.num_batches_tracked.dtype == np.int64
    assert m.block.bn.running_mean.device == device
    m.float().to('cpu')
    assert all(p.dtype == np.float32 and p.device == 'cpu' for p in m.parameters())


def test_repr_reads_like_torch(torch):
    m, t = Net(), torch_net()
    assert repr(m.head) == repr(t.head)
    assert repr(m).startswith('Net(\n  (block): Block(\n    (conv): Conv2d(2, 3, kernel_size=(3, 3)')
    assert repr(nn.BatchNorm2d(4)) == repr(tnn.BatchNorm2d(4))
    assert repr(nn.ConvTranspose2d(4, 2, 4, 2, 1, bias=False)) == repr(tnn.ConvTranspose2d(4, 2, 4, 2, 1, bias=False))


# ---------------------------------------------------------------------------------------------
# state dicts
def test_state_dict_is_a_copy():
    m = nn.Linear(3, 2)
    sd = m.state_dict()
    assert isinstance(sd, OrderedDict) and list(sd) == ['weight', 'bias']
    assert isinstance(sd['weight'], np.ndarray)
    sd['weight'][...] = 7.0
    assert not np.any(m.weight.numpy() == 7.0)


def test_state_dict_round_trip_with_torch_both_directions(torch):
    torch.manual_seed(0)
    mg.manual_seed(0)
    m, t = Net(), torch_net()
    with torch.no_grad():
        for b in t.buffers():
            b.add_(torch.rand_like(b.float()).to(b.dtype) + 3)  # distinct values, count included
    copy_torch_to_minigan(t, m)
    assert_state_equal(m, t)
    assert m.block.bn.num_batches_tracked.item() == t.block.bn.num_batches_tracked.item() == 3
    # back the other way, from a freshly initialised minigan model
    m2, t2 = Net(), torch_net()
    copy_minigan_to_torch(m2, t2)
    assert_state_equal(m2, t2)


def test_load_state_dict_copies_and_accepts_tensors():
    src, dst = nn.Linear(4, 3), nn.Linear(4, 3)
    w_id = id(dst.weight)
    dst.load_state_dict({'weight': src.weight, 'bias': src.bias})    # minigan Tensors
    np.testing.assert_array_equal(dst.weight.numpy(), src.weight.numpy())
    assert id(dst.weight) == w_id and dst.weight.array is not src.weight.array
    with mg.no_grad():
        src.weight.array[...] = 0
    assert np.all(dst.weight.numpy() != 0)                         # not aliased
    arr = np.random.default_rng(0).standard_normal((3, 4))         # float64 into float32
    dst.load_state_dict({'weight': arr, 'bias': np.zeros(3)})
    assert dst.weight.dtype == np.float32
    np.testing.assert_allclose(dst.weight.numpy(), arr, rtol=1e-6)
    arr[...] = 1
    assert not np.all(dst.weight.numpy() == 1)


def test_load_state_dict_errors_name_the_keys():
    m = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    sd = m.state_dict()
    bad = dict(sd)
    del bad['1.running_var']
    bad['2.weight'] = np.zeros(3)
    with pytest.raises(RuntimeError) as e:
        m.load_state_dict(bad)
    assert "'1.running_var'" in str(e.value) and "'2.weight'" in str(e.value)
    result = m.load_state_dict(bad, strict=False)
    assert result.missing_keys == ['1.running_var'] and result.unexpected_keys == ['2.weight']
    wrong = dict(sd)
    wrong['0.weight'] = np.zeros((3, 5))
    with pytest.raises(RuntimeError, match=r"0\.weight.*\(3, 5\).*\(3, 4\)"):
        m.load_state_dict(wrong)


# ---------------------------------------------------------------------------------------------
# default initialisation (statistics against torch's, seeded)
def _uniform_stats(a):
    a = np.asarray(a, dtype=np.float64).ravel()
    return np.abs(a).max(), a.mean(), a.std()


@pytest.mark.parametrize('make_m,make_t,fan_in', [
    (lambda: nn.Linear(300, 200), lambda: tnn.Linear(300, 200), 300),
    (lambda: nn.Conv2d(16, 40, 3), lambda: tnn.Conv2d(16, 40, 3), 16 * 9),
    (lambda: nn.ConvTranspose2d(40, 12, 4, 2, 1), lambda: tnn.ConvTranspose2d(40, 12, 4, 2, 1), 12 * 16),
])
def test_default_init_matches_torch_distribution(make_m, make_t, fan_in, torch):
    """weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = weight.size(1) * k * k."""
    mg.manual_seed(1)
    torch.manual_seed(1)
    m, t = make_m(), make_t()
    bound = 1 / math.sqrt(fan_in)
    for name in ('weight', 'bias'):
        mw, tw = getattr(m, name).numpy(), getattr(t, name).detach().numpy()
        assert mw.shape == tw.shape and mw.dtype == np.float32
        n = mw.size
        for arr in (mw, tw):                                  # torch's and ours: the same law
            mx, mean, std = _uniform_stats(arr)
            assert mx <= bound * (1 + 1e-6)
            assert mx >= bound * (1 - 20 / n)                 # the bound is reached
            assert abs(mean) < 5 * bound / math.sqrt(3 * n)
            assert abs(std - bound / math.sqrt(3)) < 6 * bound / math.sqrt(n)
    # seeded: the same seed gives the same weights
    mg.manual_seed(1)
    np.testing.assert_array_equal(make_m().weight.numpy(), m.weight.numpy())


def test_batchnorm_defaults_match_torch(torch):
    m, t = nn.BatchNorm2d(5), tnn.BatchNorm2d(5)
    assert_state_equal(m, t)
    assert m.num_batches_tracked.shape == () and m.num_batches_tracked.dtype == np.int64
    m1 = nn.BatchNorm2d(5, affine=False, track_running_stats=False)
    assert list(m1.state_dict()) == list(tnn.BatchNorm2d(5, affine=False, track_running_stats=False).state_dict())
    assert m1.weight is None and m1.running_mean is None


@pytest.mark.parametrize('fn,shape,expected_std', [
    (lambda t: init.normal_(t, 0.5, 0.02), (200, 100), 0.02),
    (lambda t: init.xavier_uniform_(t), (200, 100), math.sqrt(2 / 300)),
    (lambda t: init.xavier_normal_(t, gain=2.0), (200, 100), 2 * math.sqrt(2 / 300)),
    (lambda t: init.kaiming_uniform_(t, a=0.2), (64, 32, 3, 3), math.sqrt(2 / 1.04) / math.sqrt(32 * 9)),
    (lambda t: init.kaiming_normal_(t, mode='fan_out', nonlinearity='relu'), (64, 32, 3, 3),
     math.sqrt(2) / math.sqrt(64 * 9)),
    (lambda t: init.uniform_(t, -2, 2), (100, 100), 4 / math.sqrt(12)),
    (lambda t: init.trunc_normal_(t, std=1.0, a=-1.0, b=1.0), (100, 100), 0.5396),
])
def test_init_functions_std(fn, shape, expected_std, device):
    mg.manual_seed(2)
    t = mg.zeros(*shape, device=device)
    data_id = id(t.array)
    assert fn(t) is t and id(t.array) == data_id            # in place
    a = t.numpy()
    n = a.size
    assert abs(a.std() - expected_std) < 6 * expected_std / math.sqrt(n)
    assert len(np.unique(a)) > n // 2


def test_init_constants_and_gain():
    t = mg.randn(3, 4)
    assert np.all(init.zeros_(t).numpy() == 0) and np.all(init.ones_(t).numpy() == 1)
    assert np.all(init.constant_(t, 0.25).numpy() == 0.25)
    # PyTorch's gains: sqrt(2) for relu, 5/3 for tanh, sqrt(2 / (1 + slope^2)) for leaky_relu (slope 0.01 default)
    for nl, param, gain in (('relu', None, math.sqrt(2)), ('tanh', None, 5 / 3), ('linear', None, 1.0),
                            ('leaky_relu', 0.2, math.sqrt(2 / 1.04)), ('leaky_relu', None, math.sqrt(2 / 1.0001))):
        assert init.calculate_gain(nl, param) == pytest.approx(gain, rel=1e-12)
    q = init.orthogonal_(mg.zeros(5, 8)).numpy().astype(np.float64)
    np.testing.assert_allclose(q @ q.T, np.eye(5), atol=1e-5)
    with pytest.raises(ValueError, match='2 dims'):
        init.xavier_uniform_(mg.zeros(5))


# ---------------------------------------------------------------------------------------------
# layers against central differences (input and every parameter), then against torch.nn
GRADCHECK_LAYERS = [
    ('linear', lambda: nn.Linear(4, 3), (2, 4)),
    ('conv', lambda: nn.Conv2d(2, 3, 3, 2, 1), (2, 2, 5, 4)),
    ('convT', lambda: nn.ConvTranspose2d(3, 2, 4, 2, 1), (1, 3, 2, 3)),
    ('bn2d', lambda: nn.BatchNorm2d(2), (3, 2, 2, 3)),
    ('sequential', lambda: nn.Sequential(nn.Linear(3, 4), nn.LeakyReLU(0.2), nn.Linear(4, 2), nn.Tanh()), (5, 3)),
]


@pytest.mark.parametrize('name,make,shape', GRADCHECK_LAYERS, ids=[g[0] for g in GRADCHECK_LAYERS])
def test_layer_gradients_match_central_differences(name, make, shape, device):
    mg.manual_seed(12)
    layer = make().double().to(device)
    x = mg.tensor(np.random.default_rng(13).standard_normal(shape), requires_grad=True, device=device)
    params = list(layer.parameters())
    assert mg.gradcheck(lambda x, *_: layer(x), [x] + params)   # the layer reads the same parameter arrays


# the same weights in both; forward and all gradients
def _compare_layer(mmod, tmod, x_np, device, rtol, train=True):
    copy_torch_to_minigan(tmod, mmod)
    mmod.to(device)
    mmod.train(train)
    tmod.train(train)
    x = mg.tensor(x_np, requires_grad=True, device=device)
    tx = torch.tensor(x_np, requires_grad=True)
    y, ty = mmod(x), tmod(tx)
    np.testing.assert_allclose(to_numpy(y), to_numpy(ty), rtol=rtol, atol=rtol * 1e-2)
    cot = np.random.default_rng(9).standard_normal(ty.shape).astype(x_np.dtype)
    (y * mg.tensor(cot, device=device)).sum().backward()
    (ty * torch.from_numpy(cot)).sum().backward()
    np.testing.assert_allclose(to_numpy(x.grad), to_numpy(tx.grad), rtol=rtol, atol=rtol * 1e-2)
    tparams = dict(tmod.named_parameters())
    for name, p in mmod.named_parameters():
        np.testing.assert_allclose(to_numpy(p.grad), to_numpy(tparams[name].grad), rtol=rtol,
                                   atol=rtol * 1e-2, err_msg=name)
    tbufs = dict(tmod.named_buffers())
    for name, b in mmod.named_buffers():
        np.testing.assert_allclose(to_numpy(b), to_numpy(tbufs[name]), rtol=rtol, atol=rtol * 1e-2, err_msg=name)


LAYERS = [
    ('linear', lambda: (nn.Linear(7, 5), tnn.Linear(7, 5)), (3, 7)),
    ('linear-nobias-3d', lambda: (nn.Linear(6, 4, bias=False), tnn.Linear(6, 4, bias=False)), (2, 3, 6)),
    ('conv', lambda: (nn.Conv2d(3, 4, 3, 2, 1), tnn.Conv2d(3, 4, 3, 2, 1)), (2, 3, 9, 7)),
    ('conv-nobias-rect', lambda: (nn.Conv2d(1, 2, (3, 2), 1, (0, 1), bias=False),
                                  tnn.Conv2d(1, 2, (3, 2), 1, (0, 1), bias=False)), (1, 1, 6, 5)),
    ('convT', lambda: (nn.ConvTranspose2d(4, 3, 4, 2, 1), tnn.ConvTranspose2d(4, 3, 4, 2, 1)), (2, 4, 3, 5)),
    ('convT-nobias', lambda: (nn.ConvTranspose2d(5, 2, 4, 1, 0, bias=False),
                              tnn.ConvTranspose2d(5, 2, 4, 1, 0, bias=False)), (3, 5, 1, 1)),
    ('bn2d', lambda: (nn.BatchNorm2d(3), tnn.BatchNorm2d(3)), (4, 3, 5, 3)),
    ('bn2d-momentum-none', lambda: (nn.BatchNorm2d(3, momentum=None), tnn.BatchNorm2d(3, momentum=None)), (4, 3, 2, 3)),
    ('bn2d-noaffine', lambda: (nn.BatchNorm2d(2, affine=False, eps=1e-3),
                               tnn.BatchNorm2d(2, affine=False, eps=1e-3)), (3, 2, 4, 4)),
    ('bn2d-nostats', lambda: (nn.BatchNorm2d(2, track_running_stats=False),
                              tnn.BatchNorm2d(2, track_running_stats=False)), (3, 2, 4, 4)),
    ('bn1d', lambda: (nn.BatchNorm1d(5, momentum=0.3), tnn.BatchNorm1d(5, momentum=0.3)), (6, 5)),
    ('bn1d-3d', lambda: (nn.BatchNorm1d(4), tnn.BatchNorm1d(4)), (3, 4, 5)),
    ('relu', lambda: (nn.ReLU(), tnn.ReLU()), (3, 4, 5)),
    ('leaky-default', lambda: (nn.LeakyReLU(), tnn.LeakyReLU()), (3, 4, 5)),
    ('leaky-0.2', lambda: (nn.LeakyReLU(0.2), tnn.LeakyReLU(0.2)), (3, 4, 5)),
    ('tanh', lambda: (nn.Tanh(), tnn.Tanh()), (3, 4)),
    ('sigmoid', lambda: (nn.Sigmoid(), tnn.Sigmoid()), (3, 4)),
    ('maxpool', lambda: (nn.MaxPool2d(2), tnn.MaxPool2d(2)), (2, 3, 6, 4)),
    ('maxpool-3-2', lambda: (nn.MaxPool2d(3, 2), tnn.MaxPool2d(3, 2)), (2, 1, 7, 5)),
    ('avgpool', lambda: (nn.AvgPool2d(2), tnn.AvgPool2d(2)), (2, 3, 6, 4)),
    ('flatten', lambda: (nn.Flatten(), tnn.Flatten()), (2, 3, 4, 5)),
    ('flatten-2', lambda: (nn.Flatten(2), tnn.Flatten(2)), (2, 3, 4, 5)),
    ('sequential', lambda: (nn.Sequential(nn.Conv2d(2, 3, 3, 1, 1, bias=False), nn.BatchNorm2d(3), nn.ReLU(),
                                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 2)),
                            tnn.Sequential(tnn.Conv2d(2, 3, 3, 1, 1, bias=False), tnn.BatchNorm2d(3), tnn.ReLU(),
                                           tnn.MaxPool2d(2), tnn.Flatten(), tnn.Linear(12, 2))), (4, 2, 4, 4)),
]


@pytest.mark.parametrize('train', [True, False], ids=['train', 'eval'])
@pytest.mark.parametrize('name,make,shape', LAYERS, ids=[entry[0] for entry in LAYERS])
def test_layer_matches_torch_float64(name, make, shape, train, device, torch):
    torch.manual_seed(3)
    mmod, tmod = make()
    tmod.double()
    with torch.no_grad():                      # non-trivial running statistics and affine parameters
        for n, b in tmod.named_buffers():
            if n.endswith('running_mean'):
                b.normal_()
            elif n.endswith('running_var'):
                b.uniform_(0.5, 2.0)
        if isinstance(tmod, (tnn.BatchNorm1d, tnn.BatchNorm2d)) and tmod.affine:
            tmod.weight.normal_(1, 0.3)
            tmod.bias.normal_()
    if name == 'bn2d-nostats' and not train:
        pytest.skip('without running statistics eval mode uses batch statistics, covered by train')
    x = np.random.default_rng(4).standard_normal(shape)
    mmod.to(np.float64)
    _compare_layer(mmod, tmod, x, device, 1e-6, train)
    if train and name.startswith('bn') and 'nostats' not in name:
        assert mmod.num_batches_tracked.item() == tmod.num_batches_tracked.item() == 1


@pytest.mark.parametrize('name,make,shape', [LAYERS[i] for i in (0, 2, 4, 6, 22)],
                         ids=[LAYERS[i][0] for i in (0, 2, 4, 6, 22)])
def test_layer_matches_torch_float32(name, make, shape, device, torch):
    torch.manual_seed(5)
    mmod, tmod = make()
    x = np.random.default_rng(6).standard_normal(shape).astype(np.float32)
    _compare_layer(mmod, tmod, x, device, 1e-4, True)
    assert all(p.dtype == np.float32 for p in mmod.parameters())


def test_batchnorm_running_stats_over_several_batches(device, torch):
    m, t = nn.BatchNorm2d(3, momentum=0.2).double().to(device), tnn.BatchNorm2d(3, momentum=0.2).double()
    rng = np.random.default_rng(7)
    for _ in range(3):
        x = rng.standard_normal((4, 3, 2, 2)) * 2 + 1
        m(mg.tensor(x, device=device))
        t(torch.from_numpy(x))
    assert_state_equal(m, t, rtol=1e-6, atol=1e-12)
    m.eval()
    t.eval()
    x = rng.standard_normal((2, 3, 2, 2))
    np.testing.assert_allclose(m(mg.tensor(x, device=device)).numpy(), t(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-6)


def test_dropout_train_and_eval(device):
    mg.manual_seed(8)
    d = nn.Dropout(0.25)
    x = mg.ones(200, 100, device=device)
    y = d(x).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    d.eval()
    np.testing.assert_array_equal(d(x).numpy(), x.numpy())
    with pytest.raises(ValueError, match='between 0 and 1'):
        nn.Dropout(1.5)


def test_pool_stride_defaults_to_kernel():
    assert nn.MaxPool2d(3).stride == 3 and nn.AvgPool2d(2, 1).stride == 1
    assert nn.MaxPool2d(2)(mg.randn(1, 1, 6, 6)).shape == (1, 1, 3, 3)


def test_functional_is_reexported():
    import minigan.functional as mF
    for name in ('conv2d', 'conv_transpose2d', 'linear', 'batch_norm', 'relu', 'leaky_relu', 'tanh', 'sigmoid',
                 'dropout', 'max_pool2d', 'avg_pool2d', 'cross_entropy', 'binary_cross_entropy_with_logits',
                 'mse_loss', 'reshape', 'cat'):
        assert getattr(F, name) is getattr(mF, name)


# ---------------------------------------------------------------------------------------------
# Sequential
def test_sequential_indexing_len_iteration():
    layers = [nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)]
    s = nn.Sequential(*layers)
    assert len(s) == 3 and s[0] is layers[0] and s[-1] is layers[2]
    assert list(s) == layers
    assert [n for n, _ in s.named_children()] == ['0', '1', '2']
    sub = s[1:]
    assert isinstance(sub, nn.Sequential) and len(sub) == 2 and [n for n, _ in sub.named_children()] == ['1', '2']
    with pytest.raises(IndexError):
        s[3]
    s.append(nn.Tanh())
    assert len(s) == 4 and list(s.state_dict()) == ['0.weight', '0.bias', '2.weight', '2.bias']
    named = nn.Sequential(OrderedDict([('fc', nn.Linear(2, 2)), ('act', nn.Tanh())]))
    assert list(named.state_dict()) == ['fc.weight', 'fc.bias']
    x = mg.randn(5, 4)
    np.testing.assert_allclose(s(x).numpy(), layers[2](layers[1](layers[0](x))).tanh().numpy(), rtol=1e-6)
    with pytest.raises(TypeError, match='not an nn.Module'):
        nn.Sequential(nn.ReLU(), lambda v: v)


@pytest.mark.parametrize('layer,x_shape,match', [
    (lambda: nn.Linear(4, 3), (2, 5), 'last dim must be 4'),
    (lambda: nn.Conv2d(3, 4, 3), (2, 2, 8, 8), r'\(N, 3, H, W\)'),
    (lambda: nn.ConvTranspose2d(3, 4, 3), (2, 3, 8), r'\(N, 3, H, W\)'),
    (lambda: nn.BatchNorm2d(3), (2, 4, 5, 5), '4D input with 3 channels'),
    (lambda: nn.MaxPool2d(2), (2, 4, 5), '4 dims'),
])
def test_bad_input_shapes_raise(layer, x_shape, match):
    with pytest.raises(ValueError, match=match):
        layer()(mg.randn(*x_shape))


def test_load_torch_state_dict_directly_and_copy_module(torch):
    import copy
    import pickle
    torch.manual_seed(10)
    t = tnn.Sequential(tnn.Conv2d(2, 3, 3), tnn.BatchNorm2d(3), tnn.Flatten(), tnn.Linear(12, 2))
    m = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(12, 2))
    m.load_state_dict(t.state_dict())                      # torch tensors are accepted as they are
    assert_state_equal(m, t)
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert_state_equal(clone, t)
        assert isinstance(clone[0].weight, nn.Parameter) and clone[0].weight.requires_grad
        assert clone[0].weight.array is not m[0].weight.array
    x = np.random.default_rng(11).standard_normal((2, 2, 4, 4)).astype(np.float32)
    m.eval()
    t.eval()
    np.testing.assert_allclose(m(mg.tensor(x)).numpy(), t(torch.from_numpy(x)).detach().numpy(), rtol=1e-4,
                               atol=1e-6)


def test_sequential_delete_renumbers_and_identity_unflatten():
    s = nn.Sequential(nn.Linear(2, 2), nn.Identity(), nn.Linear(2, 3))
    del s[1]
    assert [n for n, _ in s.named_children()] == ['0', '1'] and list(s.state_dict())[-1] == '1.bias'
    x = mg.randn(4, 6)
    assert nn.Unflatten(1, (2, 3))(x).shape == (4, 2, 3)
    assert nn.Identity()(x) is x

"""PyTorch's everyday surface on minigan: dtypes, devices, factories, small Tensor methods,
autograd.grad's arguments, learning-rate schedulers, save/load, DataLoader and save_image."""
import math

import numpy as np
import pytest

import minigan as mg
import minigan.nn as nn
import minigan.optim as optim


@pytest.fixture
def torch():
    return pytest.importorskip('torch')


# ---- dtypes, devices, factories ---------------------------------------------------------------

def test_dtype_objects_compare_with_tensor_dtypes():
    assert mg.randn(2).dtype == mg.float32 and mg.float32 == np.float32
    assert mg.zeros(2, dtype=mg.float64).dtype == mg.float64
    assert mg.tensor([1, 2]).dtype == mg.int64 == mg.long
    assert mg.float is mg.float32 and mg.double is mg.float64 and mg.half is mg.float16
    assert mg.ones(2, dtype=mg.int32).dtype == mg.int32
    assert mg.tensor([1.0]).to(mg.float64).dtype == mg.float64
    assert mg.tensor([1.5, 2.5]).long().tolist() == [1, 2]
    assert mg.ones(3).eq(1).dtype == mg.bool
    assert mg.get_default_dtype() == mg.float32


@pytest.mark.parametrize('factory', [
    lambda **kw: mg.zeros(2, 3, **kw), lambda **kw: mg.ones((2, 3), **kw), lambda **kw: mg.full((2, 3), 7, **kw),
    lambda **kw: mg.randn(2, 3, **kw), lambda **kw: mg.rand(2, 3, **kw), lambda **kw: mg.empty(2, 3, **kw),
    lambda **kw: mg.tensor(np.ones((2, 3)), **kw)])
@pytest.mark.parametrize('dtype', ['float32', 'float64', 'float16'])
def test_factories_take_dtype_and_device_objects(factory, dtype):
    t = factory(dtype=getattr(mg, dtype), device=mg.device('cpu'))
    assert t.dtype == getattr(mg, dtype) and t.shape == (2, 3) and t.device == 'cpu'


def test_full_infers_its_dtype_from_the_value_as_torch(torch):
    for value in (1, 1.0, True):
        assert str(mg.full((2,), value).dtype) == str(torch.full((2,), value).dtype).split('.')[1]
    np.testing.assert_array_equal(mg.full((2, 2), 0.5).numpy(), np.full((2, 2), 0.5, np.float32))


def test_device_objects():
    d = mg.device('cuda' if mg.cuda.is_available() else 'cpu')
    assert d.type in ('cpu', 'cuda')
    cpu = mg.device('cpu')
    assert cpu == 'cpu' and mg.zeros(1).device == cpu and mg.zeros(1).device.type == 'cpu'
    assert repr(mg.device('cuda:1')) == "device(type='cuda', index=1)"
    assert mg.zeros(2).to(cpu).device == 'cpu' and nn.Linear(2, 2).to(cpu).weight.device == 'cpu'
    assert isinstance(mg.cuda.is_available(), bool) and mg.cuda.device_count() >= 0
    with pytest.raises(RuntimeError, match='device type'):
        mg.device('tpu')


def test_rand_and_randint_follow_the_seed():
    mg.manual_seed(1)
    a, i = mg.rand(100), mg.randint(5, (100,))
    mg.manual_seed(1)
    np.testing.assert_array_equal(a.numpy(), mg.rand(100).numpy())
    np.testing.assert_array_equal(i.numpy(), mg.randint(0, 5, (100,)).numpy())
    assert 0 <= a.numpy().min() and a.numpy().max() < 1 and i.dtype == mg.int64 and set(i.tolist()) <= set(range(5))


# ---- small Tensor methods ----------------------------------------------------------------------

def test_comparisons_view_as_tolist_numel_size(torch):
    a = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]], np.float32)
    b = np.array([[1.0, 0.0, 3.0], [0.0, 2.0, 5.0]], np.float32)
    x, y, xt, yt = mg.tensor(a), mg.tensor(b), torch.tensor(a), torch.tensor(b)
    for name in ('eq', 'ne', 'lt', 'gt', 'le', 'ge'):
        assert getattr(x, name)(y).tolist() == getattr(xt, name)(yt).tolist()
        assert getattr(x, name)(2.0).tolist() == getattr(xt, name)(2.0).tolist()
    pred = mg.tensor([[1], [2], [0]])
    target = mg.tensor([1, 0, 0])
    assert pred.eq(target.view_as(pred)).sum().item() == 2          # the MNIST accuracy idiom
    assert x.view_as(mg.zeros(3, 2)).shape == (3, 2)
    assert x.tolist() == xt.tolist() and isinstance(x.sum().tolist(), float)
    assert x.numel() == 6 and x.size(-1) == 3 and x.size(0) == 2 and x.size() == (2, 3) and x.dim() == 2
    assert mg.flatten(mg.zeros(2, 3, 4, 5), 1).shape == (2, 60)
    assert tuple(torch.flatten(torch.zeros(2, 3, 4, 5), 1).shape) == (2, 60)


def test_clone_copies_and_passes_gradients():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    c = x.clone()
    assert c.array is not x.array
    (c * c).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])


# ---- autograd.grad -----------------------------------------------------------------------------

def test_autograd_grad_takes_torchs_arguments(torch):
    a = np.array([0.3, -1.2, 2.0])
    x, xt = mg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y, yt = x.exp() * x, xt.exp() * xt
    go = np.array([1.0, -2.0, 0.5])
    g, = mg.autograd.grad(y, x, grad_outputs=mg.tensor(go), retain_graph=True, create_graph=True,
                          only_inputs=True)
    gt, = torch.autograd.grad(yt, xt, grad_outputs=torch.tensor(go), retain_graph=True, create_graph=True,
                              only_inputs=True)
    np.testing.assert_allclose(g.numpy(), gt.detach().numpy(), rtol=1e-12)
    g2, = mg.autograd.grad(y, [x], mg.tensor(go), True)              # positional retain_graph, as torch
    np.testing.assert_allclose(g2.numpy(), gt.detach().numpy(), rtol=1e-12)
    (g * g).sum().backward()                                         # double backward through g
    (gt * gt).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-12)
    unused = mg.tensor([1.0], requires_grad=True)
    assert mg.autograd.grad((x * 2).sum(), [x, unused], allow_unused=True)[1] is None


# ---- lr_scheduler ------------------------------------------------------------------------------

SCHEDULES = [('StepLR', dict(step_size=3, gamma=0.5)), ('CosineAnnealingLR', dict(T_max=4, eta_min=0.001)),
             ('LambdaLR', dict(lr_lambda=lambda epoch: 0.95 ** epoch))]


@pytest.mark.parametrize('name,kwargs', SCHEDULES)
def test_schedulers_match_torch(torch, name, kwargs):
    p, pt = mg.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    opt_t = torch.optim.SGD([pt], lr=0.1, momentum=0.9)
    sched = getattr(optim.lr_scheduler, name)(opt, **kwargs)
    sched_t = getattr(torch.optim.lr_scheduler, name)(opt_t, **kwargs)
    for _ in range(13):
        assert sched.get_last_lr() == sched_t.get_last_lr()          # bit-equal: the same float formulas
        assert opt.param_groups[0]['lr'] == opt_t.param_groups[0]['lr']
        opt.step()
        opt_t.step()
        sched.step()
        sched_t.step()


def test_scheduler_state_dict_resumes(tmp_path):
    p = mg.zeros(2, requires_grad=True)
    opt = optim.Adam([p], lr=0.01)
    sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    for _ in range(3):
        sched.step()
    mg.save({'opt': opt.state_dict(), 'sched': sched.state_dict()}, tmp_path / 'ck.pt')
    ck = mg.load(tmp_path / 'ck.pt')
    opt2 = optim.Adam([mg.zeros(2, requires_grad=True)], lr=0.01)
    sched2 = optim.lr_scheduler.StepLR(opt2, step_size=2, gamma=0.1)
    opt2.load_state_dict(ck['opt'])
    sched2.load_state_dict(ck['sched'])
    for _ in range(4):
        sched.step()
        sched2.step()
        assert sched2.get_last_lr() == sched.get_last_lr()
    assert math.isclose(sched.get_last_lr()[0], 0.01 * 0.1 ** 3)


# ---- save / load -------------------------------------------------------------------------------

def test_save_load_round_trip(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 1))
    opt = optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))
    model(mg.randn(2, 1, 4, 4)).sum().backward()
    opt.step()
    obj = {'model': model.state_dict(), 'opt': opt.state_dict(), 'epoch': 7, 'name': 'g', 'ratio': 0.25,
           'shape': (3, 4), 'none': None, 'list': [mg.ones(2, dtype=mg.int64), np.arange(3.0)],
           'param': nn.Parameter(mg.ones(2))}
    path = tmp_path / 'checkpoint.pt'
    mg.save(obj, path)
    back = mg.load(path)
    assert list(back['model']) == list(obj['model'])
    for k, v in obj['model'].items():
        np.testing.assert_array_equal(back['model'][k], v)
        assert back['model'][k].dtype == v.dtype
    assert back['epoch'] == 7 and back['name'] == 'g' and back['ratio'] == 0.25
    assert back['shape'] == (3, 4) and back['none'] is None
    assert isinstance(back['list'][0], mg.Tensor) and back['list'][0].dtype == mg.int64
    assert isinstance(back['param'], nn.Parameter) and back['param'].requires_grad
    assert back['opt']['param_groups'][0]['betas'] == (0.5, 0.999)
    assert sorted(back['opt']['state']) == sorted(obj['opt']['state'])
    model2 = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 1))
    model2.load_state_dict(back['model'])
    optim.Adam(model2.parameters(), lr=1e-3).load_state_dict(back['opt'])
    x = mg.randn(2, 1, 4, 4)
    np.testing.assert_array_equal(model.eval()(x).numpy(), model2.eval()(x).numpy())
    assert path.read_bytes()[:2] == b'PK'                             # a zip (npz) archive, not a pickle
    for where in ('cpu', mg.device('cpu'), lambda storage, loc: storage, {'cuda:0': 'cpu'}):
        assert mg.load(path, map_location=where)['list'][0].device == 'cpu'


def test_load_refuses_pickles_and_torch_files(tmp_path, torch):
    import pickle
    (tmp_path / 'a.pkl').write_bytes(pickle.dumps({'w': np.ones(2)}))
    torch.save({'w': torch.ones(2)}, tmp_path / 'b.pth')
    np.savez(tmp_path / 'c.npz', w=np.ones(2))
    for name in ('a.pkl', 'b.pth', 'c.npz'):
        with pytest.raises(ValueError, match='not a file written by mg.save'):
            mg.load(tmp_path / name)
    with pytest.raises(TypeError, match='cannot store'):
        mg.save({'f': lambda: 0}, tmp_path / 'd.pt')


# ---- minigan.utils.data ------------------------------------------------------------------------

def test_dataloader_batches_shuffles_and_collates():
    from minigan.utils.data import DataLoader, Dataset, TensorDataset
    x, y = mg.randn(10, 3), mg.tensor(np.arange(10))
    loader = DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True, generator=mg.Generator().manual_seed(0))
    batches = list(loader)
    assert len(loader) == 3 and [b[0].shape for b in batches] == [(4, 3), (4, 3), (2, 3)]
    order = np.concatenate([b[1].numpy() for b in batches])
    assert sorted(order.tolist()) == list(range(10)) and order.tolist() != list(range(10))
    for xb, yb in batches:
        np.testing.assert_array_equal(xb.numpy(), x.numpy()[yb.numpy()])
    again = [b[1].tolist() for b in DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True,
                                               generator=mg.Generator().manual_seed(0))]
    assert again == [b[1].tolist() for b in batches]
    assert len(DataLoader(TensorDataset(x, y), batch_size=4, drop_last=True)) == 2

    class Pairs(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return {'image': np.full((1, 2, 2), i, np.float32), 'label': i, 'weight': 0.5 * i, 'name': f'n{i}'}

    batch = next(iter(DataLoader(Pairs(), batch_size=3)))
    assert batch['image'].shape == (3, 1, 2, 2) and batch['image'].dtype == mg.float32
    assert batch['label'].dtype == mg.int64 and batch['label'].tolist() == [0, 1, 2]
    assert batch['weight'].dtype == mg.float64 and batch['name'] == ['n0', 'n1', 'n2']


def test_dataloader_shuffle_follows_manual_seed():
    from minigan.utils.data import DataLoader, TensorDataset
    ds = TensorDataset(mg.tensor(np.arange(20)))
    mg.manual_seed(5)
    first = [b[0].tolist() for b in DataLoader(ds, batch_size=5, shuffle=True)]
    mg.manual_seed(5)
    assert [b[0].tolist() for b in DataLoader(ds, batch_size=5, shuffle=True)] == first


# ---- save_image --------------------------------------------------------------------------------

def test_save_image_grid_layout(tmp_path):
    from PIL import Image
    from minigan.utils import make_grid, save_image
    images = mg.tensor(np.stack([np.full((1, 3, 2), (k + 1) / 10, np.float32) for k in range(5)]))
    grid = make_grid(images, nrow=2, padding=1)
    assert grid.shape == (3, 3 * (3 + 1) + 1, 2 * (2 + 1) + 1)      # grey repeated to RGB, torchvision's sizes
    g = grid.numpy()
    assert g[0, 0, :].max() == 0                                     # the frame
    np.testing.assert_allclose(g[:, 1:4, 1:3], 0.1)                  # image 0: row 0, column 0
    np.testing.assert_allclose(g[:, 1:4, 4:6], 0.2)                  # image 1: row 0, column 1
    np.testing.assert_allclose(g[:, 5:8, 1:3], 0.3)                  # image 2: row 1, column 0
    np.testing.assert_allclose(g[:, 9:12, 4:6], 0)                   # no sixth image
    save_image(images, tmp_path / 'grid.png', nrow=2, padding=1)
    pixels = np.asarray(Image.open(tmp_path / 'grid.png'))
    assert pixels.shape == (13, 7, 3) and pixels[1, 1, 0] == int(0.1 * 255 + 0.5) and pixels[5, 4, 2] == 102
    signed = mg.tensor(np.linspace(-1, 1, 2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4))
    save_image(signed, tmp_path / 'n.png', normalize=True, value_range=(-1, 1), padding=0)
    out = np.asarray(Image.open(tmp_path / 'n.png'))
    assert out.shape == (4, 8, 3) and out.min() == 0 and out.max() == 255


# ---- tutorial-era idioms -----------------------------------------------------------------------

def test_legacy_types_variable_and_torch_max(torch):
    from minigan.autograd import Variable
    import minigan.backends.cudnn as cudnn
    cudnn.benchmark = True                                            # accepted; minigan has no cuDNN
    Tensor = mg.cuda.FloatTensor if mg.cuda.is_available() else mg.FloatTensor
    z = Variable(Tensor(np.random.default_rng(0).normal(0, 1, (4, 3))))
    assert z.dtype == mg.float32 and z.shape == (4, 3) and not z.requires_grad
    ones = Variable(Tensor(4, 1).fill_(1.0), requires_grad=False)
    assert ones.tolist() == [[1.0]] * 4
    assert Variable(mg.zeros(2), requires_grad=True).requires_grad
    imgs = mg.tensor(np.arange(6).reshape(2, 3))
    assert imgs.type(mg.FloatTensor).dtype == mg.float32 and imgs.type() == 'torch.LongTensor'
    assert mg.LongTensor([1, 2]).dtype == mg.int64 and mg.FloatTensor([1]).tolist() == [1.0]
    a = np.array([[0.1, 0.7, 0.2], [0.5, 0.4, 0.1]], np.float32)
    values, indices = mg.max(mg.tensor(a), 1)
    values_t, indices_t = torch.max(torch.tensor(a), 1)
    assert values.tolist() == values_t.tolist() and indices.tolist() == indices_t.tolist()
    _, predicted = mg.max(mg.tensor(a).data, 1)                       # the classification-tutorial idiom
    assert (predicted == mg.tensor([1, 0])).sum().item() == 2
    assert mg.min(mg.tensor(a), dim=0).indices.tolist() == torch.min(torch.tensor(a), dim=0).indices.tolist()
    assert mg.max(mg.tensor(a)).item() == pytest.approx(0.7)
    assert mg.zeros(2, dtype=mg.float64).to(mg.ones(1)).dtype == mg.float32


def test_no_grad_as_a_decorator():
    @mg.no_grad()
    def generate(w):
        return w * 2

    w = mg.ones(2, requires_grad=True)
    assert not generate(w).requires_grad and (w * 2).requires_grad


@pytest.mark.parametrize('name,fn', [
    ('repeat', lambda t: t.repeat(2, 1, 3)), ('std', lambda t: t.std(1)), ('pow', lambda t: t.pow(3)),
    ('t', lambda t: t.t()), ('masked_fill', lambda t: t.masked_fill(t > 0, 0.5)),
    ('split', lambda t: t.split(2, 1)[1]), ('chunk', lambda t: t.chunk(2, 1)[0]),
    ('norm', lambda t: t.norm(2, dim=1)), ('clone', lambda t: t.clone()),
])
def test_more_tensor_methods_match_torch_with_gradients(torch, name, fn):
    a = np.random.default_rng(0).standard_normal((2, 3))
    x, xt = mg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y, yt = fn(x), fn(xt)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-12)
    u = np.random.default_rng(1).standard_normal(tuple(yt.shape))
    g, = mg.grad([y], [x], [mg.tensor(u)])
    gt, = torch.autograd.grad(yt, xt, torch.tensor(u))
    np.testing.assert_allclose(g.numpy(), gt.numpy(), rtol=1e-10)


def test_more_factories_and_functions(torch):
    assert mg.arange(5).dtype == mg.int64 and mg.arange(0, 1, 0.25).tolist() == torch.arange(0, 1, 0.25).tolist()
    assert mg.linspace(0, 1, 5).tolist() == torch.linspace(0, 1, 5).tolist()
    assert sorted(mg.randperm(6).tolist()) == list(range(6))
    assert F_one_hot(mg.tensor([1, 2]), 4).tolist() == torch.nn.functional.one_hot(torch.tensor([1, 2]), 4).tolist()
    c = np.array([True, False, True])
    a = np.array([1.0, 2.0, 3.0])
    x = mg.tensor(a, requires_grad=True)
    y = mg.where(mg.tensor(c), x, 0.0)
    assert y.tolist() == [1.0, 0.0, 3.0]
    g, = mg.grad([y.sum()], [x])
    assert g.tolist() == [1.0, 0.0, 1.0]
    assert mg.zeros(2, dtype=mg.float64).new_zeros(3).dtype == mg.float64
    model = nn.Linear(3, 2)
    model(mg.randn(4, 3)).sum().backward()
    total = nn.utils.clip_grad_norm_(model.parameters(), 0.1)
    after = sum(float((p.grad * p.grad).sum().item()) for p in model.parameters()) ** 0.5
    assert total.item() > 0.1 and after == pytest.approx(0.1, rel=1e-4)


def F_one_hot(t, n):
    return nn.functional.one_hot(t, n)

"""minigan/cuda_graph.py: training steps captured as CUDA graphs, and the check that a step never
waits for the host.

On a GPU (tests marked gpu): capturing fails on any synchronising call (.item(), .numpy(), a stream
or device synchronisation; minigan's own are refused by name, tests/test_cuda_capture.py), so a DCGAN-32 step that captures is a step without a host round trip,
on each GPU backend; a step that reads a value on the host is refused; three consecutive graphed
DCGAN steps equal three eager GANTrainer steps (same weights, batches and noise) to float32
tolerance, and so do the steps after a learning-rate change, a resume and a sample grid (which give
tensors new arrays); a NaN loss changes no weight; GraphedStep replays on new inputs and its warm-up
leaves no trace; the fused Adam kernel equals its NumPy reference.
Anywhere: the module imports without CuPy, refuses CPU arrays and models with errors naming the fix,
and its Adam update (NumPy) equals minigan's Adam, skipping everything when told to.
"""
import subprocess
import sys

import numpy as np
import pytest

import minigan as mg
from minigan import backend, dispatch, models, optim
from minigan.cuda_graph import (METRICS, GraphCaptureError, GraphedGANStep, GraphedStep, adam_scalars,
                                adam_update)
from minigan.gan.trainer import GANTrainer, NonFiniteLoss
from minigan.tensor import Tensor
from minigan.train import generate


def _dcgan_trainer(seed, device='cuda', opt=optim.Adam):
    """A GANTrainer for DCGAN-32 with the recipe's Adam; the same seed gives the same weights."""
    mg.manual_seed(seed)
    G, D = models.Generator32().to(device), models.Discriminator32().to(device)
    opt_g, opt_d = (opt(m.parameters(), lr=2e-4, betas=(0.5, 0.999)) for m in (G, D))
    return GANTrainer('dcgan', G, D, opt_g, opt_d, nz=100)


class _Batches:
    """The `source` of a training step: the given real batches, one per step."""

    def __init__(self, *batches):
        self.batches = list(batches)

    def next(self):
        return self.batches.pop(0), None


def _require_gpu_backend(name):
    if name not in dispatch.available_gpu_backends():
        pytest.skip(f'the GPU backend {name!r} does not run here')


# ---- anywhere ---------------------------------------------------------------------------------------

def test_module_imports_without_cupy():
    r = subprocess.run([sys.executable, '-c', 'import sys, minigan.cuda_graph; print("cupy" in sys.modules)'],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ['False']


def test_graphed_step_refuses_cpu_arrays():
    with pytest.raises(TypeError, match=r'input 0 is a numpy\.ndarray \(on the CPU\).*\.to\("cuda"\)'):
        GraphedStep(lambda x: x, [np.zeros(3, np.float32)])
    with pytest.raises(TypeError, match='input 0 is a minigan Tensor on the cpu'):
        GraphedStep(lambda x: x, [mg.zeros(3)])


def test_graphed_step_refuses_cpu_arrays_to_preserve():
    with pytest.raises(TypeError, match=r'preserve\[0\] is a numpy\.ndarray'):
        GraphedStep(lambda: None, [], preserve=[np.zeros(2)])


def test_graphed_gan_step_refuses_cpu_models():
    with pytest.raises(TypeError, match=r'models are on the CPU.*\.to\("cuda"\)'):
        GraphedGANStep(_dcgan_trainer(0, device='cpu'), 64)


def test_graphed_gan_step_takes_the_dcgan_step_with_adam_only():
    trainer = _dcgan_trainer(0, device='cpu')
    trainer.algorithm = 'wgan-gp'
    with pytest.raises(ValueError, match='--model dcgan'):
        GraphedGANStep(trainer, 64)
    with pytest.raises(TypeError, match='opt_d is a RMSprop'):
        GraphedGANStep(_dcgan_trainer(0, 'cpu', lambda ps, lr, betas: optim.RMSprop(ps, lr=lr)), 64)
    trainer = _dcgan_trainer(0, device='cpu')
    trainer.opt_d.param_groups[0]['amsgrad'] = True
    with pytest.raises(ValueError, match='opt_d uses amsgrad'):
        GraphedGANStep(trainer, 64)


@pytest.mark.skipif(mg.cuda_available(), reason='CuPy and a GPU are present')
def test_graphs_are_refused_clearly_without_a_gpu():
    with pytest.raises(RuntimeError, match='CuPy'):
        GraphedStep(lambda: None, [])


def test_adam_scalars_count_steps_from_one():
    assert adam_scalars(0.1, 0.5, 0.99, 2) == pytest.approx([0.1, 0.1 / 0.75, 0.0199 ** 0.5])
    with pytest.raises(ValueError, match='count from 1'):
        adam_scalars(0.1, 0.5, 0.99, 0)


@pytest.mark.parametrize('make, decoupled, wd', [
    (lambda ps: optim.Adam(ps, lr=1e-2, betas=(0.5, 0.999)), False, 0.0),
    (lambda ps: optim.Adam(ps, lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1), False, 0.1),
    (lambda ps: optim.AdamW(ps, lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1), True, 0.1),
], ids=['adam', 'adam_l2', 'adamw'])
def test_adam_update_follows_minigan_adam(make, decoupled, wd):
    rng = np.random.default_rng(0)
    p0, grads = rng.standard_normal((4, 5)), [rng.standard_normal((4, 5)) for _ in range(4)]
    with mg.conv_backend('numpy'):
        p = mg.tensor(p0, requires_grad=True)
        opt = make([p])
        for g in grads:
            p.grad = mg.tensor(g)
            opt.step()
    group = opt.param_groups[0]
    beta1, beta2 = group['betas']
    q, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    for t, g in enumerate(grads, 1):
        scalars = np.array(adam_scalars(group['lr'], beta1, beta2, t))
        adam_update(q, g, m, v, scalars, np.bool_(True), beta1, beta2, group['eps'], wd, decoupled)
    np.testing.assert_allclose(q, p.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(m, opt.state[id(p)]['exp_avg'], rtol=1e-12, atol=1e-14)


def test_adam_update_changes_nothing_where_not_ok():
    p, m, v = np.ones(3), np.full(3, 0.1), np.full(3, 0.2)
    g = np.array([np.nan, np.inf, 1.0])
    adam_update(p, g, m, v, np.array(adam_scalars(1e-2, 0.5, 0.999, 1)), np.bool_(False), 0.5, 0.999, 1e-8)
    assert p.tolist() == [1.0] * 3 and m.tolist() == [0.1] * 3 and v.tolist() == [0.2] * 3


# ---- on a GPU ---------------------------------------------------------------------------------------

@pytest.mark.gpu
def test_capture_fails_on_a_host_read():
    """The check's own check: a step that reads a value on the host cannot be captured, whether minigan
    refuses the read by name (t.item()) or CUDA refuses it (CuPy's own device-to-host copy)."""
    x = mg.tensor(np.ones(4, np.float32), device='cuda')
    with pytest.raises(GraphCaptureError, match=r't\.item\(\) inside a step being captured as a CUDA graph'):
        GraphedStep(lambda t: t * float(t.sum().item()), [x])
    with pytest.raises(GraphCaptureError, match='cannot be recorded as a CUDA graph'):
        GraphedStep(lambda t: t * float(t.array.sum().get()), [x])


@pytest.mark.gpu
@pytest.mark.parametrize('name', ['cuda', 'cupy'])
def test_dcgan_step_makes_no_host_round_trip(name):
    """A CUDA graph capture fails on every synchronising call, so capturing one whole DCGAN-32 step at
    batch 64 (D on real and fake, then G, both Adam updates) shows that it never waits for the host."""
    _require_gpu_backend(name)
    rng = np.random.default_rng(1)
    with mg.conv_backend(name):
        graphed = GraphedGANStep(_dcgan_trainer(0), 64)
        real = mg.tensor(rng.uniform(-1, 1, (64, 3, 32, 32)).astype(np.float32), device='cuda')
        z = mg.tensor(rng.standard_normal((64, 100, 1, 1)).astype(np.float32), device='cuda')
        out = graphed.replay(real, z).numpy()
    assert out.shape == (len(METRICS),) and np.isfinite(out).all()


def _draw_samples(trainer):
    """train.py's sample grid between steps: generate() runs G, which moves its running statistics in
    the arrays the graph uses, then gives its buffers new arrays holding the values from before."""
    generate(trainer.G, mg.tensor(np.ones((8, 100, 1, 1), np.float32), device='cuda'))


def _snapshot(trainer):
    return {name: getattr(trainer, name).state_dict() for name in ('G', 'D', 'opt_g', 'opt_d')}


def _resume(trainer, snapshot):
    """What a resume does: the modules copy the checkpoint into their arrays, the optimizers replace theirs."""
    for name, state in snapshot.items():
        getattr(trainer, name).load_state_dict(state)


def _close_changes(got, want, start, key):
    """The changes that training made to one state_dict entry agree: the difference of the two changes
    is within 1% of the eager change (Euclidean norms). Not element by element: where a gradient
    crosses zero, Adam's step flips with a last-bit difference, on a few elements of a layer, while
    a wrong learning rate or bias correction moves them all."""
    if want.dtype.kind != 'f':
        np.testing.assert_array_equal(got, want, err_msg=key)
        return
    d_got, d_want = got.astype(np.float64) - start, want.astype(np.float64) - start
    err, scale = np.linalg.norm(d_got - d_want), np.linalg.norm(d_want)
    assert scale > 0, f'{key} did not change'
    assert err <= 1e-2 * scale, f'{key}: the graphed change is off by {err:.3g}, the eager change is {scale:.3g}'


@pytest.mark.gpu
@pytest.mark.parametrize('name', ['cuda', 'cupy'])
def test_graphed_dcgan_steps_equal_eager_steps(name):
    """Three consecutive steps, each with its own batch and noise (the learning rate lowered before the
    third); a resume from the state after the first, a step; a sample grid drawn as train.py draws it,
    a step: the same metrics, weights, buffers and step counts as the eager trainer's."""
    _require_gpu_backend(name)
    rng = np.random.default_rng(2)
    batches = [rng.uniform(-1, 1, (32, 3, 32, 32)).astype(np.float32) for _ in range(5)]
    with mg.conv_backend(name):
        eager, graphed_trainer = _dcgan_trainer(0), _dcgan_trainer(0)
        start = {**{f'G.{k}': v for k, v in eager.G.state_dict().items()},
                 **{f'D.{k}': v for k, v in eager.D.state_dict().items()}}
        graphed = GraphedGANStep(graphed_trainer, 32)
        for i, images in enumerate(batches):
            if i == 1:
                snapshot = _snapshot(eager)
            for trainer in (eager, graphed_trainer):
                if i == 2:                         # a learning-rate schedule
                    for group in trainer.opt_g.param_groups + trainer.opt_d.param_groups:
                        group['lr'] = 1e-4
                if i == 3:
                    _resume(trainer, snapshot)
                if i == 4:
                    _draw_samples(trainer)
            mg.manual_seed(100 + i)
            want = eager.step(_Batches(mg.tensor(images, device='cuda')), i)
            mg.manual_seed(100 + i)
            got = graphed.step(_Batches(mg.tensor(images, device='cuda')), i)
            assert got.keys() == want.keys()
            for key in want:
                assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-6), (i, key)
    for prefix, a, b in (('G', graphed_trainer.G, eager.G), ('D', graphed_trainer.D, eager.D)):
        got, want = a.state_dict(), b.state_dict()
        for key in want:
            _close_changes(got[key], want[key], start[f'{prefix}.{key}'], f'{prefix}.{key}')
    for got_opt, want_opt in ((graphed_trainer.opt_g, eager.opt_g), (graphed_trainer.opt_d, eager.opt_d)):
        steps = [s['step'] for s in got_opt.state_dict()['state'].values()]
        assert steps == [s['step'] for s in want_opt.state_dict()['state'].values()] == [3] * len(steps)


@pytest.mark.gpu
def test_a_non_finite_loss_changes_no_weight():
    trainer = _dcgan_trainer(0)
    graphed = GraphedGANStep(trainer, 16)
    before = [p.numpy() for p in trainer.g_params + trainer.d_params]
    with pytest.raises(NonFiniteLoss, match='loss_d'):
        graphed.step(_Batches(mg.tensor(np.full((16, 3, 32, 32), np.nan, np.float32), device='cuda')))
    for p, old in zip(trainer.g_params + trainer.d_params, before):
        np.testing.assert_array_equal(p.numpy(), old)
    for opt in (trainer.opt_g, trainer.opt_d):
        assert {s['step'] for s in opt.state_dict()['state'].values()} == {0}


@pytest.mark.gpu
def test_graphed_step_replays_on_new_inputs_and_its_warm_up_leaves_no_trace():
    cp = backend.cupy_or_raise()
    w = cp.zeros(3, np.float32)

    def step(x):                                   # an in-place update, as an optimizer's
        cp.add(w, x.array, out=w)
        return Tensor(w * 2)

    graphed = GraphedStep(step, [cp.ones(3, np.float32)], preserve=[w], warmup=2)
    np.testing.assert_array_equal(w.get(), 0)
    out = graphed(cp.full(3, 2, np.float32))
    again = graphed(mg.tensor(np.full(3, 5, np.float32), device='cuda'))
    assert again is out and graphed.replays == 2
    np.testing.assert_array_equal(out.numpy(), 14)
    np.testing.assert_array_equal(w.get(), 7)
    with pytest.raises(ValueError, match='fixed shapes'):
        graphed(cp.ones(4, np.float32))


@pytest.mark.gpu
@pytest.mark.parametrize('decoupled, wd', [(False, 0.0), (False, 0.1), (True, 0.1)], ids=['adam', 'l2', 'adamw'])
@pytest.mark.parametrize('ok', [True, False])
def test_adam_kernel_matches_its_numpy_reference(decoupled, wd, ok):
    rng = np.random.default_rng(3)
    p, g, m = (rng.standard_normal(1000) for _ in range(3))
    v = rng.uniform(0, 1, 1000)
    scalars = np.array(adam_scalars(1e-2, 0.5, 0.999, 3))
    gpu = [backend.to_device(a, 'cuda') for a in (p, m, v)]
    adam_update(gpu[0], backend.to_device(g, 'cuda'), gpu[1], gpu[2], backend.to_device(scalars, 'cuda'),
                backend.to_device(np.asarray(ok), 'cuda'), 0.5, 0.999, 1e-8, wd, decoupled)
    adam_update(p, g, m, v, scalars, np.bool_(ok), 0.5, 0.999, 1e-8, wd, decoupled)
    for got, want in zip(gpu, (p, m, v)):
        np.testing.assert_allclose(backend.to_device(got, 'cpu'), want, rtol=1e-12, atol=1e-14)

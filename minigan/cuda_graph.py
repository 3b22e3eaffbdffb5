"""CUDA graphs: one whole training step captured once on a CuPy stream, then replayed batch after batch.

On a GPU a minigan step is a few hundred small kernel launches, each costing some microseconds of
Python and driver time; replaying a captured graph launches all of them with one call.

GraphedStep(step_fn, example_inputs, preserve) does it in five moves:
    1. static input buffers are made with the example inputs' shapes and dtypes;
    2. warm-up: the step runs for real on a side stream, cupy.cuda.Stream(non_blocking=True), so that
       its kernels compile, cuBLAS makes its handles and the memory pool holds every block the step
       asks for (none of that is allowed, or wise, while capturing);
    3. capture: stream.begin_capture(); outputs = step_fn(*static inputs); stream.end_capture()
       records the kernels of one step without running them;
    4. the arrays named in `preserve` (weights, optimizer moments, running statistics) get back the
       values they had before the warm-up, so that building the graph does not train;
    5. each call copies the next inputs into the static buffers and launches the graph on the
       caller's current stream (so it is ordered with everything else there, without a host wait);
       the outputs are the same device arrays every time, overwritten by each replay.
The graph reads and writes fixed addresses. The step's intermediate arrays come from a memory pool
that belongs to the graph (nothing else allocates from it), so their blocks stay reserved for it;
every array alive outside the step that it touches (weights, buffers, optimizer state, inputs) must
stay alive and keep its identity, which is why GraphedGANStep re-binds arrays that were replaced.

The rules a step must keep to be captured:
    - no host synchronisation: no .item(), .numpy(), .tolist(), float(t), int(t), bool(t), `if t:`,
      print(t), no cupy.cuda.Device().synchronize(). minigan's own reads refuse at once, naming the
      call (backend.refuse_during_capture, called by Tensor and backend.to_device); any other makes
      the capture fail. Either way GraphCaptureError says so: that is how tests/test_cuda_graph.py
      checks that a training step never waits for the host;
    - no Python branching on device values (they are unknown while the kernels are only recorded):
      compute a device flag instead, as GraphedGANStep does for its NaN check;
    - nothing that changes from step to step may be a Python number baked into a kernel launch: take
      it as an input (the noise batch), or keep it in a device array that the host rewrites before
      each replay (here: the learning rate and Adam's bias corrections);
    - no host-to-device copy of a host array inside the step: it need not fail the capture, and where
      it does not, it is recorded as a copy from a staging buffer that CuPy reuses, so replays read
      stale data (0-d values are fine: CuPy writes them with a fill kernel). minigan refuses its own
      (mg.tensor(..., device='cuda'), t.to('cuda'), backend.to_device, and the random draws
      mg.randn/rand/randint(..., device='cuda'), which are made on the host); a direct
      cupy.asarray(numpy_array) cannot be caught here. Nor may the step put work on the legacy
      default stream: the capture stream does not wait for it, so it would run once, at capture.
      Those two mistakes do not fail loudly, which is why the graphed step is also checked against
      the eager one, step by step;
    - fixed shapes: a graph replays the shapes it was captured with (drop an epoch's short last batch).

GraphedGANStep is GANTrainer's DCGAN step (D on a real and a fake batch, then G; non-saturating loss)
kept to those rules: the noise is an input drawn on the host from minigan's generator as the eager
step draws it; Adam updates read their step size from device memory (adam_update); the losses are
checked for NaN/Inf on the device (a non-finite loss skips the updates it would feed) and read by the
host after the replay, from one small static output array. minigan.train calls it for --cuda-graph:

    trainer = GraphedGANStep(GANTrainer('dcgan', G, D, opt_g, opt_d, nz=nz), batch_size)
    metrics = trainer.step(source, step_index)    # as GANTrainer.step: Python floats, NonFiniteLoss

Nothing here imports CuPy until a graph is built; without a GPU building one raises a clear error.
"""
import functools

import numpy as np

from . import autograd
from .backend import GraphCaptureError, cupy_or_raise, get_array_module, is_cupy_array
from .gan import losses
from .gan.trainer import NonFiniteLoss
from .optim import Adam
from .tensor import Tensor

METRICS = ('loss_d', 'loss_g', 'd_x', 'd_g_z1', 'd_g_z2')   # GraphedGANStep's outputs, in order

_CAPTURE_HELP = ('the step cannot be recorded as a CUDA graph: while capturing it asked the host for '
                 'something, most often a device-to-host copy or a synchronisation (.item(), .numpy(), '
                 'float(t), bool(t), `if t:`, print(t), Device().synchronize()); keep such reads '
                 'after the replay, on the step\'s outputs')


# ---- checks at the door ------------------------------------------------------------------------

def _device_array(what, value):
    """The CuPy array of a CUDA tensor or of a CuPy array; a TypeError naming the fix otherwise."""
    data = value.array if isinstance(value, Tensor) else value
    if is_cupy_array(data):
        return data
    if isinstance(value, Tensor):
        kind = f'a minigan Tensor on the {value.device}'
    else:
        kind = f'a {type(data).__module__}.{type(data).__name__} (on the CPU)'
    raise TypeError(f'{what} is {kind}: a CUDA graph replays GPU work only; move tensors and models '
                    'with .to("cuda") (arrays with cupy.asarray) before capturing')


def _cupy_with_graphs():
    """CuPy, after checking that it sees a GPU and can capture streams."""
    cp = cupy_or_raise()
    if getattr(cp.cuda.runtime, 'is_hip', False):
        raise RuntimeError('CUDA graphs: CuPy does not capture streams on ROCm/HIP')
    if not hasattr(cp.cuda.Stream, 'begin_capture'):
        raise RuntimeError(f'CUDA graphs need CuPy 10 or newer (stream capture); this is CuPy {cp.__version__}')
    return cp


# ---- a captured step ---------------------------------------------------------------------------

class GraphedStep:
    """A step captured as a CUDA graph; call it with the next inputs to replay it.

        graphed = GraphedStep(step_fn, [x, y], preserve=[w.array for w in weights])
        out = graphed(next_x, next_y)       # the step's outputs: device Tensors, rewritten by each call

    step_fn(*inputs) takes minigan Tensors (wrapping the static input buffers) and returns a Tensor
    or CuPy array, or a tuple or list of them. example_inputs: CUDA Tensors or CuPy arrays, whose
    shapes and dtypes every later call must match. preserve: CuPy arrays the step updates in place,
    saved before the warm-up and restored after the capture. warmup: real runs before the capture.
    """

    def __init__(self, step_fn, example_inputs, preserve=(), warmup=2):
        examples = [_device_array(f'input {i}', a) for i, a in enumerate(example_inputs)]
        self._preserved = [_device_array(f'preserve[{i}]', a) for i, a in enumerate(preserve)]
        if int(warmup) < 1:
            raise ValueError(f'warmup must be 1 or more (got {warmup}): kernels compile and memory is '
                             'allocated in the warm-up, neither of which may happen during capture')
        cp = _cupy_with_graphs()
        current = cp.cuda.get_current_stream()
        self.inputs = [a.copy() for a in examples]
        saved = [a.copy() for a in self._preserved]
        self.stream = cp.cuda.Stream(non_blocking=True)
        self._pool = cp.cuda.MemoryPool()        # the graph's own: its blocks are never handed to others
        self.stream.wait_event(current.record())  # the copies above, and all earlier work, come first
        args = [Tensor(a) for a in self.inputs]
        try:
            with cp.cuda.using_allocator(self._pool.malloc), self.stream:
                for _ in range(int(warmup)):
                    step_fn(*args)
                self.stream.synchronize()
                outputs, self.graph = _capture(self.stream, step_fn, args)
        finally:                                 # success or not, the warm-up leaves no trace
            self.stream.synchronize()
            for a, s in zip(self._preserved, saved):
                a[...] = s
        self._single = not isinstance(outputs, (tuple, list))
        self.outputs = tuple(_output_tensor(i, o) for i, o in enumerate([outputs] if self._single else outputs))
        self.replays = 0

    def __call__(self, *inputs):
        """Copy `inputs` into the static buffers and replay the step; returns its output Tensors."""
        if len(inputs) != len(self.inputs):
            raise TypeError(f'this graph was captured with {len(self.inputs)} inputs, got {len(inputs)}')
        for i, (static, new) in enumerate(zip(self.inputs, inputs)):
            new = _device_array(f'input {i}', new)
            if new is not static:
                _check_like(i, new, static)
                static[...] = new
        cp = cupy_or_raise()
        self.graph.launch(stream=cp.cuda.get_current_stream())
        self.replays += 1
        return self.outputs[0] if self._single else self.outputs


def _check_like(i, new, static):
    if new.shape != static.shape or new.dtype != static.dtype:
        raise ValueError(f'input {i} is {new.dtype} of shape {new.shape}, but the graph was captured for '
                         f'{static.dtype} of shape {static.shape}: a graph replays fixed shapes (drop the '
                         'last, smaller batch of an epoch, or capture another graph for this shape)')
    if new.device.id != static.device.id:
        raise ValueError(f'input {i} is on GPU {new.device.id}, the graph on GPU {static.device.id}')


def _capture(stream, step_fn, args):
    """(outputs, graph) of one run of step_fn recorded on `stream`; GraphCaptureError if it cannot be."""
    stream.begin_capture()
    try:
        outputs = step_fn(*args)
    except BaseException as e:
        _abandon_capture(stream)
        if not isinstance(e, Exception) or isinstance(e, GraphCaptureError):
            raise                                # Ctrl-C, and the capture guard's errors (they name the call)
        raise GraphCaptureError(f'{_CAPTURE_HELP} (it raised {type(e).__name__}: {e})') from e
    try:
        graph = stream.end_capture()
    except Exception as e:                       # an illegal call that did not raise at once
        raise GraphCaptureError(f'{_CAPTURE_HELP} (ending the capture failed: {e})') from e
    return outputs, graph


def _abandon_capture(stream):
    """End a capture that failed half way (CUDA reports the invalidated capture: that is expected)."""
    try:
        stream.end_capture()
    except Exception:
        pass


def _output_tensor(i, value):
    """Output i of the step as a Tensor cut from the graph (its array is what each replay rewrites)."""
    data = value.array if isinstance(value, Tensor) else value
    if not is_cupy_array(data):
        raise TypeError(f'output {i} of the step is a {type(value).__name__}; a captured step returns device '
                        'Tensors or CuPy arrays (a Python number would have needed the host)')
    return Tensor(data)


# ---- Adam with its step's numbers in device memory -----------------------------------------------

def adam_scalars(lr, beta1, beta2, step):
    """[lr, lr / (1 - beta1^t), sqrt(1 - beta2^t)] for step t >= 1: what adam_update reads each step."""
    if step < 1:
        raise ValueError(f'Adam steps count from 1, got {step}')
    return [lr, lr / (1 - beta1 ** step), (1 - beta2 ** step) ** 0.5]


def adam_update(p, g, m, v, scalars, ok, beta1, beta2, eps, weight_decay=0.0, decoupled=False):
    """One Adam update (AdamW's when decoupled) of the arrays p, m, v in place: optim/adam.py's formulas.

    scalars: an array [lr, step size, sqrt(1 - beta2^t)] (adam_scalars) on p's device, which the host
    rewrites between graph replays; ok: a boolean array (0-d), False leaving p, m and v as they are
    (a non-finite loss). No value goes to the host. CuPy arrays take one fused kernel (_adam_kernel);
    NumPy arrays the same formulas written out below, the reference the kernel is tested against.
    """
    if is_cupy_array(p):
        constants = (p.dtype.type(c) for c in (beta1, beta2, eps, weight_decay))
        _adam_kernel()(g, scalars, ok, *constants, np.bool_(decoupled), p, m, v)
        return
    lr, step_size, bias2_sqrt = scalars[0], scalars[1], scalars[2]
    with np.errstate(all='ignore'):              # where not ok, the new values may be NaN: not kept
        w = p * (1 - lr * weight_decay) if decoupled else p
        if not decoupled:
            g = g + weight_decay * p
        m_new = beta1 * m + (1 - beta1) * g
        v_new = beta2 * v + (1 - beta2) * (g * g)
        p_new = w - step_size * (m_new / (np.sqrt(v_new) / bias2_sqrt + eps))
    for dst, src in ((m, m_new), (v, v_new), (p, p_new)):
        np.copyto(dst, src, where=ok)


_ADAM_OPERATION = """
    if (ok) {
        T w = p, grad = g;
        if (decoupled) w *= T(1) - s[0] * wd;
        else grad += wd * w;
        const T m_new = b1 * m + (T(1) - b1) * grad;
        const T v_new = b2 * v + (T(1) - b2) * (grad * grad);
        m = m_new;
        v = v_new;
        p = w - s[1] * (m_new / (sqrt(v_new) / s[2] + eps));
    }
"""


@functools.lru_cache(maxsize=None)
def _adam_kernel():
    """adam_update for CuPy arrays, element by element as kernels/optimizers.cu's adam_step, but with
    lr, step size and sqrt(1 - beta2^t) read from the device array s, and a flag that skips it all."""
    cp = cupy_or_raise()
    return cp.ElementwiseKernel('T g, raw T s, bool ok, T b1, T b2, T eps, T wd, bool decoupled', 'T p, T m, T v',
                                _ADAM_OPERATION, 'minigan_graph_adam')


class _DeviceAdam:
    """A minigan Adam (or AdamW) optimizer, updating inside a captured step.

    The moments are the optimizer's own state arrays, so its state_dict() and the checkpoints stay
    right; the step counters stay on the host, in that state, and advance after each replay as
    Optimizer.step advances them. prepare() writes each parameter's learning rate and bias corrections
    for the coming step into `scalars` on the device. lr may change between steps (schedules);
    betas, eps and weight_decay are fixed at capture."""

    def __init__(self, opt, name):
        self.opt, self.name = opt, name
        self.params = [p for group in opt.param_groups for p in group['params']]
        self.groups = [group for group in opt.param_groups for _ in group['params']]
        self.fixed = [self._fixed(group) for group in self.groups]
        self.moments = [self._moments(p) for p in self.params]
        cp = cupy_or_raise()
        self.scalars = cp.zeros((len(self.params), 3), dtype=self.params[0].dtype)
        self.updated = []                        # which parameters the captured step updates

    @staticmethod
    def _fixed(group):
        return tuple(group['betas']), group['eps'], group['weight_decay']

    def _moments(self, p):
        """(exp_avg, exp_avg_sq) of p in the optimizer's state, made as Adam makes them on first use."""
        state = self.opt.state.setdefault(id(p), {})
        if not state:
            xp = get_array_module(p.array)
            state.update(step=0, exp_avg=xp.zeros_like(p.array), exp_avg_sq=xp.zeros_like(p.array))
        for key in ('exp_avg', 'exp_avg_sq'):
            a = _device_array(f'{self.name}: the state {key!r} of a parameter of shape {p.shape}', state[key])
            if a.shape != p.shape or a.dtype != p.dtype or not a.flags.c_contiguous:
                raise ValueError(f'{self.name}: the state {key!r} of a parameter of shape {p.shape} is '
                                 f'{a.dtype} of shape {a.shape}; it must be a C-contiguous {p.dtype} array '
                                 'of the parameter\'s shape')
        return state['exp_avg'], state['exp_avg_sq']

    def update(self, grads, ok):
        """Inside the captured step: update every parameter that has a gradient (skipped where not ok)."""
        self.updated = []
        for i, (p, g) in enumerate(zip(self.params, grads)):
            if g is None:
                continue
            (beta1, beta2), eps, wd = self.fixed[i]
            m, v = self.moments[i]
            adam_update(p.array, g.array.astype(p.dtype, copy=False), m, v, self.scalars[i], ok, beta1, beta2,
                        eps, wd, self.opt._decoupled)
            self.updated.append(i)

    def prepare(self):
        """Before a replay: check the fixed options, put back replaced state, write this step's scalars."""
        rows = []
        for i, p in enumerate(self.params):
            if self._fixed(self.groups[i]) != self.fixed[i]:
                raise ValueError(f'{self.name}: betas, eps or weight_decay changed after the graph was captured '
                                 f'(from {self.fixed[i]} to {self._fixed(self.groups[i])}); they are fixed at '
                                 'capture, only lr may change: capture a new graph')
            state = self._rebind(i, p)
            (beta1, beta2), _, _ = self.fixed[i]
            rows.append(adam_scalars(self.groups[i]['lr'], beta1, beta2, state['step'] + 1))
        self.scalars[...] = cupy_or_raise().asarray(np.asarray(rows, dtype=self.scalars.dtype))

    def _rebind(self, i, p):
        """p's state, holding the captured moment arrays again (Optimizer.load_state_dict replaces them)."""
        state = self.opt.state.setdefault(id(p), {})
        state.setdefault('step', 0)
        for key, captured in zip(('exp_avg', 'exp_avg_sq'), self.moments[i]):
            if state.get(key) is not captured:
                captured[...] = 0 if state.get(key) is None else cupy_or_raise().asarray(state[key])
                state[key] = captured
        return state

    def advance(self, by=1):
        """After a replay (by=1), or to take back a skipped update (by=-1): the host step counters."""
        for i in self.updated:
            self.opt.state[id(self.params[i])]['step'] += by


# ---- the DCGAN step, graphed ---------------------------------------------------------------------

def _check_trainer(trainer, batch_size):
    """Everything GraphedGANStep needs of a GANTrainer, checked on the host before CuPy is touched."""
    algorithm = getattr(trainer, 'algorithm', None)
    if algorithm != 'dcgan':
        raise ValueError(f'GraphedGANStep captures the DCGAN step, this trainer runs {algorithm!r}: CUDA graphs '
                         '(--cuda-graph) go with --model dcgan')
    for name in ('opt_d', 'opt_g'):
        opt = getattr(trainer, name)
        if not isinstance(opt, Adam):
            raise TypeError(f'GraphedGANStep updates with Adam (the DCGAN recipe); {name} is a {type(opt).__name__}')
        for group in opt.param_groups:
            if group['amsgrad'] or group['maximize']:
                raise ValueError(f'GraphedGANStep: {name} uses amsgrad or maximize, which its Adam does not do')
    if not all(hasattr(trainer.G, a) for a in ('nc', 'image_size', 'nz')):
        raise TypeError('GraphedGANStep needs the shape of the images: G must be a minigan.models generator '
                        '(with nz, nc and image_size)')
    params = trainer.g_params + trainer.d_params
    for p in params:
        if p.device != 'cuda':
            raise TypeError('GraphedGANStep: the models are on the CPU; a CUDA graph replays GPU work only: '
                            'move G and D with .to("cuda") before making their optimizers and the trainer')
    if len({p.dtype for p in params}) != 1 or params[0].dtype not in (np.float32, np.float64):
        raise TypeError(f'GraphedGANStep: the parameters must all be float32 or all float64, got '
                        f'{sorted({str(p.dtype) for p in params})}')
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 2:
        raise ValueError(f'GraphedGANStep: batch_size must be a whole number of 2 or more (batch norm needs '
                         f'two samples), got {batch_size!r}')


def _mean_sigmoid(logits):
    """mean sigmoid(logits) on the device in float64, as GANTrainer reports D(x) (tanh form: no overflow)."""
    xp = get_array_module(logits.array)
    return (0.5 * (1.0 + xp.tanh(0.5 * logits.array.astype(xp.float64)))).mean()


class GraphedGANStep:
    """GANTrainer's DCGAN step captured as a CUDA graph: what `minigan.train --cuda-graph` runs.

        graphed = GraphedGANStep(trainer, batch_size)    # trainer: GANTrainer('dcgan', ...) on 'cuda'
        metrics = graphed.step(source, step_index)       # as trainer.step: Python floats, NonFiniteLoss

    The same numbers as trainer.step, batch after batch: the same noise (drawn by trainer.noise from
    minigan's generator), the same losses and the same Adam formulas; the optimizers' state (moments
    and step counts) and the models' weights and buffers are theirs, so state_dict() and checkpoints
    work as before. The graph is captured in the modules' current mode (training). What differs: a
    non-finite loss is found after the replay, on the device the updates it would feed were skipped
    (no parameter or moment changed; batch-norm running statistics did, as in the eager step), and
    the parameters' .grad are not set. Lower level: replay(real, z) runs a step without waiting for
    the host and returns the device array of METRICS; metrics(out) reads it.
    """

    def __init__(self, trainer, batch_size, warmup=2):
        _check_trainer(trainer, batch_size)
        cp = _cupy_with_graphs()
        self.trainer, self.batch_size = trainer, int(batch_size)
        self.adam_d = _DeviceAdam(trainer.opt_d, 'opt_d')
        self.adam_g = _DeviceAdam(trainer.opt_g, 'opt_g')
        G, D = trainer.G, trainer.D
        tensors = list(G.parameters()) + list(D.parameters()) + list(G.buffers()) + list(D.buffers())
        self._bound = [(t, t.array) for t in tensors if t is not None]
        dtype = trainer.g_params[0].dtype
        real = cp.zeros((self.batch_size, G.nc, G.image_size, G.image_size), dtype=dtype)
        z = cp.zeros((self.batch_size, trainer.nz, 1, 1), dtype=dtype)
        moments = [a for adam in (self.adam_d, self.adam_g) for pair in adam.moments for a in pair]
        self._prepare()
        self.graph = GraphedStep(self._step, [real, z], preserve=[a for _, a in self._bound] + moments,
                                 warmup=warmup)

    def _step(self, real, z):
        """The step that is captured: GANTrainer._step_dcgan without a host synchronisation."""
        xp = cupy_or_raise()
        t = self.trainer
        with autograd.enable_grad():
            fake = t.G(z)
            d_real = t.critic(real)
            d_fake = t.critic(fake.detach())
            loss_d = losses.dcgan_d_loss(d_real, d_fake)
            ok_d = xp.isfinite(loss_d.array)
            self.adam_d.update(autograd.grad([loss_d], t.d_params, allow_unused=True), ok_d)
            d_fake2 = t.critic(fake)                   # D after its step, on the same fakes
            loss_g = losses.dcgan_g_loss(d_fake2)
            ok_g = ok_d & xp.isfinite(loss_g.array)
            self.adam_g.update(autograd.grad([loss_g], t.g_params, allow_unused=True), ok_g)
        return xp.stack([loss_d.array.astype(xp.float64), loss_g.array.astype(xp.float64),
                         _mean_sigmoid(d_real), _mean_sigmoid(d_fake), _mean_sigmoid(d_fake2)])

    def _prepare(self):
        """Before a replay: every tensor holds its captured array again, and Adam's scalars are written.

        Some code gives a tensor a new array instead of writing into its own (train.py's generate()
        restores G's buffers by assignment; Optimizer.load_state_dict replaces the state): the new
        values are copied into the array the graph uses, which goes back into the tensor."""
        for t, captured in self._bound:
            if t.array is not captured:
                if tuple(t.array.shape) != captured.shape:
                    raise ValueError(f'a tensor of the graphed models changed shape from {captured.shape} '
                                     f'to {tuple(t.array.shape)}: capture a new graph')
                captured[...] = cupy_or_raise().asarray(t.array).astype(captured.dtype, copy=False)
                t.array = captured
        self.adam_d.prepare()
        self.adam_g.prepare()

    def replay(self, real, z):
        """One training step on the batch `real` and noise `z` (CUDA Tensors): the (5,) float64 device
        array of METRICS, overwritten by the next replay. Nothing waits for the GPU."""
        self._prepare()
        out = self.graph(real, z)
        self.adam_d.advance()
        self.adam_g.advance()
        return out

    def metrics(self, out, images):
        """The host's copy of a replay's results (one small copy): a dict as GANTrainer.step returns.

        A non-finite loss raises NonFiniteLoss, after taking back the step counts of the updates
        that the device skipped (loss_d: both; loss_g: G's)."""
        values = dict(zip(METRICS, (float(v) for v in out.numpy())))
        for name, skipped in (('loss_d', (self.adam_d, self.adam_g)), ('loss_g', (self.adam_g,))):
            if not np.isfinite(values[name]):
                for adam in skipped:
                    adam.advance(-1)
                raise NonFiniteLoss(name, values[name])
        return {'loss_d': values['loss_d'], 'd_x': values['d_x'], 'd_g_z1': values['d_g_z1'],
                'loss_g': values['loss_g'], 'd_g_z2': values['d_g_z2'], 'real_images': images}

    def step(self, source, step_index=0):
        """GANTrainer.step for the DCGAN step: the next real batch from `source`, fresh noise, one replay."""
        real, _ = source.next()
        z = self.trainer.noise(real.shape[0], real)
        return self.metrics(self.replay(real, z), real.shape[0])

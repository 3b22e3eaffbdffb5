"""The graph and the backward pass.

A `Function` is one op: `forward` works on raw NumPy/CuPy arrays, `backward`
is written with minigan's own differentiable ops, so the gradient it returns
is itself a graph when `create_graph=True`: that is all double backprop needs.

Each output tensor points to the Function that made it (`creator`); a Function
holds its input tensors and only weak references to its outputs, so the graph
has no reference cycles and dies with its last tensor.

`_tensor.Tensor` below is minigan's Tensor: the tensor module is imported on the
last line of this file (tensor.py imports this one; see the comment at its end).
"""
import contextlib
import heapq
import itertools
import weakref

import numpy as np

from . import backend

_grad_enabled = True          # grad mode: the one global switch, like torch's
_creation_order = itertools.count()   # orders backward deterministically (not by memory address)


def is_grad_enabled():
    return _grad_enabled


@contextlib.contextmanager
def set_grad_enabled(mode):
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, bool(mode)
    try:
        yield
    finally:
        _grad_enabled = previous


def no_grad():
    """Context manager: ops inside record no graph (inference, optimiser updates)."""
    return set_grad_enabled(False)


def enable_grad():
    return set_grad_enabled(True)


class Function:
    """Base class of every op. Subclasses define forward(*arrays) and backward(*grads).

    In backward, `self.inputs` are the input Tensors, `self.output(i)` the i-th
    output Tensor, and `self.needs_input_grad[i]` says whether input i wants a
    gradient (return None for those that don't, and skip their work).
    """
    generation = 0
    inputs = None

    def __call__(self, *inputs):
        # Every op passes through here, so it is written with plain loops: each step of a generator
        # expression would be one more Python call, and a reader's debugger would stop in each.
        arrays, needs = [], []
        for x in inputs:
            if x is not None and not isinstance(x, _tensor.Tensor):
                raise TypeError(f'{type(self).__name__} takes Tensors, got {type(x).__name__}')
            arrays.append(None if x is None else x.array)
            needs.append(x is not None and x.requires_grad)
        ys = self.forward(*arrays)
        single = not isinstance(ys, tuple)
        outputs = []
        for y in ((ys,) if single else ys):
            if not hasattr(y, 'dtype') or isinstance(y, np.generic):
                y = np.asarray(y)         # always an array, as in Tensor(y) (NumPy reductions return scalars)
            # Tensor(y) made without running Tensor.__init__, so an op's result costs no call into
            # tensor.py: only .array is set; grad, creator, ... keep their defaults (class Tensor's top)
            out = object.__new__(_tensor.Tensor)
            out.array = y
            outputs.append(out)
        outputs = tuple(outputs)
        if _grad_enabled and any(needs):
            self.inputs = inputs
            self.needs_input_grad = tuple(needs)
            self.generation = 0
            for x in inputs:
                if x is not None:
                    self.generation = max(self.generation, x.generation)
            self._seq = next(_creation_order)   # ties in generation: newest first, the same every run
            refs, specs = [], []
            for y in outputs:
                if y.array.dtype.kind in 'fc':      # integer/bool outputs carry no gradient, as in PyTorch
                    y.creator, y.requires_grad, y.generation = self, True, self.generation + 1
                refs.append(weakref.ref(y))
                # enough to build a zero gradient for an output that was dropped before backward
                specs.append((y.shape, y.dtype, type(y.array)))
            self._outputs, self._output_specs = tuple(refs), tuple(specs)
            self._record_versions()
        return outputs[0] if single else outputs

    def output(self, i=0):
        y = self._outputs[i]()
        if y is not None and y._version != self._output_versions[i]:
            raise _modified_error(self, 'output', i, y, self._output_versions[i])
        return y

    def _record_versions(self):
        """Remember the versions of inputs and outputs: backward refuses them once changed in place."""
        inputs, outputs = [], []             # plain loops, as in __call__ (this runs for every op)
        for x in self.inputs:
            inputs.append(None if x is None else x._vc[0])
        for ref in self._outputs:
            y = ref()
            outputs.append(None if y is None else y._vc[0])
        self._input_versions, self._output_versions = tuple(inputs), outputs

    def _check_versions(self):
        for i, (x, v) in enumerate(zip(self.inputs, self._input_versions)):
            if x is not None and x._vc[0] != v:
                raise _modified_error(self, 'input', i, x, v)

    def __repr__(self):
        """<Mul inputs: (2,3) float32, (3,) float32 -> (2,3) float32>: what the op was applied to."""
        name = type(self).__name__
        if self.inputs is None:        # never recorded (no input wanted a gradient), or freed by backward
            return f'<{name} (graph freed by backward)>' if hasattr(self, '_outputs') else f'<{name}>'
        inputs = ', '.join('None' if x is None else _describe(x.shape, x.dtype) for x in self.inputs)
        outputs = ', '.join(_describe(shape, dtype) for shape, dtype, _ in self._output_specs)
        return f'<{name} inputs: {inputs} -> {outputs}>'

    def forward(self, *xs):
        raise NotImplementedError(f'{type(self).__name__} has no forward')

    def backward(self, *gys):
        raise NotImplementedError(f'{type(self).__name__} is not differentiable')


def _describe(shape, dtype):
    return f'{str(tuple(shape)).replace(" ", "")} {dtype}'


def _functions_leading_to(roots, targets):
    """The set of Functions from which some target tensor is reachable (walking inputs)."""
    target_ids = {id(t) for t in targets}
    useful = {}                       # id(function) -> bool
    stack = [t.creator for t in roots if t.creator is not None]
    while stack:                      # iterative post-order walk, memoised
        f = stack[-1]
        if id(f) in useful:
            stack.pop()
            continue
        if f.inputs is None:
            raise RuntimeError('this graph was already freed by a backward pass; '
                               'pass retain_graph=True to the first backward to reuse it')
        pending = [x.creator for x in f.inputs if x is not None and x.creator is not None
                   and id(x.creator) not in useful]
        if pending:
            stack.extend(pending)
            continue
        stack.pop()
        useful[id(f)] = any(x is not None and x.requires_grad and
                            (id(x) in target_ids or (x.creator is not None and useful[id(x.creator)]))
                            for x in f.inputs)
    return useful


def _uses_of(outputs, target_ids):
    """{id(target): how many inputs of the Functions behind `outputs` are that target}."""
    uses, seen = dict.fromkeys(target_ids, 0), set()
    stack = [t.creator for t in outputs if t.creator is not None]
    while stack:
        f = stack.pop()
        if id(f) in seen or f.inputs is None:
            continue
        seen.add(id(f))
        for x in f.inputs:
            if x is not None and id(x) in uses:
                uses[id(x)] += 1
            if x is not None and x.creator is not None:
                stack.append(x.creator)
    return uses


def run_backward(outputs, grad_outputs, inputs=None, create_graph=False, retain_graph=None, on_ready=None):
    """Propagate gradients from `outputs`; return {id(tensor): (tensor, grad)} for the targets.

    targets are `inputs` when given (mg.grad), else every leaf that requires grad.
    on_ready(x, grad): called for each leaf in `inputs` as soon as its gradient is complete,
    while the rest of the backward pass goes on (data parallel training starts averaging
    the gradients of the last layers over the processes then).
    """
    retain_graph = create_graph if retain_graph is None else retain_graph
    useful = None if inputs is None else _functions_leading_to(outputs, inputs)
    target_ids = None if inputs is None else {id(t) for t in inputs}

    def wanted(x):                    # does input x need a gradient?
        if x is None or not x.requires_grad:
            return False
        if target_ids is None:
            return True
        return id(x) in target_ids or (x.creator is not None and useful.get(id(x.creator), False))

    grads, result, heap, seen = {}, {}, [], set()
    pending = _uses_of(outputs, target_ids) if on_ready is not None else {}
    fired = set()

    def maybe_ready(f):                  # a leaf target whose last consumer is done has its gradient
        for x in f.inputs:
            if x is not None and x.creator is None and pending.get(id(x), 0) > 0:
                pending[id(x)] -= 1
                if pending[id(x)] == 0:
                    fired.add(id(x))
                    on_ready(x, grads[id(x)][1] if id(x) in grads else None)

    def add_grad(x, g):
        if id(x) in grads:
            grads[id(x)] = (x, grads[id(x)][1] + g)
        else:
            grads[id(x)] = (x, g)
        f = x.creator
        if f is not None and id(f) not in seen:
            if f.inputs is None:
                raise RuntimeError('this graph was already freed by a backward pass; '
                                   'pass retain_graph=True to the first backward to reuse it')
            seen.add(id(f))
            heapq.heappush(heap, (-f.generation, -f._seq, f))

    with set_grad_enabled(create_graph):
        for y, gy in zip(outputs, grad_outputs):
            add_grad(y, gy)
        while heap:
            _, _, f = heapq.heappop(heap)
            gys = []
            for ref in f._outputs:
                y = ref()
                entry = grads.pop(id(y), None) if y is not None else None
                if entry is not None and target_ids is not None and id(y) in target_ids:
                    result[id(y)] = entry
                gys.append(None if entry is None else entry[1])
            needs = tuple(wanted(x) for x in f.inputs)
            if any(needs) and any(g is not None for g in gys):
                gys = [g if g is not None else _zeros_like_output(f, i) for i, g in enumerate(gys)]
                f.needs_input_grad = needs
                f._check_versions()
                gxs = f.backward(*gys)
                gxs = gxs if isinstance(gxs, tuple) else (gxs,)
                if len(gxs) != len(f.inputs):
                    raise RuntimeError(f'{type(f).__name__}.backward returned {len(gxs)} gradients '
                                       f'for {len(f.inputs)} inputs')
                for x, need, gx in zip(f.inputs, needs, gxs):
                    if need and gx is not None:
                        if gx.shape != x.shape:
                            raise RuntimeError(f'{type(f).__name__}.backward returned a gradient of shape '
                                               f'{gx.shape} for an input of shape {x.shape}')
                        if gx.dtype != x.dtype:   # mixed-dtype ops: the gradient takes its input's dtype
                            gx = gx.to(dtype=x.dtype)
                        add_grad(x, gx)
            if pending:
                maybe_ready(f)
            if not retain_graph:
                f.inputs = None       # free the graph: the saved tensors go with it
    for key, entry in grads.items():  # what is left: leaves, and targets without a creator
        if target_ids is None or key in target_ids:
            result[key] = entry
    if on_ready is not None:          # targets whose last consumer never ran (no gradient reached it)
        for x in inputs:
            if id(x) not in fired and x.creator is None:
                fired.add(id(x))
                on_ready(x, result[id(x)][1] if id(x) in result else None)
    return result


def _zeros_like_output(f, i):
    """A zero gradient for output i, built from its recorded shape (the output itself may be gone)."""
    shape, dtype, array_type = f._output_specs[i]
    xp = backend.cupy_or_raise() if array_type.__module__.startswith('cupy') else np
    return _tensor.Tensor(xp.zeros(shape, dtype))


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         only_inputs=True, allow_unused=False):
    """Gradients of `outputs` with respect to `inputs`, as new Tensors; `.grad` is left alone.

    With create_graph=True the returned gradients are part of the graph and can
    be differentiated again (the WGAN-GP penalty does this). The graph is kept
    when retain_graph (default: create_graph) is true. only_inputs is accepted and
    ignored, as PyTorch does: only `inputs` ever get gradients here.
    """
    outputs = [outputs] if isinstance(outputs, _tensor.Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, _tensor.Tensor) else list(inputs)
    grad_outputs = _default_grad_outputs(outputs, grad_outputs)
    for i, x in enumerate(inputs):
        if not x.requires_grad:
            raise RuntimeError(f'input {i} of grad() does not require grad: call requires_grad_() on it')
    found = run_backward(outputs, grad_outputs, inputs, create_graph, retain_graph)
    results = []
    for i, x in enumerate(inputs):
        if id(x) in found:
            results.append(found[id(x)][1])
        elif allow_unused:
            results.append(None)
        else:
            raise RuntimeError(f'input {i} of grad() was not used to compute the outputs; '
                               'pass allow_unused=True to get None for it')
    return tuple(results)


def Variable(data, requires_grad=False, volatile=False):
    """PyTorch's pre-0.4 wrapper, still in many GAN tutorials: a Tensor is a Variable now, so this
    returns `data` itself (made to require grad if asked)."""
    if requires_grad and not data.requires_grad:
        data.requires_grad_()
    return data


class GradShapeError(ValueError, RuntimeError):
    """A grad_output whose shape differs from its output's (a RuntimeError in PyTorch, so both)."""


def _default_grad_outputs(outputs, grad_outputs):
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, _tensor.Tensor):
        grad_outputs = [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise ValueError(f'got {len(grad_outputs)} grad_outputs for {len(outputs)} outputs')
    result = []
    for i, (y, g) in enumerate(zip(outputs, grad_outputs)):
        if not y.requires_grad:
            raise RuntimeError(f'output {i} does not require grad and has no graph: '
                               'did you compute it under no_grad() or from detached tensors?')
        if g is None:
            if y.array.size != 1:
                raise RuntimeError(f'output {i} has shape {y.shape}: a gradient can be implied only for '
                                   'a single-element output; pass grad_outputs (or backward(grad))')
            g = _tensor.Tensor(backend.get_array_module(y.array).ones_like(y.array))   # ones, even at inf/nan
        elif not isinstance(g, _tensor.Tensor):       # arrays and numbers take the output's dtype and device
            host = backend.to_device(g, 'cpu') if hasattr(g, 'shape') else g
            g = _tensor.Tensor(backend.to_device(np.asarray(host, dtype=y.dtype), y.device))
        if g.shape != y.shape:
            raise GradShapeError(f'grad_output {i} has shape {g.shape}, but the output has shape {y.shape}: '
                                 'pass a gradient of the same shape as the output')
        if g.dtype != y.dtype:                        # as PyTorch: the gradient is cast to the output's dtype
            g = g.to(dtype=y.dtype)
        result.append(g)
    return result


# ---- in-place changes ------------------------------------------------------
def _modified_error(f, kind, i, x, expected):
    state = ('was changed in place after it was made' if expected == -1 else
             f'is at version {x._version}; expected version {expected} instead')
    return RuntimeError(
        f'one of the variables needed for gradient computation has been modified by an inplace '
        f'operation: {kind} {i} of {type(f).__name__} (shape {x.shape}) {state}. Change a copy '
        f'(x.clone()) or do the in-place change after backward')


def record_inplace(x, op, args):
    """x <- op(x, *args) as a step of the graph, keeping x's array (Tensor.add_ etc. under grad mode).

    A copy of x's old value takes x's old place in the graph, as its creator's output;
    x becomes the output of op. The old creator may no longer read its output: it changed.
    """
    before = _tensor.Tensor(x.array.copy())
    before.requires_grad, before.creator, before.generation = x.requires_grad, x.creator, x.generation
    f = x.creator
    if f is not None:
        i = next(k for k, ref in enumerate(f._outputs) if ref() is x)
        f._outputs = f._outputs[:i] + (weakref.ref(before),) + f._outputs[i + 1:]
        f._output_versions[i] = -1          # never matches: reading this output in backward raises
    result = op(before, *args)
    if result.dtype != x.dtype:             # in place keeps x's dtype, as in PyTorch
        result = result.to(dtype=x.dtype)
    if result.creator is None and result.requires_grad or any(result is a for a in (before,) + args):
        result = result + 0                 # an input passed through: give x a creator of its own
    x.array[...] = result.array
    x._version_counter()[0] += 1
    g = result.creator
    if g is None:                           # the new value needs no gradient (fill_, normal_, ...)
        x.creator, x.requires_grad, x.generation = None, False, 0
        return
    g._outputs = (weakref.ref(x),)
    x.creator, x.requires_grad, x.generation = g, True, result.generation
    g._record_versions()


# The tensor module, looked up when a Tensor is made, not at import: tensor.py imports this module
# (see the comment at its end), so either may be imported first.
from . import tensor as _tensor  # noqa: E402

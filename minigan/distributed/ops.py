"""Collectives on Tensors. all_reduce is also a differentiable op: the gradient of a sum over
processes, with respect to each process's part, is the sum of the gradients over processes."""
from ..autograd import Function
from ..tensor import Tensor
from . import comm


class AllReduceSum(Function):
    def forward(self, x):
        return comm.all_reduce_array(x)

    def backward(self, gy):                      # y = Σ_r x_r, loss = Σ_r L_r: gx_r = Σ_r' gy_r'
        return AllReduceSum()(gy)


def all_reduce_sum(x):
    """Σ over processes of x, differentiable (synchronised batch norm's statistics use it)."""
    return AllReduceSum()(x)


def all_reduce(tensor, op='sum'):
    """In place, like torch.distributed.all_reduce: tensor <- the sum (or mean, max, min) over processes."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f'all_reduce takes a Tensor, got {type(tensor).__name__}')
    if op not in ('sum', 'mean', 'avg', 'max', 'min'):
        raise ValueError(f'all_reduce: op must be "sum", "mean", "max" or "min", got {op!r}')
    if op in ('max', 'min'):
        from mpi4py import MPI
        out = tensor.array.copy()
        comm._comm().Allreduce(tensor.array.copy(), out, op=MPI.MAX if op == 'max' else MPI.MIN)
    else:
        out = comm.all_reduce_array(tensor.array)
        if op in ('mean', 'avg'):
            out = out / out.dtype.type(comm.world_size()) if out.dtype.kind == 'f' else out // comm.world_size()
    tensor.array[...] = out
    return tensor


def broadcast(tensor, src=0):
    """In place: tensor <- process src's tensor."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f'broadcast takes a Tensor, got {type(tensor).__name__}')
    if not 0 <= src < comm.world_size():
        raise ValueError(f'broadcast: src {src} is not a rank (0 .. {comm.world_size() - 1})')
    comm.broadcast_array(tensor.array, src)
    return tensor


def broadcast_module(module, src=0):
    """Every parameter and buffer of `module` set to process src's values (the initial weights)."""
    for t in list(module.parameters()) + [b for b in module.buffers() if b is not None]:
        comm.broadcast_array(t.array, src)
    return module

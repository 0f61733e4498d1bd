"""Indexing: ``x[idx]`` (basic and advanced), ``x[idx] = v``, gather/scatter, index_select,
masked_fill, topk, sort/argsort, nonzero. Repeated indices accumulate gradient."""
from __future__ import annotations

import collections
import operator

from ..autograd.function import Function
from ..backend import on_device
from ..tensor import Tensor
from ._util import arr, broadcast_shapes, nondiff, norm_dim
from .elementwise import where
from .inplace import commit, on_own_gpu, tracking
from .movement import expand, permute, reshape

_BASIC = (int, slice, type(None), type(Ellipsis))


def _index_arrays(index, device):
    """Normalise an index to what the array module takes; True when it is basic (a view)."""
    if not isinstance(index, tuple):
        index = (index,)
    out, basic = [], True
    for i in index:
        if isinstance(i, Tensor):
            if i._device != device:
                if i._device.type == "cpu":
                    i = i.to(device)
                else:
                    raise RuntimeError(f"indices should be either on cpu or on the same device as "
                                       f"the indexed tensor ({device}), got {i._device}")
            if i._data.dtype.kind not in "biu":
                raise IndexError("tensors used as indices must be long, int, byte or bool "
                                 f"tensors, got {i.dtype}")
            if i._data.ndim == 0 and i._data.dtype.kind in "iu":
                out.append(int(i._data))  # torch selects with a 0-dim index, as with an int
                continue
            # NOTE: torch reads a uint8 (byte) index as a mask, as bool.
            out.append(i._data.astype(bool) if i._data.dtype.kind == "u" else i._data)
            basic = False
        elif isinstance(i, (list, tuple, range)) or getattr(i, "ndim", 0) > 0:  # host arrays
            a = device.backend.asarray(i)
            if a.size == 0 and a.dtype.kind == "f":
                a = a.astype("int64")  # x[[]] selects nothing (an empty list reads as float)
            if a.dtype.kind not in "biu":
                raise IndexError("tensors used as indices must be long, int, byte or bool "
                                 f"tensors, got {a.dtype}")
            out.append(a)
            basic = False
        elif isinstance(i, bool):
            out.append(device.backend.asarray(i))  # x[True] adds a dimension, as in NumPy
            basic = False
        elif not isinstance(i, _BASIC):
            try:
                out.append(operator.index(i))  # NumPy integers, 0-d integer arrays
            except TypeError:
                raise IndexError("only integers, slices (`:`), ellipsis (`...`), None and long "
                                 f"or byte Variables are valid indices (got "
                                 f"{type(i).__name__})") from None
        else:
            if isinstance(i, slice) and i.step is not None and i.step <= 0:
                raise ValueError("step must be greater than zero")
            out.append(i)
    return tuple(out), basic


def _torch_order(index, ndim: int):
    """The permutation from NumPy's result dims to torch's, or None where they agree.

    NOTE: NumPy counts an int beside an index array as an advanced index too, so in
    ``x[0, :, idx]`` the indexed dims go first; torch selects with the int first, which
    leaves ``idx`` next to nothing else and its dims in place (after the ``:`` dim).
    """
    arrays = [k for k, i in enumerate(index) if getattr(i, "ndim", 0) > 0]
    ints = [k for k, i in enumerate(index) if isinstance(i, int)]
    if not arrays or not ints or any(getattr(i, "ndim", 1) == 0 for i in index):
        return None
    first, last = arrays[0], arrays[-1]
    if set(range(first, last + 1)) - set(arrays) - set(ints):
        return None  # torch too puts them first: the index arrays are apart
    if set(range(min(first, ints[0]), max(last, ints[-1]) + 1)) <= set(arrays + ints):
        return None  # NumPy too keeps them in place
    used = sum(i.ndim if getattr(i, "dtype", None) is not None and i.dtype.kind == "b" else 1
               for i in index if i is not None and i is not Ellipsis)
    before = sum(ndim - used if i is Ellipsis else 0 if isinstance(i, int) else 1
                 for i in index[:first])
    if before == 0:
        return None
    n_adv = max(1 if index[k].dtype.kind == "b" else index[k].ndim for k in arrays)
    # The dims the index leaves alone (an Ellipsis or the trailing ones) keep their sizes.
    out_ndim = sum(isinstance(i, slice) or i is None for i in index) + n_adv + ndim - used
    return (tuple(range(n_adv, n_adv + before)) + tuple(range(n_adv)) +
            tuple(range(n_adv + before, out_ndim)))


class GetItem(Function):
    """d a[idx] = g scattered back into zeros at idx (accumulating repeats)."""

    @staticmethod
    def forward(ctx, a, index, basic):
        ctx.input_shape, ctx.index, ctx.basic = a._data.shape, index, basic
        # NOTE: NumPy may leave an advanced index's result strided (x[:, idx]); torch's is a
        # fresh contiguous tensor, on which view() works.
        return a._data[index] if basic else ctx.xp.ascontiguousarray(a._data[index])

    @staticmethod
    def backward(ctx, grad_output):
        return IndexAddInto.apply(grad_output, ctx.input_shape, ctx.index, ctx.basic), None, None


class _GetItemView(GetItem):
    is_view = True


class IndexAddInto(Function):
    """zeros(shape) with g added at idx; d = g[idx] (the adjoint of GetItem)."""

    @staticmethod
    def forward(ctx, g, shape, index, basic):
        ctx.index, ctx.basic = index, basic
        out = ctx.xp.zeros(shape, dtype=g._data.dtype)
        if basic:
            out[index] = g._data
        else:
            ctx.device.backend.add_at(out, index, g._data)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        return getitem_arrays(grad_output, ctx.index, ctx.basic), None, None, None


def getitem_arrays(input, index, basic) -> Tensor:
    return (_GetItemView if basic else GetItem).apply(input, index, basic)


def getitem(input, index) -> Tensor:
    idx, basic = _index_arrays(index, input._device)
    try:
        out = getitem_arrays(input, idx, basic)
    except IndexError as e:
        raise IndexError(f"{e} (indexing a tensor of shape {tuple(input.shape)})") from None
    order = None if basic else _torch_order(idx, input._data.ndim)
    return out if order is None else permute(out, order).contiguous()


class IndexPut(Function):
    """out = a with out[idx] = v; d = (g with g[idx] = 0, g[idx])."""

    @staticmethod
    def forward(ctx, a, index, basic, v):
        ctx.index, ctx.basic = index, basic
        out = a._data.copy()
        out[index] = arr(v)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        grad_a = IndexPut.apply(grad_output, ctx.index, ctx.basic, 0.0) \
            if ctx.needs_input_grad[0] else None
        grad_v = getitem_arrays(grad_output, ctx.index, ctx.basic) \
            if ctx.needs_input_grad[3] else None
        return grad_a, None, None, grad_v


def _fit_value(input, idx, value):
    """``value`` cast to ``input``'s dtype and device and broadcast to the shape of
    ``input[idx]`` (in NumPy's dim order), or torch's error naming both shapes."""
    if not isinstance(value, Tensor):
        return value
    target = input._data[idx].shape
    order = _torch_order(idx, input._data.ndim)
    if order is not None:
        target = tuple(target[k] for k in order)
    if value._device != input._device:
        value = value.to(input._device)
    if value._data.dtype != input._data.dtype:
        value = value.to(input.dtype)
    shape = value._data.shape
    while len(shape) > len(target) and shape[0] == 1:  # torch drops leading 1s
        shape = shape[1:]
    if len(shape) > len(target) or any(v not in (1, t) for v, t in
                                       zip(reversed(shape), reversed(target))):
        raise RuntimeError(f"shape mismatch: value tensor of shape {list(value.shape)} cannot "
                           f"be broadcast to indexing result of shape {list(target)}")
    if value._data.shape != target:
        value = expand(reshape(value, shape), target)
    if order is not None:
        value = permute(value, sorted(range(len(order)), key=order.__getitem__))
    return value


def index_put(input, index, value) -> Tensor:
    """Out-of-place ``input[index] = value`` (the differentiable core of ``__setitem__``)."""
    idx, basic = _index_arrays(index, input._device)
    return IndexPut.apply(input, idx, basic, _fit_value(input, idx, value))


@on_own_gpu
def setitem(input, index, value) -> None:
    """``input[index] = value``: in place, or recorded in the graph when autograd tracks it."""
    if tracking(input, value):
        commit(input, index_put(input.clone(), index, value))
        return
    idx, _ = _index_arrays(index, input._device)
    input._data[idx] = arr(_fit_value(input, idx, value))
    input._vc[0] += 1


class Gather(Function):
    """d gather(a, dim, idx) = zeros with g added at idx along dim."""

    @staticmethod
    def forward(ctx, a, dim, index):
        ctx.save_for_backward(index)
        ctx.dim, ctx.input_shape = dim, a._data.shape
        return ctx.xp.take_along_axis(a._data, index._data, axis=dim)

    @staticmethod
    def backward(ctx, grad_output):
        (index,) = ctx.saved_tensors
        zeros = grad_output.new_zeros(ctx.input_shape)
        return scatter_add(zeros, ctx.dim, index, grad_output), None, None


def _check_index(index, name):
    if not isinstance(index, Tensor) or index._data.dtype.kind not in "iu":
        raise RuntimeError(f"{name}(): Expected dtype int64 for index")


def _check_bounds(index, size: int, dim: int, name: str = "") -> None:
    """torch's error for an index outside [0, size) along ``dim``: NumPy would wrap a negative
    one silently (a wrong answer). Costs a reduction (a sync on the GPU), as in embedding."""
    data = index._data
    if data.size:
        with on_device(index._device):  # CuPy reduces on the current GPU
            low, high = int(data.min()), int(data.max())
        if low < 0 or high >= size:
            raise RuntimeError(f"{name}index {low if low < 0 else high} is out of bounds for "
                               f"dimension {dim} with size {size}")


def gather(input, dim: int, index, *, sparse_grad: bool = False) -> Tensor:
    # sparse_grad is accepted for torch's signature; the gradient is always dense.
    _check_index(index, "gather")
    d = norm_dim(dim, input._data.ndim)
    if input._data.ndim == 0 and index._data.ndim == 0:
        return reshape(gather(reshape(input, 1), 0, reshape(index, 1)), ())
    if index._data.ndim != input._data.ndim:
        raise RuntimeError("Index tensor must have the same number of dimensions as input tensor "
                           f"({index._data.ndim} and {input._data.ndim})")
    for k, (si, sx) in enumerate(zip(index._data.shape, input._data.shape)):
        if k != d and si > sx:
            raise RuntimeError(f"Size does not match at dimension {k} expected index "
                               f"{list(index.shape)} to be smaller than self {list(input.shape)} "
                               f"apart from dimension {d}")
    _check_bounds(index, input._data.shape[d], d)
    if input._data.shape != index._data.shape:
        # take_along_axis needs equal sizes off `dim`: gather from the leading block.
        sl = tuple(slice(0, s) if k != d else slice(None) for k, s in enumerate(index._data.shape))
        input = input[sl]
    return Gather.apply(input, d, index)


def _scatter_target(ctx, a, dim, index):
    """A copy of ``a`` and the full coordinates ``index`` addresses along ``dim`` (numpy has
    put_along_axis without add); saves what the scatter backwards need."""
    ctx.save_for_backward(index)
    ctx.dim = dim
    xp = ctx.xp
    grids = list(xp.meshgrid(*[xp.arange(s) for s in index._data.shape], indexing="ij"))
    grids[dim] = index._data
    return a._data.copy(), tuple(grids)


def _src_grad(ctx, grad_output, index):
    """d scatter / d src: ``grad_output`` read back where src was written."""
    return gather(grad_output, ctx.dim, index) if ctx.needs_input_grad[3] else None


class ScatterAdd(Function):
    """out = a + src added at idx along dim; d = (g, gather(g, dim, idx))."""

    @staticmethod
    def forward(ctx, a, dim, index, src):
        out, coords = _scatter_target(ctx, a, dim, index)
        ctx.device.backend.add_at(out, coords, src._data)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (index,) = ctx.saved_tensors
        return grad_output, None, None, _src_grad(ctx, grad_output, index)


def _leading_block(src, index):
    """The part of ``src`` that ``index`` addresses (torch reads src[:i0, :i1, ...]).

    Slicing here, differentiably, gives the unread rest of ``src`` a zero gradient.
    """
    if isinstance(src, Tensor) and src._data.shape != index._data.shape:
        return src[tuple(slice(0, s) for s in index._data.shape)]
    return src


def scatter_add(input, dim: int, index, src) -> Tensor:
    _check_index(index, "scatter_add")
    d = norm_dim(dim, input._data.ndim)
    _check_bounds(index, input._data.shape[d] if input._data.ndim else 1, d)
    return ScatterAdd.apply(input, d, index, _leading_block(src, index))


class Scatter(Function):
    """out = a with src written at idx along dim; d = (g zeroed at idx, gather(g, dim, idx))."""

    @staticmethod
    def forward(ctx, a, dim, index, src):
        out, coords = _scatter_target(ctx, a, dim, index)
        out[coords] = arr(src)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (index,) = ctx.saved_tensors
        grad_a = scatter(grad_output, ctx.dim, index, 0.0) if ctx.needs_input_grad[0] else None
        return grad_a, None, None, _src_grad(ctx, grad_output, index)


def scatter(input, dim: int, index, src=None, *, value=None, reduce=None) -> Tensor:
    _check_index(index, "scatter")
    if src is None:
        src = value
    d = norm_dim(dim, input._data.ndim)
    if reduce == "add":
        if not isinstance(src, Tensor):
            src = input.new_full(index.shape, src)
        return scatter_add(input, d, index, src)
    if reduce is not None:
        raise NotImplementedError(f"scatter(): reduce={reduce!r} is not supported (only 'add')")
    _check_bounds(index, input._data.shape[d] if input._data.ndim else 1, d)
    if isinstance(src, Tensor) and src.dtype != input.dtype:
        src = src.to(input.dtype)
    return Scatter.apply(input, d, index, _leading_block(src, index))


def index_select(input, dim: int, index) -> Tensor:
    if not isinstance(index, Tensor) or index._data.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    if index._data.dtype.kind not in "iu":
        raise RuntimeError(f"index_select(): Expected dtype int32 or int64 for index, got "
                           f"{index.dtype}")
    d = norm_dim(dim, input._data.ndim)
    _check_bounds(index, input._data.shape[d] if input._data.ndim else 1, d, "index_select(): ")
    # A 0-dim index selects one entry and keeps the dim, as a 1-element vector does.
    return input[(slice(None),) * d + (reshape(index, -1),)]


def masked_fill(input, mask, value) -> Tensor:
    if not isinstance(mask, Tensor) or mask._data.dtype.kind != "b":
        raise RuntimeError("masked_fill_ only supports boolean masks, but got mask with dtype "
                           f"{getattr(mask, 'dtype', type(mask).__name__)}")
    if isinstance(value, Tensor):
        if value._data.ndim != 0:
            raise RuntimeError("masked_fill_ only supports a 0-dimensional value tensor, but got "
                               f"tensor with {value._data.ndim} dimension(s).")
        value = value.to(input.dtype)
    else:
        value = input.new_full((), value)
    return where(mask, value, input)


def nonzero(input, *, as_tuple: bool = False):
    if as_tuple:
        return tuple(nondiff(lambda xp, x, k=k: xp.nonzero(x)[k].astype(xp.int64), input)
                     for k in range(max(input._data.ndim, 1)))
    return nondiff(lambda xp, x: xp.stack(xp.nonzero(x), axis=-1).astype(xp.int64)
                    if x.ndim else xp.zeros((int(bool(x)), 0), xp.int64), input)


values_indices = collections.namedtuple("values_indices", ["values", "indices"])


def sort(input, dim: int = -1, descending: bool = False, stable: bool = False):
    d = norm_dim(dim, input._data.ndim) if input._data.ndim else 0
    indices = argsort(input, d, descending, stable)
    if input._data.ndim == 0:
        return values_indices(input, indices)
    return values_indices(gather(input, d, indices), indices)


def argsort(input, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    if input._data.ndim == 0:
        return nondiff(lambda xp, x: xp.zeros((), xp.int64), input)
    d = norm_dim(dim, input._data.ndim)

    def fn(xp, x):
        if descending:
            # Stable descending order: sort the reversed axis ascending on -x, then map back.
            idx = xp.argsort(-x if x.dtype.kind != "b" else ~x, axis=d, kind="stable")
            if x.dtype.kind == "f" and xp.isnan(x).any():
                # NaN counts as the largest value (torch), but -NaN still sorts last.
                last = ~xp.isnan(xp.take_along_axis(x, idx, axis=d))
                idx = xp.take_along_axis(idx, xp.argsort(last, axis=d, kind="stable"), axis=d)
        else:
            idx = xp.argsort(x, axis=d, kind="stable")
        return idx.astype(xp.int64)
    return nondiff(fn, input)


def topk(input, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
    d = norm_dim(dim, input._data.ndim) if input._data.ndim else 0
    size = input._data.shape[d] if input._data.ndim else 1
    if not 0 <= k <= size:
        raise RuntimeError(f"selected index k out of range (k={k}, size of dim {d} is {size})")
    order = argsort(input, d, descending=largest)
    sl = (slice(None),) * d + (slice(0, k),)
    indices = order[sl]
    return values_indices(gather(input, d, indices), indices)


def take_along_dim(input, indices, dim=None) -> Tensor:
    if dim is None:
        return gather(reshape(input, -1), 0, reshape(indices, -1))
    # Unlike gather, input and indices broadcast against each other off ``dim``, and
    # negative indices count from the end (torch; not without a dim).
    d = norm_dim(dim, input._data.ndim)
    indices = where(indices < 0, indices + input._data.shape[d], indices)
    off_dim = [s[:d] + (1,) + s[d + 1:] for s in (input._data.shape, indices._data.shape)]
    shape = list(broadcast_shapes(*off_dim))
    shape[d] = input._data.shape[d]
    input = expand(input, shape)
    shape[d] = indices._data.shape[d]
    return gather(input, d, expand(indices, shape))

"""Helpers shared by the op families: operand promotion, broadcasting, dim normalisation and
the forward-only ``_NonDiff`` op."""
from __future__ import annotations

from ..autograd.function import Function
from ..backend.dtypes import from_numpy_dtype, get_default_dtype, result_type, scalar_category
from ..tensor import Tensor


def arr(x):
    """The array of a tensor, or a Python scalar unchanged (NumPy 2 keeps scalars weak)."""
    return x._data if isinstance(x, Tensor) else x


def _python_scalar(value):
    """A NumPy scalar as the Python scalar of its kind (NumPy 2 would promote with it)."""
    if type(value) in (bool, int, float):
        return value
    cat = scalar_category(value)
    return bool(value) if cat == 0 else int(value) if cat == 1 else float(value)


def promote(*operands, floating: bool = False):
    """Operands cast to their PyTorch result dtype; Python scalars stay scalars.

    Returns ``(operands, dtype)``. ``None`` operands pass through. With ``floating`` an
    integer or bool result becomes the default float dtype (true division, ``exp`` of an
    int tensor ...).
    """
    dims_dtypes, scalars, out = [], [], []
    for o in operands:
        if isinstance(o, Tensor):
            dims_dtypes.append((o._data.ndim, from_numpy_dtype(o._data.dtype)))
        elif o is not None:
            o = _python_scalar(o)
            scalars.append(scalar_category(o))
        out.append(o)
    dt = result_type(dims_dtypes, scalars)
    if floating and not dt.is_floating_point:
        dt = get_default_dtype()
    target = dt.np
    return tuple(o.to(dt) if isinstance(o, Tensor) and o._data.dtype != target else o
                 for o in out), dt


def broadcast(*operands):
    """Expand tensor operands to their common shape (explicit, so backward sums back)."""
    tensors = [o for o in operands if isinstance(o, Tensor)]
    shapes = [t._data.shape for t in tensors]
    if all(s == shapes[0] for s in shapes):
        return operands
    if any(t._device is not tensors[0]._device for t in tensors):
        operands = _zero_dim_to_device(operands)
    target = broadcast_shapes(*shapes)
    return tuple(o.expand(target) if isinstance(o, Tensor) and o._data.shape != target else o
                 for o in operands)


def _zero_dim_to_device(operands):
    """A zero-dim CPU tensor joins the device of the other operands before it is expanded (as
    torch allows); any other mix of devices is left for Function.apply to report."""
    devices = {o._device for o in operands
               if isinstance(o, Tensor) and not (o._data.ndim == 0 and o._device.type == "cpu")}
    if len(devices) != 1:
        return operands
    (dev,) = devices
    return tuple(o.to(dev) if isinstance(o, Tensor) and o._device != dev else o
                 for o in operands)


def broadcast_shapes(*shapes) -> tuple:
    """The broadcast shape, or a RuntimeError naming the shapes that do not match."""
    ndim = max(len(s) for s in shapes)
    out = []
    for i in range(-ndim, 0):
        size = 1
        for s in shapes:
            if -i <= len(s) and s[i] != 1:
                if size != 1 and s[i] != size:
                    shown = " and ".join(str(tuple(x)) for x in shapes)
                    raise RuntimeError(
                        f"The size of tensor a ({size}) must match the size of tensor b "
                        f"({s[i]}) at non-singleton dimension {ndim + i}: shapes {shown} "
                        "cannot be broadcast together")
                size = s[i]
        out.append(size)
    return tuple(out)


def binary(a, b, floating: bool = False):
    """Promote and broadcast the two operands of an elementwise op."""
    # Fast paths for the common cases (the per-op overhead matters for small tensors):
    # two tensors of one dtype, or a floating tensor with a Python int or float.
    if isinstance(a, Tensor):
        da = a._data
        if isinstance(b, Tensor):
            db = b._data
            if da.dtype == db.dtype and (da.dtype.kind == "f" or not floating):
                return (a, b) if da.shape == db.shape else broadcast(a, b)
        elif da.dtype.kind == "f" and (type(b) is float or type(b) is int):
            return a, b
    elif isinstance(b, Tensor):
        if b._data.dtype.kind == "f" and (type(a) is float or type(a) is int):
            return a, b
    else:
        raise TypeError(f"expected at least one Tensor operand, got {type(a).__name__} and "
                        f"{type(b).__name__}")
    (a, b), _ = promote(a, b, floating=floating)
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        a, b = broadcast(a, b)
    return a, b


class _NonDiff(Function):
    """A forward-only op (comparisons, argmax, masks ...): its outputs never require grad."""

    differentiable = False

    @staticmethod
    def forward(ctx, fn, *args):
        return fn(ctx.xp, *(arr(a) for a in args))


def spread_over_batch(xp, stat, shape):
    """``stat`` (constant along dim 0 of ``shape``, e.g. per channel) as a contiguous
    (1, *shape[1:]) operand when the batch is large: NumPy's loop over a row and one
    broadcast value runs ~1.5x slower than over two contiguous rows (batch norm's per-channel
    operands on 128x64x32x32: 5.3 -> 3.5 ms an op). The operand is 1/N of the activation;
    the values, hence the result bits, are the same."""
    if len(shape) < 3 or shape[0] < 8 or stat.ndim != len(shape) or stat.shape[0] != 1:
        return stat
    return xp.ascontiguousarray(xp.broadcast_to(stat, (1,) + tuple(shape[1:])))


def nondiff(fn, *args) -> Tensor:
    """``fn(xp, *arrays)`` on the arrays of ``args``, as a tensor outside the graph."""
    return _NonDiff.apply(fn, *args)


def norm_dim(dim: int, ndim: int) -> int:
    """A dim in ``[-ndim, ndim)`` as a non-negative index, or torch's IndexError."""
    lo, hi = (-1, 0) if ndim == 0 else (-ndim, ndim - 1)
    if not lo <= dim <= hi:
        raise IndexError(f"Dimension out of range (expected to be in range of [{lo}, {hi}], "
                         f"but got {dim})")
    return dim % ndim if ndim else 0


def norm_dims(dim, ndim: int) -> tuple:
    """``None`` (all dims), an int or a sequence of ints as a sorted tuple of indices."""
    if dim is None:
        return tuple(range(ndim))
    dims = tuple(sorted(norm_dim(d, ndim) for d in ((dim,) if isinstance(dim, int) else dim)))
    if len(set(dims)) != len(dims):
        raise RuntimeError(f"dim {dims} appears multiple times in the list of dims")
    # NOTE: a 0-d tensor takes dim 0 or -1 (as torch) but has no axis to reduce.
    return dims if dims and ndim else tuple(range(ndim))


def size_args(size) -> tuple:
    """``f(2, 3)``, ``f((2, 3))`` and ``f([2, 3])`` all mean the shape (2, 3)."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = size[0]
    return tuple(int(s) for s in size)


"""Reductions: sum, mean, var/std, max/min, prod, cumsum, logsumexp, norm, softmax, all/any."""
from __future__ import annotations

import builtins
import collections
import math

from ..autograd.function import Function
from ..autograd.grad_mode import is_grad_enabled
from ..backend.dtypes import bool_, float32, get_default_dtype, int64
from ..backend.shapes import keepdim_shape
from ..tensor import Tensor
from ._util import nondiff, norm_dim, norm_dims, promote, size_args
from .elementwise import abs as _abs
from .elementwise import exp, sqrt, where
from .movement import expand, reshape

values_indices = collections.namedtuple("values_indices", ["values", "indices"])


def _restore(grad, input_shape, dims, keepdim):
    """Reshape a reduced gradient so that it broadcasts against the input again."""
    if not keepdim:
        grad = reshape(grad, keepdim_shape(input_shape, dims))
    return grad


def _saved_input_output(ctx, grad_output, dims):
    """The saved input ``a``, and the saved output and ``grad_output`` restored to broadcast
    against it: the start of every reduction backward that saved input and output."""
    a, out = ctx.saved_tensors
    shape = a._data.shape
    return (a, _restore(out, shape, dims, ctx.keepdim),
            _restore(grad_output, shape, dims, ctx.keepdim))


class Sum(Function):
    """d sum(a, dims) = g expanded back over dims."""

    @staticmethod
    def forward(ctx, a, dims, keepdim, dtype):
        ctx.input_shape, ctx.dims, ctx.keepdim = a._data.shape, dims, keepdim
        return ctx.device.backend.sum(a._data, dims, keepdim, dtype)

    @staticmethod
    def backward(ctx, grad_output):
        g = _restore(grad_output, ctx.input_shape, ctx.dims, ctx.keepdim)
        return expand(g, ctx.input_shape), None, None, None


def sum(input, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    dims = norm_dims(dim, input._data.ndim)
    np_dtype = None
    if dtype is not None:
        input = input.to(dtype)
    if input._data.dtype.kind in "biu":
        # torch sums integers and bools as int64 unless told otherwise (NumPy would sum a
        # given int32 as int64 too).
        np_dtype = int64.np if dtype is None else input._data.dtype
    return Sum.apply(input, dims, keepdim, np_dtype)


def sum_to_dims(shape, size) -> tuple[int, ...]:
    """The dims to sum (keeping them) to bring ``shape`` down to ``size``, a shape it was
    broadcast from: the leading extra dims and those where ``size`` has 1."""
    lead = len(shape) - len(size)
    return tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(size) if s == 1 and shape[lead + i] != 1)


def sum_to_size(input, *size) -> Tensor:
    """Sum ``input`` down to a shape it was broadcast from (the adjoint of ``expand``)."""
    size = size_args(size)
    dims = sum_to_dims(input._data.shape, size)
    if not dims:
        return input
    return reshape(sum(input, dims, keepdim=True), size)


def mean(input, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    if dtype is not None:
        input = input.to(dtype)
    if input._data.dtype.kind != "f":
        raise RuntimeError(
            "mean(): could not infer output dtype. Input dtype must be either a floating point "
            f"or complex dtype. Got: {input.dtype}")
    dims = norm_dims(dim, input._data.ndim)
    n = 1
    for d in dims:
        n *= input._data.shape[d]
    if input._data.dtype.itemsize < 4:
        # float16 accumulates in float32, as torch's mean does: the sum alone may overflow
        # float16 (65504) where the mean does not.
        return mean(input.to(float32), dims, keepdim).to(input.dtype)
    return sum(input, dims, keepdim) / n if n else sum(input, dims, keepdim) * math.nan


def var(input, dim=None, unbiased=None, keepdim: bool = False, *, correction=None) -> Tensor:
    if input._data.dtype.kind != "f":
        raise RuntimeError(f"std and var only support floating point dtypes, got {input.dtype}")
    if isinstance(dim, bool):  # var(x, False): torch's overload var(input, unbiased)
        dim, unbiased = None, dim
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    dims = norm_dims(dim, input._data.ndim)
    n = 1
    for d in dims:
        n *= input._data.shape[d]
    centered = input - mean(input, dims, keepdim=True)
    # NOTE: n <= correction divides by zero and gives inf or nan, as in torch.
    return sum(centered * centered, dims, keepdim) / builtins.max(n - correction, 0)


def std(input, dim=None, unbiased=None, keepdim: bool = False, *, correction=None) -> Tensor:
    return sqrt(var(input, dim, unbiased, keepdim, correction=correction))


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return var(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim)


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return std(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim)


class AMax(Function):
    """d amax(a) = g shared evenly among the maximal elements (torch's amax/amin rule)."""

    saves_output = True

    @staticmethod
    def forward(ctx, a, dims, keepdim, largest):
        ctx.save_for_backward(a)
        ctx.dims, ctx.keepdim = dims, keepdim
        fn = ctx.xp.max if largest else ctx.xp.min
        return fn(a._data, axis=dims, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad_output):
        a, out, g = _saved_input_output(ctx, grad_output, ctx.dims)
        mask = (a == out)
        count = sum(mask, ctx.dims, keepdim=True)
        return g * mask / count, None, None, None


def _check_extent(name: str, shape: tuple, dims, dim_given: bool) -> None:
    """torch's errors for max/min/argmax over an empty extent (NumPy's name no dim)."""
    for d in dims:
        if shape[d] == 0:
            if dim_given:
                raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size.")
            # NOTE: torch raises IndexError for argmax/argmin here, RuntimeError for max/min.
            raise (IndexError if name.startswith("arg") else RuntimeError)(
                f"{name}(): Expected reduction dim to be specified for input.numel() == 0. "
                "Specify the reduction dim with the 'dim' argument.")


def _extreme_over(name: str, input, dim, keepdim, largest) -> Tensor:
    """amax/amin (and max/min without dim) over ``dim``, all dims when None or ``()``."""
    dim = _all_if_empty(dim)
    dims = norm_dims(dim, input._data.ndim)
    _check_extent(name, input._data.shape, dims, dim is not None)
    return AMax.apply(input, dims, keepdim, largest)


def _all_if_empty(dim):
    """amax/amin reduce over every dim when ``dim`` is ``()`` (their default) or None."""
    return None if dim is None or (isinstance(dim, (tuple, list)) and not dim) else dim


def amax(input, dim=(), keepdim: bool = False) -> Tensor:
    return _extreme_over("amax", input, dim, keepdim, True)


def amin(input, dim=(), keepdim: bool = False) -> Tensor:
    return _extreme_over("amin", input, dim, keepdim, False)


def _arg_extreme(input, dim, keepdim, largest) -> Tensor:
    shape = input._data.shape
    _check_extent("argmax" if largest else "argmin", shape,
                  norm_dims(dim, len(shape)), dim is not None)

    def fn(xp, x):
        f = xp.argmax if largest else xp.argmin
        if dim is None:
            out = f(x.reshape(-1)).astype(xp.int64)
            return out.reshape((1,) * x.ndim) if keepdim else out
        d = norm_dim(dim, x.ndim)
        out = f(x, axis=d) if x.ndim else f(x.reshape(1))
        return (xp.expand_dims(out, d) if keepdim and x.ndim else out).astype(xp.int64)
    return nondiff(fn, input)


def argmax(input, dim=None, keepdim: bool = False) -> Tensor:
    return _arg_extreme(input, dim, keepdim, True)


def argmin(input, dim=None, keepdim: bool = False) -> Tensor:
    return _arg_extreme(input, dim, keepdim, False)


def _extreme(input, dim, keepdim, largest, other=None):
    from .elementwise import maximum, minimum
    from .indexing import gather
    if isinstance(dim, Tensor):  # max(a, b) is the elementwise maximum
        return (maximum if largest else minimum)(input, dim)
    name = "max" if largest else "min"
    if dim is None:
        return _extreme_over(name, input, None, False, largest)
    d = norm_dim(dim, input._data.ndim)
    _check_extent(name, input._data.shape, norm_dims(d, input._data.ndim), True)
    if input._data.ndim == 0:
        return values_indices(input, nondiff(lambda xp, x: xp.zeros((), xp.int64), input))
    indices = _arg_extreme(input, d, True, largest)
    values = gather(input, d, indices)
    if not keepdim:
        values, indices = values.squeeze(d), indices.squeeze(d)
    return values_indices(values, indices)


def max(input, dim=None, keepdim: bool = False):
    """``max(x)`` (a scalar tensor), ``max(x, dim)`` (values, indices) or ``max(a, b)``."""
    return _extreme(input, dim, keepdim, True)


def min(input, dim=None, keepdim: bool = False):
    """``min(x)``, ``min(x, dim)`` (values, indices) or ``min(a, b)``."""
    return _extreme(input, dim, keepdim, False)


def prod(input, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """Product; the gradient is the product of the other elements, zeros included."""
    if dtype is not None:
        input = input.to(dtype)
    if dim is None:
        return prod(reshape(input, -1), 0, keepdim=False)
    d = norm_dim(dim, input._data.ndim)
    return Prod.apply(input, d, keepdim)


class Prod(Function):
    """d prod(a) / d a_i = prod of a_j for j != i (computed without dividing by zero)."""

    saves_output = True

    @staticmethod
    def forward(ctx, a, dim, keepdim):
        ctx.save_for_backward(a)
        ctx.dim, ctx.keepdim = dim, keepdim
        return ctx.xp.prod(a._data, axis=dim, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad_output):
        dim = ctx.dim
        a, out, g = _saved_input_output(ctx, grad_output, (dim,))
        is_zero = a == 0
        if not bool(is_zero._data.any()):
            return g * (out / a), None, None
        if is_grad_enabled():
            # Higher order with zeros: the products of the others, exactly (O(n^2) memory,
            # as rare as it is; out / a would divide by zero).
            return g * _products_of_others(a, dim), None, None
        # A slice without zeros: out / a; with one zero: only the zero element has a
        # non-zero gradient, the product of the others; with more: all zero.
        zeros = sum(is_zero, dim, keepdim=True)
        safe = where(is_zero, 1.0, a)
        grad = where(zeros == 0, out / safe,
                     where(is_zero & (zeros == 1), Prod.apply(safe, dim, True), 0.0))
        return g * grad, None, None


def _products_of_others(a, dim: int) -> Tensor:
    """``p[i] = prod of a[j] for j != i`` along ``dim`` (differentiable, zeros allowed)."""
    from .creation import eye
    n = a._data.shape[dim]
    rows = a.transpose(dim, -1).unsqueeze(-2)                     # (..., 1, n)
    rows = rows.expand(*rows.shape[:-2], n, n)
    skip_self = eye(n, dtype=bool_, device=a.device)
    p = Prod.apply(where(skip_self, 1.0, rows), rows.ndim - 1, False)  # (..., n)
    return p.transpose(dim, -1)


class Cumsum(Function):
    """d cumsum(a) = reverse cumulative sum of g (total - prefix + g)."""

    @staticmethod
    def forward(ctx, a, dim):
        ctx.dim = dim
        # reshape: NumPy gives a 0-d input's cumsum shape (1,), torch keeps ().
        return ctx.xp.cumsum(a._data, axis=dim).reshape(a._data.shape)

    @staticmethod
    def backward(ctx, grad_output):
        d = ctx.dim
        return sum(grad_output, d, keepdim=True) - cumsum(grad_output, d) + grad_output, None


def cumsum(input, dim: int, *, dtype=None) -> Tensor:
    if dtype is not None:
        input = input.to(dtype)
    elif input._data.dtype.kind in "biu":
        input = input.to(int64)
    return Cumsum.apply(input, norm_dim(dim, input._data.ndim))


class LogSumExp(Function):
    """d logsumexp(a) = g*exp(a - out) (softmax of a)."""

    saves_output = True

    @staticmethod
    def forward(ctx, a, dims, keepdim):
        ctx.save_for_backward(a)
        ctx.dims, ctx.keepdim = dims, keepdim
        xp = ctx.xp
        x = a._data
        m = xp.max(x, axis=dims, keepdims=True) if x.size else xp.zeros((1,) * x.ndim, x.dtype)
        # NOTE: infinite maxima would give inf - inf = nan; shift by 0 there instead.
        m = xp.where(xp.isfinite(m), m, 0)
        out = xp.log(xp.sum(xp.exp(x - m), axis=dims, keepdims=True)) + m
        return out if keepdim else out.reshape([s for i, s in enumerate(out.shape)
                                                 if i not in dims])

    @staticmethod
    def backward(ctx, grad_output):
        a, out, g = _saved_input_output(ctx, grad_output, ctx.dims)
        return g * exp(a - out), None, None


def logsumexp(input, dim, keepdim: bool = False) -> Tensor:
    (input,), _ = promote(input, floating=True)
    return LogSumExp.apply(input, norm_dims(dim, input._data.ndim), keepdim)


class Norm2(Function):
    """d ||a||_2 = g*a/||a|| (0 where the norm is 0, as torch)."""

    saves_output = True

    @staticmethod
    def forward(ctx, a, dims, keepdim):
        ctx.save_for_backward(a)
        ctx.dims, ctx.keepdim = dims, keepdim
        x = a._data
        return ctx.xp.sqrt(ctx.xp.sum(x * x, axis=dims, keepdims=keepdim))

    @staticmethod
    def backward(ctx, grad_output):
        a, out, g = _saved_input_output(ctx, grad_output, ctx.dims)
        return where(out == 0, 0.0, g * a / where(out == 0, 1.0, out)), None, None


def norm(input, p="fro", dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    """Vector p-norm over ``dim`` (all elements by default); ``'fro'`` is the 2-norm."""
    if not (p in ("fro", "inf") or isinstance(p, (int, float)) and not isinstance(p, bool)):
        raise RuntimeError(f"norm(): unsupported norm type {p!r}: gradforge computes vector "
                           "norms ('fro', inf, -inf or a number)")
    if dtype is not None:
        input = input.to(dtype)
    (input,), _ = promote(input, floating=True)
    dims = norm_dims(dim, input._data.ndim)
    if p in ("fro", 2, 2.0):
        return Norm2.apply(input, dims, keepdim)
    if p in (math.inf, "inf"):
        return amax(_abs(input), dims, keepdim)
    if p == -math.inf:
        return amin(_abs(input), dims, keepdim)
    if p == 1:
        return sum(_abs(input), dims, keepdim)
    if p == 0:
        return sum((input != 0).to(input.dtype), dims, keepdim)
    return sum(_abs(input) ** p, dims, keepdim) ** (1.0 / p)


class Softmax(Function):
    """d softmax = s*(g - sum(g*s))."""

    saves_output = True

    @staticmethod
    def forward(ctx, a, dim):
        ctx.dim = dim
        xp = ctx.xp
        x = a._data
        if x.size == 0:  # NumPy's max has no identity for an empty axis
            return x.copy()
        e = xp.exp(x - xp.max(x, axis=dim, keepdims=True))
        return e / xp.sum(e, axis=dim, keepdims=True)

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        return out * (grad_output - sum(grad_output * out, ctx.dim, keepdim=True)), None


class LogSoftmax(Function):
    """d log_softmax = g - exp(out)*sum(g)."""

    saves_output = True

    @staticmethod
    def forward(ctx, a, dim):
        ctx.dim = dim
        xp = ctx.xp
        x = a._data
        if x.size == 0:  # NumPy's max has no identity for an empty axis
            return x.copy()
        shifted = x - xp.max(x, axis=dim, keepdims=True)
        return shifted - xp.log(xp.sum(xp.exp(shifted), axis=dim, keepdims=True))

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        return grad_output - exp(out) * sum(grad_output, ctx.dim, keepdim=True), None


def _softmax_input(input, dim, dtype):
    if dtype is not None:
        input = input.to(dtype)
    elif input._data.dtype.kind != "f":
        input = input.to(get_default_dtype())
    if dim is None:
        # NOTE: torch's legacy implicit dim: 0 for 0-, 1- and 3-d inputs, else 1.
        dim = 0 if input._data.ndim in (0, 1, 3) else 1
    return input, norm_dim(dim, input._data.ndim)


def softmax(input, dim=None, dtype=None) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``dim``, computed stably (shifted by the maximum)."""
    input, d = _softmax_input(input, dim, dtype)
    if input._data.ndim == 0:
        return reshape(Softmax.apply(reshape(input, 1), 0), ())
    return Softmax.apply(input, d)


def log_softmax(input, dim=None, dtype=None) -> Tensor:
    """``x - logsumexp(x)`` along ``dim``, computed stably."""
    input, d = _softmax_input(input, dim, dtype)
    if input._data.ndim == 0:
        return reshape(LogSoftmax.apply(reshape(input, 1), 0), ())
    return LogSoftmax.apply(input, d)


def all(input, dim=None, keepdim: bool = False) -> Tensor:
    dims = None if dim is None else norm_dims(dim, input._data.ndim)
    return nondiff(lambda xp, x: xp.all(x, axis=dims, keepdims=keepdim), input)


def any(input, dim=None, keepdim: bool = False) -> Tensor:
    dims = None if dim is None else norm_dims(dim, input._data.ndim)
    return nondiff(lambda xp, x: xp.any(x, axis=dims, keepdims=keepdim), input)


def count_nonzero(input, dim=None) -> Tensor:
    return sum(input != 0, dim)

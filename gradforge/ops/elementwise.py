"""Elementwise ops with broadcasting: arithmetic, unary math, clamp, where, comparisons.

Each op is a Function with its derivative in ``backward``, written with tensor ops so that
it can be differentiated again. Operands are promoted and broadcast by ``_util.binary``
before ``apply``, so forward sees equal shapes and backward never reduces.
"""
from __future__ import annotations

import math

from ..autograd.function import Function
from ..tensor import Tensor
from ._util import arr, binary, promote


# -- arithmetic -------------------------------------------------------------------------------
class Add(Function):
    """d(a + alpha*b) = (g, alpha*g)."""

    @staticmethod
    def forward(ctx, a, b, alpha=1):
        ctx.alpha = alpha
        return ctx.xp.add(arr(a), arr(b) if alpha == 1 else arr(b) * alpha)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, grad_output if ctx.alpha == 1 else grad_output * ctx.alpha, None


def add(input, other, *, alpha=1) -> Tensor:
    a, b = binary(input, other)
    return Add.apply(a, b, alpha)


class Sub(Function):
    """d(a - alpha*b) = (g, -alpha*g)."""

    @staticmethod
    def forward(ctx, a, b, alpha=1):
        ctx.alpha = alpha
        return ctx.xp.subtract(arr(a), arr(b) if alpha == 1 else arr(b) * alpha)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, -grad_output if ctx.alpha == 1 else grad_output * -ctx.alpha, None


def sub(input, other, *, alpha=1) -> Tensor:
    a, b = binary(input, other)
    if a._data.dtype.kind == "b" if isinstance(a, Tensor) else False:
        raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not supported.")
    return Sub.apply(a, b, alpha)


class Mul(Function):
    """d(a*b) = (g*b, g*a)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a if isinstance(a, Tensor) else None,
                              b if isinstance(b, Tensor) else None)
        ctx.scalars = (a, b)
        return ctx.xp.multiply(arr(a), arr(b))

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        sa, sb = ctx.scalars
        grad_a = grad_output * (b if b is not None else sb) if ctx.needs_input_grad[0] else None
        grad_b = grad_output * (a if a is not None else sa) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


def mul(input, other) -> Tensor:
    a, b = binary(input, other)
    return Mul.apply(a, b)


class Div(Function):
    """d(a/b) = (g/b, -g*a/b**2)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a if isinstance(a, Tensor) else None,
                              b if isinstance(b, Tensor) else None)
        ctx.scalars = (a, b)
        return ctx.xp.true_divide(arr(a), arr(b))

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        a = a if a is not None else ctx.scalars[0]
        b = b if b is not None else ctx.scalars[1]
        grad_a = grad_output / b if ctx.needs_input_grad[0] else None
        grad_b = -grad_output * a / (b * b) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


def div(input, other, *, rounding_mode=None) -> Tensor:
    if rounding_mode == "floor":
        return floor_divide(input, other)
    if rounding_mode == "trunc":
        q = div(input, other)
        return trunc(q).to(q.dtype) if q.is_floating_point() else q
    a, b = binary(input, other, floating=True)
    return Div.apply(a, b)


class Pow(Function):
    """d(a**b) = (g*b*a**(b-1), g*a**b*log(a))."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a if isinstance(a, Tensor) else None,
                              b if isinstance(b, Tensor) else None)
        ctx.scalars = (a, b)
        return ctx.xp.power(arr(a), arr(b))

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        a = a if a is not None else ctx.scalars[0]
        b = b if b is not None else ctx.scalars[1]
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            # NOTE: torch defines d(a**0)/da = 0 even at a = 0 (no 0 * inf = nan).
            grad_a = where(b == 0, 0.0, grad_output * b * pow(a, b - 1)) \
                if isinstance(b, Tensor) else (grad_output * 0 if b == 0 else
                                               grad_output * b * pow(a, b - 1))
        if ctx.needs_input_grad[1]:
            # d/db a**b = a**b * log(a); torch masks a == 0 (with b >= 0) to 0.
            grad_b = grad_output * where((a == 0) & (b >= 0), 0.0, pow(a, b) * log(a))
        return grad_a, grad_b


def pow(input, exponent) -> Tensor:
    a, b = binary(input, exponent)
    return Pow.apply(a, b)


class Neg(Function):
    """d(-a) = -g."""

    @staticmethod
    def forward(ctx, a):
        return ctx.xp.negative(a._data)

    @staticmethod
    def backward(ctx, grad_output):
        return -grad_output


def neg(input) -> Tensor:
    if input._data.dtype.kind == "b":
        raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported.")
    return Neg.apply(input)


def floor_divide(input, other) -> Tensor:
    """Floor division (not differentiable, as in torch)."""
    a, b = binary(input, other)
    return _nondiff(lambda xp, x, y: xp.floor_divide(x, y), a, b)


def remainder(input, other) -> Tensor:
    """Python-style remainder; its gradient is 1 for ``input`` (as torch defines it)."""
    return sub(input, mul(floor_divide(input, other).detach(), other))


# -- unary math -------------------------------------------------------------------------------
def _unary(fn):
    """Wrapper for a float-valued unary Function: int inputs become the default float."""
    def op(input) -> Tensor:
        (x,), _ = promote(input, floating=True)
        return fn.apply(x)
    op.__name__ = fn.__name__.lower()
    op.__doc__ = f"Elementwise ``{op.__name__}``; {fn.__doc__}"
    return op


class Exp(Function):
    """d exp(a) = g*exp(a)."""

    saves_output = True

    @staticmethod
    def forward(ctx, a):
        return ctx.xp.exp(a._data)

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        return grad_output * out


class Log(Function):
    """d log(a) = g/a."""

    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return ctx.xp.log(a._data)

    @staticmethod
    def backward(ctx, grad_output):
        (a,) = ctx.saved_tensors
        return grad_output / a


class Log1p(Function):
    """d log1p(a) = g/(1+a)."""

    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return ctx.xp.log1p(a._data)

    @staticmethod
    def backward(ctx, grad_output):
        (a,) = ctx.saved_tensors
        return grad_output / (a + 1)


class Sqrt(Function):
    """d sqrt(a) = g/(2*sqrt(a))."""

    saves_output = True

    @staticmethod
    def forward(ctx, a):
        return ctx.xp.sqrt(a._data)

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        return grad_output / (out * 2)


class Rsqrt(Function):
    """d a**-0.5 = -g*a**-1.5/2."""

    saves_output = True

    @staticmethod
    def forward(ctx, a):
        return 1 / ctx.xp.sqrt(a._data)

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        return grad_output * out * out * out * -0.5


class Abs(Function):
    """d |a| = g*sign(a)."""

    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return ctx.xp.abs(a._data)

    @staticmethod
    def backward(ctx, grad_output):
        (a,) = ctx.saved_tensors
        return grad_output * sign(a)


class Sign(Function):
    """d sign(a) = 0."""

    @staticmethod
    def forward(ctx, a):
        return ctx.xp.sign(a._data)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output * 0


class Sin(Function):
    """d sin(a) = g*cos(a)."""

    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return ctx.xp.sin(a._data)

    @staticmethod
    def backward(ctx, grad_output):
        (a,) = ctx.saved_tensors
        return grad_output * cos(a)


class Cos(Function):
    """d cos(a) = -g*sin(a)."""

    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return ctx.xp.cos(a._data)

    @staticmethod
    def backward(ctx, grad_output):
        (a,) = ctx.saved_tensors
        return -grad_output * sin(a)


class Tanh(Function):
    """d tanh(a) = g*(1 - tanh(a)**2)."""

    saves_output = True

    @staticmethod
    def forward(ctx, a):
        return ctx.xp.tanh(a._data)

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        return grad_output * (1 - out * out)


class Sigmoid(Function):
    """d sigmoid(a) = g*s*(1 - s)."""

    saves_output = True

    @staticmethod
    def forward(ctx, a):
        x = a._data
        xp = ctx.xp
        # NOTE: exp of a non-positive number only, so large |x| neither overflows nor warns.
        e = xp.exp(-xp.abs(x))
        return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        return grad_output * out * (1 - out)


class Relu(Function):
    """d relu(a) = g*(a > 0)."""

    saves_output = True

    @staticmethod
    def forward(ctx, a):
        return ctx.xp.maximum(a._data, 0)

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        return grad_output * (out > 0)


class Erf(Function):
    """d erf(a) = g*2/sqrt(pi)*exp(-a**2)."""

    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return ctx.device.backend.erf(a._data)

    @staticmethod
    def backward(ctx, grad_output):
        (a,) = ctx.saved_tensors
        return grad_output * (2 / math.sqrt(math.pi)) * exp(-(a * a))


exp = _unary(Exp)
log = _unary(Log)
log1p = _unary(Log1p)
sqrt = _unary(Sqrt)
rsqrt = _unary(Rsqrt)
sin = _unary(Sin)
cos = _unary(Cos)
tanh = _unary(Tanh)
sigmoid = _unary(Sigmoid)
erf = _unary(Erf)


def abs(input) -> Tensor:
    return Abs.apply(input)


def sign(input) -> Tensor:
    return Sign.apply(input)


def relu(input) -> Tensor:
    return Relu.apply(input)


def square(input) -> Tensor:
    return mul(input, input)


def trunc(input) -> Tensor:
    """Round toward zero (gradient zero, as torch)."""
    return _nondiff(lambda xp, x: xp.trunc(x), input)


def floor(input) -> Tensor:
    return _nondiff(lambda xp, x: xp.floor(x), input)


def ceil(input) -> Tensor:
    return _nondiff(lambda xp, x: xp.ceil(x), input)


def round(input, decimals: int = 0) -> Tensor:
    return _nondiff(lambda xp, x: xp.round(x, decimals), input)


# -- clamp, maximum, minimum, where -------------------------------------------------------
class Clamp(Function):
    """d clamp(a, lo, hi) = g where lo <= a <= hi, else 0."""

    @staticmethod
    def forward(ctx, a, lo, hi):
        ctx.save_for_backward(a)
        ctx.bounds = (lo, hi)
        return ctx.xp.clip(a._data, lo, hi)

    @staticmethod
    def backward(ctx, grad_output):
        (a,) = ctx.saved_tensors
        lo, hi = ctx.bounds
        mask = None
        if lo is not None:
            mask = a >= lo
        if hi is not None:
            mask = (a <= hi) if mask is None else mask & (a <= hi)
        return grad_output * mask, None, None


def clamp(input, min=None, max=None) -> Tensor:
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        out = input
        if min is not None:
            out = maximum(out, min)
        if max is not None:
            out = minimum(out, max)
        return out
    (x,), _ = promote(input, *(v for v in (min, max) if v is not None))
    return Clamp.apply(x, min, max)


clip = clamp


class Maximum(Function):
    """d max(a, b) = g to the larger; ties split the gradient evenly (torch)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.maximum(a._data, b._data)

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        share = (a > b) + (a == b) * 0.5
        return grad_output * share, grad_output * (1 - share)


class Minimum(Function):
    """d min(a, b) = g to the smaller; ties split the gradient evenly (torch)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.minimum(a._data, b._data)

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        share = (a < b) + (a == b) * 0.5
        return grad_output * share, grad_output * (1 - share)


def _as_tensor_pair(input, other):
    from .creation import full
    a, b = binary(input, other)
    ref = a if isinstance(a, Tensor) else b
    a = a if isinstance(a, Tensor) else full(ref.shape, a, dtype=ref.dtype, device=ref.device)
    b = b if isinstance(b, Tensor) else full(ref.shape, b, dtype=ref.dtype, device=ref.device)
    return a, b


def maximum(input, other) -> Tensor:
    return Maximum.apply(*_as_tensor_pair(input, other))


def minimum(input, other) -> Tensor:
    return Minimum.apply(*_as_tensor_pair(input, other))


class Where(Function):
    """d where(c, a, b) = (g where c, g where not c)."""

    @staticmethod
    def forward(ctx, condition, a, b):
        ctx.save_for_backward(condition)
        return ctx.xp.where(condition._data, arr(a), arr(b))

    @staticmethod
    def backward(ctx, grad_output):
        (condition,) = ctx.saved_tensors
        zero = grad_output * 0
        return (None,
                where(condition, grad_output, zero) if ctx.needs_input_grad[1] else None,
                where(condition, zero, grad_output) if ctx.needs_input_grad[2] else None)


def where(condition, input=None, other=None) -> Tensor:
    if input is None and other is None:
        from .indexing import nonzero
        return nonzero(condition, as_tuple=True)
    if not isinstance(condition, Tensor) or condition._data.dtype.kind != "b":
        raise RuntimeError("where expected condition to be a boolean tensor, but got "
                           f"{getattr(condition, 'dtype', type(condition).__name__)}")
    (a, b), _ = promote(input, other)
    from ._util import broadcast
    condition, a, b = broadcast(condition, a, b)
    return Where.apply(condition, a, b)


# -- non-differentiable: comparisons, predicates, logic -------------------------------------
class _NonDiff(Function):
    """An op with no gradient (comparisons, rounding, logic): forward only."""

    @staticmethod
    def forward(ctx, fn, *args):
        return fn(ctx.xp, *(arr(a) for a in args))

    @staticmethod
    def backward(ctx, grad_output):
        return (None,) * (1 + len(ctx.next_edges))


def _nondiff(fn, *args) -> Tensor:
    out = _NonDiff.apply(fn, *args)
    out.requires_grad, out.grad_fn = False, None
    return out


def _compare(ufunc_name):
    def op(input, other) -> Tensor:
        a, b = binary(input, other)
        return _nondiff(lambda xp, x, y: getattr(xp, ufunc_name)(x, y), a, b)
    return op


eq = _compare("equal")
ne = _compare("not_equal")
lt = _compare("less")
le = _compare("less_equal")
gt = _compare("greater")
ge = _compare("greater_equal")
logical_and = _compare("logical_and")
logical_or = _compare("logical_or")
logical_xor = _compare("logical_xor")
greater, less, greater_equal, less_equal, not_equal = gt, lt, ge, le, ne


def logical_not(input) -> Tensor:
    return _nondiff(lambda xp, x: xp.logical_not(x), input)


def isnan(input) -> Tensor:
    return _nondiff(lambda xp, x: xp.isnan(x), input)


def isinf(input) -> Tensor:
    return _nondiff(lambda xp, x: xp.isinf(x), input)


def isfinite(input) -> Tensor:
    return _nondiff(lambda xp, x: xp.isfinite(x), input)


def allclose(input, other, rtol: float = 1e-05, atol: float = 1e-08,
             equal_nan: bool = False) -> bool:
    a, b = binary(input, other)
    return bool(_nondiff(lambda xp, x, y: xp.allclose(x, y, rtol, atol, equal_nan), a, b))


def isclose(input, other, rtol: float = 1e-05, atol: float = 1e-08,
            equal_nan: bool = False) -> Tensor:
    a, b = binary(input, other)
    return _nondiff(lambda xp, x, y: xp.isclose(x, y, rtol, atol, equal_nan), a, b)


def equal(input, other) -> bool:
    """True if both tensors have the same shape and elements."""
    if tuple(input.shape) != tuple(other.shape):
        return False
    return bool(eq(input, other).all())

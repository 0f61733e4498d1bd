"""Elementwise ops with broadcasting: arithmetic, unary math, rounding, clamp, maximum/minimum
and where.

Each op is a Function with its derivative in ``backward``, written with tensor ops so that
it can be differentiated again. Operands are promoted and broadcast by ``_util.binary``
before ``apply``, so forward sees equal shapes (or a Python scalar) and backward never
reduces. Comparisons and other ops without a gradient live in ``comparison.py``, rounding
and floor division (gradient zero) in ``rounding.py``.
"""
from __future__ import annotations

import math

from ..autograd.function import Function
from ..backend.dtypes import int64
from ..tensor import Tensor
from ._util import arr, binary, broadcast, promote
from .rounding import check_integer_divisor, floor_divide, sign, trunc_divide


# -- arithmetic -------------------------------------------------------------------------------
class Add(Function):
    """d(a + alpha*b) = (g, alpha*g)."""

    @staticmethod
    def forward(ctx, a, b, alpha=1):
        ctx.alpha = alpha
        return ctx.xp.add(arr(a), arr(b) if alpha == 1 else arr(b) * alpha)

    @staticmethod
    def backward(ctx, grad_output):
        if ctx.alpha == 1 or not ctx.needs_input_grad[1]:
            return grad_output, grad_output, None
        return grad_output, grad_output * ctx.alpha, None


def _check_alpha(a, b, alpha) -> None:
    # NumPy would scale an int operand by a float alpha and return float64; torch refuses.
    ref = a if isinstance(a, Tensor) else b
    if isinstance(alpha, float) and ref._data.dtype.kind != "f":
        raise RuntimeError("For integral input tensors, argument alpha must not be a floating "
                           f"point number (got alpha={alpha} for {ref.dtype})")


def add(input, other, *, alpha=1) -> Tensor:
    a, b = binary(input, other)
    if alpha != 1:
        _check_alpha(a, b, alpha)
    return Add.apply(a, b, alpha)


class Sub(Function):
    """d(a - alpha*b) = (g, -alpha*g)."""

    @staticmethod
    def forward(ctx, a, b, alpha=1):
        ctx.alpha = alpha
        return ctx.xp.subtract(arr(a), arr(b) if alpha == 1 else arr(b) * alpha)

    @staticmethod
    def backward(ctx, grad_output):
        if not ctx.needs_input_grad[1]:
            return grad_output, None, None
        return grad_output, -grad_output if ctx.alpha == 1 else grad_output * -ctx.alpha, None


def _is_bool(x) -> bool:
    return isinstance(x, Tensor) and x._data.dtype.kind == "b"


def sub(input, other, *, alpha=1) -> Tensor:
    if _is_bool(input) or _is_bool(other):
        raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not supported. "
                           "If you are trying to invert a mask, use the `~` or `logical_not()` "
                           "operator instead.")
    a, b = binary(input, other)
    if alpha != 1:
        _check_alpha(a, b, alpha)
    return Sub.apply(a, b, alpha)


class Mul(Function):
    """d(a*b) = (g*b, g*a)."""

    @staticmethod
    def forward(ctx, a, b):
        # Each operand only for the other's gradient (tensors, or a Python scalar as it is):
        # an in-place change to an operand nothing needs is no error, as in torch.
        needs = ctx.needs_input_grad  # () when no graph is recorded: nothing to save
        if needs:
            ctx.save_for_backward(a if needs[1] else None, b if needs[0] else None)
        return ctx.xp.multiply(arr(a), arr(b))

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        needs = ctx.needs_input_grad
        return grad_output * b if needs[0] else None, grad_output * a if needs[1] else None


def mul(input, other) -> Tensor:
    a, b = binary(input, other)
    return Mul.apply(a, b)


class Div(Function):
    """d(a/b) = (g/b, -g*a/b**2)."""

    @staticmethod
    def forward(ctx, a, b):
        if ctx.needs_input_grad:  # a only for b's gradient, as in Mul
            ctx.save_for_backward(a if ctx.needs_input_grad[1] else None, b)
        return ctx.xp.true_divide(arr(a), arr(b))

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        grad_a = grad_output / b if ctx.needs_input_grad[0] else None
        grad_b = -grad_output * a / (b * b) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


def div(input, other, *, rounding_mode=None) -> Tensor:
    """True division, or ``rounding_mode`` "floor" / "trunc" (gradient zero, as torch)."""
    if rounding_mode == "floor":
        return floor_divide(input, other)
    if rounding_mode == "trunc":
        return trunc_divide(input, other)
    if rounding_mode is not None:
        raise ValueError("div expected rounding_mode to be one of None, 'trunc', or 'floor' but "
                         f"found '{rounding_mode}'")
    a, b = binary(input, other, floating=True)
    return Div.apply(a, b)


class Pow(Function):
    """d(a**b) = (g*b*a**(b-1), g*a**b*log(a))."""

    saves_output = True

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.power(arr(a), arr(b))

    @staticmethod
    def backward(ctx, grad_output):
        a, b, out = ctx.saved_tensors
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            # NOTE: torch defines d(a**0)/da = 0 even at a = 0 (no 0 * inf = nan).
            if isinstance(b, Tensor):
                grad_a = where(b == 0, 0.0, grad_output * b * pow(a, b - 1))
            elif b == 0:
                grad_a = grad_output.new_zeros(grad_output.shape)
            else:
                grad_a = grad_output * b * pow(a, b - 1)
        if ctx.needs_input_grad[1]:
            if not isinstance(a, Tensor):
                a = grad_output.new_full((), a)
            # d/db a**b = a**b * log(a); torch masks a == 0 (with b >= 0) to 0.
            grad_b = grad_output * where((a == 0) & (b >= 0), 0.0, out * log(a))
        return grad_a, grad_b


def pow(input, exponent) -> Tensor:
    a, b = binary(input, exponent)
    if isinstance(b, int) and b < 0 and isinstance(a, Tensor) and a._data.dtype.kind in "biu":
        raise RuntimeError("Integers to negative integer powers are not allowed.")
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
    if _is_bool(input):
        raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. If "
                           "you are trying to invert a mask, use the `~` or `logical_not()` "
                           "operator instead.")
    return Neg.apply(input)


class Remainder(Function):
    """Python-style a % b; d = (g, -floor(a/b)*g), as torch defines it."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.remainder(arr(a), arr(b))

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        grad_b = -grad_output * floor_divide(a, b) if ctx.needs_input_grad[1] else None
        return grad_output, grad_b


def remainder(input, other) -> Tensor:
    a, b = binary(input, other)
    check_integer_divisor(a, b)
    return Remainder.apply(a, b)


# -- unary math -------------------------------------------------------------------------------
def _unary(fn):
    """Wrapper for a float-valued unary Function: int inputs become the default float."""
    def op(input) -> Tensor:
        if input._data.dtype.kind != "f":
            (input,), _ = promote(input, floating=True)
        return fn.apply(input)
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
        return ctx.device.backend.relu(a._data)

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        # where, not a product: a nan/inf gradient stays out of the clipped half (torch).
        return where(out > 0, grad_output, 0.0)


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


def relu(input) -> Tensor:
    return Relu.apply(input)


def square(input) -> Tensor:
    if _is_bool(input):
        input = input.to(int64)  # torch's square is pow(input, 2): bool becomes int64
    return mul(input, input)


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
        if lo is None:
            inside = a <= hi
        elif hi is None:
            inside = a >= lo
        else:
            inside = (a >= lo) & (a <= hi)
        return where(inside, grad_output, 0.0), None, None


def clamp(input, min=None, max=None) -> Tensor:
    """Limit ``input`` to [min, max]; either bound may be None, a number or a tensor."""
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        # where() routes the gradient as torch's clamp does: to the bound it was clipped to.
        out, _ = promote(input, min, max)
        x, lo, hi = out
        if lo is not None:
            x = where(x < lo, lo, x)
        if hi is not None:
            x = where(x > hi, hi, x)
        return x
    (x, *_), _ = promote(input, min, max)
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
        return _split_by(a > b, a == b, grad_output)


class Minimum(Function):
    """d min(a, b) = g to the smaller; ties split the gradient evenly (torch)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.minimum(a._data, b._data)

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        return _split_by(a < b, a == b, grad_output)


def _split_by(first_wins, tie, grad_output):
    """The gradient of max/min: all of it to the winner, half to each on a tie; masked with
    where, so that a nan or inf gradient does not leak to the loser as 0 * inf."""
    half = where(tie, grad_output * 0.5, 0.0)
    return where(first_wins, grad_output, half), where(first_wins | tie, half, grad_output)


def _tensor_pair(input, other):
    """Both operands as tensors of one dtype and shape (a scalar becomes a filled tensor)."""
    a, b = binary(input, other)
    ref = a if isinstance(a, Tensor) else b
    if not isinstance(a, Tensor):
        a = ref.new_full(ref.shape, a)
    if not isinstance(b, Tensor):
        b = ref.new_full(ref.shape, b)
    return a, b


def maximum(input, other) -> Tensor:
    return Maximum.apply(*_tensor_pair(input, other))


def minimum(input, other) -> Tensor:
    return Minimum.apply(*_tensor_pair(input, other))


class Where(Function):
    """d where(c, a, b) = (g where c, g where not c)."""

    @staticmethod
    def forward(ctx, condition, a, b, np_dtype):
        ctx.save_for_backward(condition)
        out = ctx.device.backend.where(condition._data, arr(a), arr(b))
        # Two Python scalars: NumPy would give float64/int64, torch the promoted dtype.
        return out if out.dtype == np_dtype else out.astype(np_dtype)

    @staticmethod
    def backward(ctx, grad_output):
        (condition,) = ctx.saved_tensors
        needs = ctx.needs_input_grad
        return (None,
                where(condition, grad_output, 0.0) if needs[1] else None,
                where(condition, 0.0, grad_output) if needs[2] else None,
                None)


def where(condition, input=None, other=None) -> Tensor:
    """Elements of ``input`` where ``condition`` holds, else of ``other`` (broadcasting).

    ``where(condition)`` alone is ``nonzero(condition, as_tuple=True)``.
    """
    if input is None and other is None:
        from .indexing import nonzero
        return nonzero(condition, as_tuple=True)
    if not _is_bool(condition):
        raise RuntimeError("where expected condition to be a boolean tensor, but got "
                           f"{getattr(condition, 'dtype', type(condition).__name__)}")
    (a, b), dt = promote(input, other)
    condition, a, b = broadcast(condition, a, b)
    return Where.apply(condition, a, b, dt.np)

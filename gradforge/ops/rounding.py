"""Step functions, whose gradient is zero: sign, floor, ceil, round, trunc and the rounded
divisions (``//``, ``div(rounding_mode=...)``).

They are differentiable (outputs require grad, as in torch) so that a graph through them
propagates zeros instead of stopping with an error.
"""
from __future__ import annotations

from ..autograd.function import Function
from ..tensor import Tensor
from ._util import arr, binary


class PiecewiseConstant(Function):
    """d f(a, ...) = 0 for a step function f (sign, floor, ceil, round, trunc, a // b)."""

    @staticmethod
    def forward(ctx, fn, *operands):
        return fn(ctx.xp, *(arr(o) for o in operands))

    @staticmethod
    def backward(ctx, grad_output):
        zero = grad_output.new_zeros(grad_output.shape)
        return (None,) + tuple(zero if n else None for n in ctx.needs_input_grad[1:])


def _piecewise(fn, *operands) -> Tensor:
    return PiecewiseConstant.apply(fn, *operands)


def _integral_unchanged(float_fn):
    """A rounding function that leaves integer arrays as they are (NumPy would make floats)."""
    return lambda xp, x: float_fn(xp, x) if x.dtype.kind == "f" else x.copy()


def sign(input) -> Tensor:
    """-1, 0 or 1 by the sign of each element (gradient zero)."""
    # NumPy has no sign for bool; torch returns the bools unchanged.
    return _piecewise(lambda xp, x: xp.sign(x) if x.dtype.kind != "b" else x.copy(), input)


def floor(input) -> Tensor:
    return _piecewise(_integral_unchanged(lambda xp, x: xp.floor(x)), input)


def ceil(input) -> Tensor:
    return _piecewise(_integral_unchanged(lambda xp, x: xp.ceil(x)), input)


def trunc(input) -> Tensor:
    """Round toward zero (gradient zero, as torch)."""
    return _piecewise(_integral_unchanged(lambda xp, x: xp.trunc(x)), input)


def round(input, decimals: int = 0) -> Tensor:
    """Round half to even, as torch; ``decimals`` digits after the point."""
    return _piecewise(_integral_unchanged(lambda xp, x: xp.round(x, decimals)), input)


def check_integer_divisor(a, b) -> None:
    """torch's error for an integer division by zero (NumPy returns 0 with a warning that
    gradforge silences: a wrong answer). One pass over an integer divisor; floats give inf."""
    operands = [x for x in (a, b) if isinstance(x, Tensor)]
    if any(x._data.dtype.kind == "f" for x in operands) or isinstance(a, float) or \
            isinstance(b, float):
        return
    zero = (b._data == 0).any() if isinstance(b, Tensor) else b == 0
    if zero:
        raise RuntimeError("ZeroDivisionError")


def floor_divide(input, other) -> Tensor:
    """Division rounded down (Python's ``//``); the gradient is zero.

    NOTE: torch raises at backward for ``floor_divide``; a zero gradient, as for
    ``div(rounding_mode="floor")``, is more useful.
    """
    a, b = binary(input, other)
    if isinstance(a, Tensor) and a._data.dtype.kind == "b":
        raise RuntimeError('"div_floor" not implemented for \'Bool\'')
    check_integer_divisor(a, b)
    return _piecewise(lambda xp, x, y: xp.floor_divide(x, y), a, b)


def trunc_divide(input, other) -> Tensor:
    """Division rounded toward zero (``div(rounding_mode="trunc")``)."""
    a, b = binary(input, other)
    check_integer_divisor(a, b)
    return _piecewise(_trunc_divide, a, b)


def _trunc_divide(xp, x, y):
    if xp.result_type(x, y).kind == "f":
        return xp.trunc(xp.true_divide(x, y))
    # Integers: floor division, moved one up where the exact quotient was negative.
    q = xp.floor_divide(x, y)
    return q + ((q * y != x) & ((x < 0) != (y < 0)))

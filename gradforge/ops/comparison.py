"""Ops without a gradient that compare or test elements: ``eq ne lt le gt ge``, logic,
``isnan isinf isfinite``, ``isclose allclose equal``. Their outputs are bool tensors (or Python
bools) that never require grad."""
from __future__ import annotations

from ..tensor import Tensor
from ._util import binary, nondiff


def _compare(ufunc_name: str, doc: str):
    def op(input, other) -> Tensor:
        a, b = binary(input, other)
        return nondiff(lambda xp, x, y: getattr(xp, ufunc_name)(x, y), a, b)
    op.__name__ = ufunc_name
    op.__doc__ = doc
    return op


eq = _compare("equal", "``input == other`` elementwise, with broadcasting.")
ne = _compare("not_equal", "``input != other`` elementwise, with broadcasting.")
lt = _compare("less", "``input < other`` elementwise, with broadcasting.")
le = _compare("less_equal", "``input <= other`` elementwise, with broadcasting.")
gt = _compare("greater", "``input > other`` elementwise, with broadcasting.")
ge = _compare("greater_equal", "``input >= other`` elementwise, with broadcasting.")
logical_and = _compare("logical_and", "Elementwise logical and (nonzero is true).")
logical_or = _compare("logical_or", "Elementwise logical or (nonzero is true).")
logical_xor = _compare("logical_xor", "Elementwise logical exclusive or (nonzero is true).")
greater, less, greater_equal, less_equal, not_equal = gt, lt, ge, le, ne


def logical_not(input) -> Tensor:
    return nondiff(lambda xp, x: xp.logical_not(x), input)


def isnan(input) -> Tensor:
    return nondiff(lambda xp, x: xp.isnan(x), input)


def isinf(input) -> Tensor:
    return nondiff(lambda xp, x: xp.isinf(x), input)


def isfinite(input) -> Tensor:
    return nondiff(lambda xp, x: xp.isfinite(x), input)


def isclose(input, other, rtol: float = 1e-05, atol: float = 1e-08,
            equal_nan: bool = False) -> Tensor:
    """``|input - other| <= atol + rtol * |other|`` elementwise."""
    a, b = binary(input, other)
    return nondiff(lambda xp, x, y: xp.isclose(x, y, rtol, atol, equal_nan), a, b)


def allclose(input, other, rtol: float = 1e-05, atol: float = 1e-08,
             equal_nan: bool = False) -> bool:
    """True when ``isclose`` holds for every element."""
    return bool(isclose(input, other, rtol, atol, equal_nan).all())


def equal(input, other) -> bool:
    """True if both tensors have the same shape and elements."""
    if tuple(input.shape) != tuple(other.shape):
        return False
    return bool(eq(input, other).all())

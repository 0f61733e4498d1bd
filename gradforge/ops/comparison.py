"""Ops without a gradient that compare or test elements: ``eq ne lt le gt ge``, logic,
bitwise ops, ``isnan isinf isfinite``, ``isclose allclose equal``. Their outputs are bool
tensors (integer tensors for bitwise ops on integers), or Python bools, that never require
grad."""
from __future__ import annotations

from ..tensor import Tensor
from ._util import binary, nondiff


def _integral_only(name: str, t: Tensor) -> None:
    if t._data.dtype.kind == "f":
        raise RuntimeError(f'"{name}" not implemented for \'{t.dtype.name}\': bitwise ops take '
                           "integer and bool tensors")


def _compare(ufunc_name: str, doc: str, integral: bool = False):
    """A binary op with no gradient: the ufunc over the broadcast operands (``integral``:
    refusing floats, as torch's bitwise ops do)."""
    def op(input, other) -> Tensor:
        a, b = binary(input, other)
        if integral:
            _integral_only(ufunc_name, a if isinstance(a, Tensor) else b)
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


# NOTE: on bool tensors these are the logical ops; int tensors keep their dtype (torch's
# ``&``, ``|``, ``^``, ``~``), where ``logical_*`` would give bool.
bitwise_and = _compare("bitwise_and", "Elementwise bitwise and (``&``); logical on bools.", True)
bitwise_or = _compare("bitwise_or", "Elementwise bitwise or (``|``); logical on bools.", True)
bitwise_xor = _compare("bitwise_xor", "Elementwise bitwise xor (``^``); logical on bools.", True)


def bitwise_not(input) -> Tensor:
    """Elementwise bitwise not (``~``); logical not on bools."""
    _integral_only("bitwise_not", input)
    return nondiff(lambda xp, x: xp.invert(x), input)


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

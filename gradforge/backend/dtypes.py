"""Data types and PyTorch's type-promotion rules.

A ``dtype`` is a small immutable object (``gradforge.float32``) that maps to one NumPy dtype;
CuPy uses the same NumPy dtypes, so this file is backend-neutral.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "bool_",
    "dtype",
    "float16",
    "float32",
    "float64",
    "from_numpy_dtype",
    "get_default_dtype",
    "int8",
    "int16",
    "int32",
    "int64",
    "result_type",
    "scalar_category",
    "set_default_dtype",
    "to_dtype",
    "uint8",
]


class dtype:
    """A tensor element type, e.g. ``gradforge.float32``."""

    __slots__ = ("_category", "is_floating_point", "is_signed", "itemsize", "name", "np")

    def __init__(self, name: str, np_dtype, category: int):
        self.name = name
        self.np = np.dtype(np_dtype)
        # NOTE: category orders bool < integer < floating, as torch's promotion does.
        self._category = category
        self.is_floating_point = category == 2
        self.is_signed = self.np.kind in "fi"
        self.itemsize = self.np.itemsize

    def __repr__(self) -> str:
        return f"gradforge.{self.name}"

    def __reduce__(self):
        return (to_dtype, (self.name,))


float16 = dtype("float16", np.float16, 2)
float32 = dtype("float32", np.float32, 2)
float64 = dtype("float64", np.float64, 2)
uint8 = dtype("uint8", np.uint8, 1)
int8 = dtype("int8", np.int8, 1)
int16 = dtype("int16", np.int16, 1)
int32 = dtype("int32", np.int32, 1)
int64 = dtype("int64", np.int64, 1)
bool_ = dtype("bool", np.bool_, 0)

_ALL = (float16, float32, float64, uint8, int8, int16, int32, int64, bool_)
_BY_NP = {d.np: d for d in _ALL}
_BY_NAME = {d.name: d for d in _ALL}
_BY_NAME.update({"half": float16, "float": float32, "double": float64, "long": int64,
                 "int": int32, "short": int16, "byte": uint8})
_default_float = float32


def get_default_dtype() -> dtype:
    """The floating dtype used for Python floats and new float tensors (float32 at start)."""
    return _default_float


def set_default_dtype(d: dtype) -> None:
    """Set the default floating dtype (float16, float32 or float64)."""
    global _default_float
    d = to_dtype(d)
    if not d.is_floating_point:
        raise TypeError(f"only floating-point types are supported as the default type, got {d}")
    _default_float = d


def from_numpy_dtype(np_dtype) -> dtype:
    """The gradforge dtype of a NumPy/CuPy dtype; a clear TypeError for unsupported ones."""
    try:
        return _BY_NP[np.dtype(np_dtype)]
    except (KeyError, TypeError):
        raise TypeError(
            f"can't convert an array of dtype {np_dtype}: gradforge supports "
            + ", ".join(d.name for d in _ALL)) from None


def to_dtype(d) -> dtype:
    """Accept a gradforge dtype, a NumPy dtype, a Python type or a name."""
    if isinstance(d, dtype):
        return d
    if d is float:  # NOTE: Python's float is a double, whatever the default dtype (torch)
        return float64
    if d is int:
        return int64
    if d is bool:
        return bool_
    if isinstance(d, str) or type(d).__module__ == "torch":
        # Accept "float32", "torch.float32" and torch's dtype objects by name.
        name = str(d).removeprefix("torch.")
        if name in _BY_NAME:
            return _BY_NAME[name]
        raise TypeError(f"unknown dtype {d!r}")
    return from_numpy_dtype(d)


def scalar_category(value) -> int:
    """0 for bool, 1 for int, 2 for float; what a Python scalar contributes to promotion."""
    if isinstance(value, (bool, np.bool_)):
        return 0
    if isinstance(value, (int, np.integer)):
        return 1
    if isinstance(value, (float, np.floating)):
        return 2
    raise TypeError(f"unsupported scalar type {type(value).__name__}")


_SCALAR_DEFAULT = {0: bool_, 1: int64}


def _promote_pair(a: dtype, b: dtype) -> dtype:
    """Two tensor dtypes of one priority group: the higher category wins outright (float32
    with int64 is float32, as in torch); within a category the wider type wins."""
    if a is b:
        return a
    if a._category != b._category:
        return a if a._category > b._category else b
    return _BY_NP[np.promote_types(a.np, b.np)]


def result_type(dims_dtypes: list, scalar_categories: list) -> dtype:
    """PyTorch's promotion for one op.

    ``dims_dtypes`` holds ``(ndim, dtype)`` for each tensor operand, ``scalar_categories``
    the category of each Python scalar. Tensors with dimensions take precedence over
    zero-dim tensors, which take precedence over Python scalars, unless a lower group
    belongs to a higher category (int tensor + 2.5 gives the default float type).
    """
    result = None
    for zero_dim in (False, True):
        group = None
        for n, d in dims_dtypes:
            if (n == 0) is zero_dim:
                group = d if group is None else _promote_pair(group, d)
        if group is None:
            continue
        if result is None:
            result = group
        elif group._category > result._category:
            # NOTE: a zero-dim tensor of a higher category keeps its own dtype (torch).
            result = group
    if scalar_categories:
        cat = max(scalar_categories)
        if result is None:
            result = _default_float if cat == 2 else _SCALAR_DEFAULT[cat]
        elif cat > result._category:
            result = _default_float if cat == 2 else int64
    return result

"""CuPy's routines and ufuncs, simulated by running NumPy's on the arrays behind the device arrays.

Every operand must be a simulated device array on the current device, a Python or NumPy
scalar, or a 0-dim host array; a host array with dimensions is refused with CuPy's
``TypeError: Unsupported type <class 'numpy.ndarray'>``. Where CuPy supports less than NumPy
(``ufunc.at`` and ``ufunc.reduce`` for a few ufuncs, stable sorting only, the NumPy names it
does not have), the simulation refuses the same calls.
"""
from __future__ import annotations

import numpy as np

from ._array import check_device, ndarray, unsupported, unwrap, unwrap_index, wrap

# NumPy names with no CuPy counterpart (the ones a numerical library is likely to reach for).
NOT_IN_CUPY = frozenset({
    "errstate", "seterr", "geterr", "seterrcall", "geterrcall", "frompyfunc",
    "set_printoptions", "get_printoptions", "printoptions", "nditer", "ndindex",
    "ndenumerate", "fromiter", "memmap", "ma", "char", "rec", "ctypeslib", "emath", "object_",
    "str_", "bytes_", "void", "longdouble", "clongdouble", "datetime64", "timedelta64"})
# Routines returning metadata, not data: no kernel, no device check, plain Python results.
_METADATA = frozenset({
    "shape", "ndim", "size", "result_type", "can_cast", "min_scalar_type", "isscalar",
    "may_share_memory", "shares_memory", "promote_types", "issubdtype", "iinfo", "finfo"})
# Views of their input: no kernel is launched, so no current-device check.
_VIEWS = frozenset({
    "reshape", "ravel", "transpose", "swapaxes", "moveaxis", "squeeze", "expand_dims",
    "broadcast_to", "broadcast_arrays", "atleast_1d", "atleast_2d", "atleast_3d"})
# Where NumPy returns a Python scalar, CuPy returns a 0-dim array.
_SCALAR_RESULTS = frozenset({"allclose", "array_equal", "array_equiv", "count_nonzero"})
# cupy.ufunc.at scatters with add/max/min only; reduce/accumulate exist for add/multiply only.
_AT = frozenset({"add", "maximum", "minimum"})
_REDUCE = frozenset({"add", "multiply"})


def _operand(x, what: str):
    """A ufunc operand: device arrays (on the current device) and scalars; no host data."""
    if isinstance(x, ndarray):
        check_device(x._dev)
        return x._a
    if isinstance(x, (list, tuple)) or (isinstance(x, np.ndarray) and x.ndim):
        raise unsupported(x)
    return x


def ufunc_call(uf: np.ufunc, method: str, inputs, kwargs):
    """``uf(*inputs)`` (or ``uf.<method>``) as a CuPy ufunc: results on the current device."""
    name = uf.__name__
    if method == "at":
        if name not in _AT:
            raise NotImplementedError(f"`{name}.at` is not supported yet")
        a, index, *rest = inputs
        if not isinstance(a, ndarray):
            raise unsupported(a)
        check_device(a._dev)
        index, _ = unwrap_index(index)
        uf.at(a._a, index, *(unwrap(v, host_ok=True) for v in rest))
        return None
    if method in ("reduce", "accumulate") and name not in _REDUCE:
        raise NotImplementedError(f"`{name}.{method}` is not supported yet")
    if method == "reduceat":
        raise NotImplementedError(f"`{name}.reduceat` is not supported yet")
    args = [_operand(x, name) for x in inputs]
    out = kwargs.get("out")
    if out is not None:
        out = out if isinstance(out, tuple) else (out,)
        for o in out:
            if not isinstance(o, ndarray):
                raise TypeError(f"out must be a simcuda.ndarray, got {type(o)}")
        kwargs = dict(kwargs, out=tuple(_operand(o, name) for o in out))
    if "where" in kwargs:
        kwargs["where"] = _operand(kwargs["where"], name)
    with np.errstate(all="ignore"):  # GPUs do not warn about division by zero or overflow
        result = (getattr(uf, method)(*args, **kwargs) if method != "__call__"
                  else uf(*args, **kwargs))
    if out is not None:
        return out[0] if len(out) == 1 else out
    return wrap(result)


def function_call(fn, args, kwargs, name: str | None = None):
    """A NumPy routine run as CuPy's: device operands only, results on the device."""
    name = name or fn.__name__
    check = name not in _METADATA and name not in _VIEWS
    args = unwrap(tuple(args), check=check)
    kwargs = {k: unwrap(v, check=check) for k, v in kwargs.items()}
    if name in ("sort", "argsort") and kwargs.get("kind") not in (None, "stable"):
        raise ValueError(f"kind={kwargs['kind']!r} is not supported: CuPy sorts stably only")
    with np.errstate(all="ignore"):
        result = fn(*args, **kwargs)
    if name in _METADATA:
        return result
    if name in _SCALAR_RESULTS and isinstance(result, (bool, int, np.generic)):
        result = np.asarray(result)
    return wrap(result)


class ufunc:
    """A simulated ``cupy.ufunc`` wrapping NumPy's of the same name."""

    def __init__(self, np_ufunc: np.ufunc):
        self._uf = np_ufunc
        self.__name__ = np_ufunc.__name__
        self.nin, self.nout, self.nargs = np_ufunc.nin, np_ufunc.nout, np_ufunc.nargs

    def __repr__(self) -> str:
        return f"<simcuda.ufunc '{self.__name__}'>"

    def __call__(self, *args, **kwargs):
        return ufunc_call(self._uf, "__call__", args, kwargs)

    def at(self, a, indices, b=None) -> None:
        ufunc_call(self._uf, "at", (a, indices) if b is None else (a, indices, b), {})

    def reduce(self, array, axis=0, dtype=None, out=None, keepdims=False):
        return ufunc_call(self._uf, "reduce", (array,),
                          {"axis": axis, "dtype": dtype, "keepdims": keepdims,
                           **({"out": out} if out is not None else {})})

    def accumulate(self, array, axis=0, dtype=None, out=None):
        return ufunc_call(self._uf, "accumulate", (array,),
                          {"axis": axis, "dtype": dtype,
                           **({"out": out} if out is not None else {})})

    def outer(self, a, b, **kwargs):
        return ufunc_call(self._uf, "outer", (a, b), kwargs)


class routine:
    """A simulated CuPy routine wrapping NumPy's function of the same name."""

    def __init__(self, fn, name: str):
        self._fn = fn
        self.__name__ = name
        self.__doc__ = f"Simulated cupy.{name} (numpy.{name} on the simulated device)."

    def __call__(self, *args, **kwargs):
        return function_call(self._fn, args, kwargs, self.__name__)


class namespace:
    """A simulated CuPy submodule (``linalg``, ``fft``) over NumPy's."""

    def __init__(self, module, name: str):
        self._module = module
        self.__name__ = name
        self._cache: dict = {}

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        found = self._cache.get(name)
        if found is None:
            found = self._cache[name] = simulate(getattr(self._module, name), name)
        return found


def simulate(attr, name: str):
    """The simulated counterpart of a NumPy attribute (types and constants unchanged)."""
    if isinstance(attr, np.ufunc):
        return ufunc(attr)
    if isinstance(attr, type) or not callable(attr):
        return attr
    return routine(attr, name)

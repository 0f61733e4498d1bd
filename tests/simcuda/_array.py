"""``simcuda.ndarray``: a NumPy array standing in for device memory, with CuPy's boundaries.

The class is not a NumPy subclass, so ``isinstance(a, numpy.ndarray)`` is False as for CuPy,
and it refuses what CuPy refuses: implicit conversion to NumPy (``numpy.asarray(a)``), host
arrays with one or more dimensions (and lists) as operands of a ufunc or routine, arrays on a
device other than the current one in a computation (no peer access is simulated), and dtypes
CuPy lacks (object, strings, datetimes). Results are 0-dim arrays where NumPy would return a
scalar, as CuPy's are. Everything else is NumPy's behaviour.
"""
from __future__ import annotations

import contextlib
import ctypes

import numpy as np

from . import _device

_CONVERSION = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to "
               "construct a NumPy array explicitly.")

# Methods that do not launch a kernel on the current device: views, metadata, copies that
# CuPy makes on the array's own device, and transfers to the host.
_LOCAL_METHODS = frozenset({
    "reshape", "ravel", "view", "transpose", "swapaxes", "squeeze", "astype",
    "item", "tolist", "get", "flatten", "diagonal"})
# NumPy attributes that cupy.ndarray does not have.
_NOT_IN_CUPY = frozenset({"ctypes", "itemset", "setflags", "resize", "byteswap", "dumps",
                          "dump", "newbyteorder", "tobytes", "tostring"})


def unsupported(x) -> TypeError:
    return TypeError(f"Unsupported type {type(x)}")


def check_device(dev: int) -> None:
    cur = _device.current()
    if dev != cur:
        raise ValueError(f"The device where the array resides ({dev}) is different from the "
                         f"current device ({cur}). Peer access is unavailable between these "
                         "devices.")


@contextlib.contextmanager
def on_device(dev: int):
    """Run the block with ``dev`` as the current device (CuPy's ``with a.device:``)."""
    prev = _device.current()
    _device.set_current(dev)
    try:
        yield
    finally:
        _device.set_current(prev)


def new(a: np.ndarray) -> ndarray:
    """Wrap a NumPy result: its memory is on the device of the array it views, else current."""
    if a.dtype.kind in "OSUVMm":
        raise ValueError(f"Unsupported dtype {a.dtype}")
    out = object.__new__(ndarray)
    out._a = a
    out._dev = _device.adopt(a)
    return out


def wrap(r):
    """NumPy results as simulated device arrays (scalars become 0-dim arrays, as in CuPy)."""
    if isinstance(r, np.ndarray):
        return new(r)
    if isinstance(r, np.generic):
        return new(np.asarray(r))
    if isinstance(r, list):
        return [wrap(v) for v in r]
    if isinstance(r, tuple):
        items = [wrap(v) for v in r]
        return type(r)._make(items) if hasattr(type(r), "_make") else tuple(items)
    return r


def unwrap(x, *, host_ok: bool = False, check: bool = True):
    """The NumPy array behind ``x`` (recursing into lists and tuples); refuses host arrays."""
    if isinstance(x, ndarray):
        if check:
            check_device(x._dev)
        return x._a
    if isinstance(x, np.ndarray):
        if x.ndim and not host_ok:
            raise unsupported(x)
        return x
    if isinstance(x, list):
        return [unwrap(v, host_ok=host_ok, check=check) for v in x]
    if isinstance(x, tuple):
        return tuple(unwrap(v, host_ok=host_ok, check=check) for v in x)
    return x


def unwrap_index(key):
    """An index for ``a[key]``: device arrays unwrapped; host arrays and lists are accepted
    (CuPy copies them to the device); True when it has arrays (advanced indexing)."""
    parts = key if isinstance(key, tuple) else (key,)
    advanced = any(isinstance(k, (ndarray, np.ndarray, list)) for k in parts)
    return unwrap(key, host_ok=True), advanced


class _DevicePointer:
    """What ``a.data`` is in CuPy: the address of the array's first element and its device."""

    def __init__(self, ptr: int, device_id: int):
        self.ptr = ptr
        self.device_id = device_id

    def copy_from_device_async(self, src: _DevicePointer, size: int, stream=None) -> None:
        """``cudaMemcpyAsync`` device to device: both ranges must be simulated device memory."""
        for p in (self, src):
            if _device.device_of_range(p.ptr, size) is None:
                raise ValueError(f"{size} bytes at {p.ptr:#x} are not in device memory")
        ctypes.memmove(self.ptr, src.ptr, size)

    copy_from_device = copy_from_device_async  # the simulation is synchronous anyway


class ndarray:
    """A simulated ``cupy.ndarray`` (``ndarray(shape, dtype)`` allocates on the current device)."""

    __slots__ = ("__weakref__", "_a", "_dev")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("simcuda.ndarray: memptr and strides are not simulated")
        a = np.empty(shape, dtype, order=order)
        if a.dtype.kind in "OSUVMm":
            raise ValueError(f"Unsupported dtype {a.dtype}")
        self._a = a
        self._dev = _device.adopt(a)

    # -- metadata ----------------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: new(self._a.T))

    @property
    def device(self):
        from .cuda import Device
        return Device(self._dev)

    @property
    def data(self) -> _DevicePointer:
        return _DevicePointer(self._a.ctypes.data, self._dev)

    def __getattr__(self, name: str):
        # NOTE: dunders are never delegated: NumPy would read __array_interface__ or
        # __array_struct__ off the inner array and convert device memory silently.
        if name.startswith("__") or name in ("_a", "_dev") or name in _NOT_IN_CUPY:
            raise AttributeError(f"'simcuda.ndarray' object has no attribute {name!r}")
        attr = getattr(self._a, name)
        if not callable(attr):
            return wrap(attr)
        return _Method(self, name, attr)

    def copy(self, order="C") -> ndarray:
        """``cupy.ndarray.copy``: a copy on the *current* device. From another device, CuPy
        makes the array contiguous on its own device, allocates on the current one and copies
        the bytes device to device (``copy_from_device_async``); a non-contiguous result is
        refused there, as here."""
        cur = _device.current()
        if self._dev == cur or self._a.size == 0:
            return new(np.array(self._a, order=order, copy=True))
        with on_device(self._dev):
            x = new(self._a.astype(self._a.dtype, order=order, copy=False))
        if not (x._a.flags.c_contiguous or x._a.flags.f_contiguous):
            raise NotImplementedError("CuPy cannot copy non-contiguous array between devices.")
        out = ndarray(x.shape, x.dtype, order="C" if x._a.flags.c_contiguous else "F")
        out.data.copy_from_device_async(x.data, x.nbytes)
        return out

    # -- host transfers -------------------------------------------------------------------
    def get(self, stream=None, order="C", out=None, blocking=True) -> np.ndarray:
        """A NumPy copy on the host (``cupy.ndarray.get``)."""
        if out is not None:
            out[...] = self._a
            return out
        return np.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None) -> None:
        """Copy a host array into this device array (same shape and dtype)."""
        if not isinstance(arr, np.ndarray) or arr.shape != self._a.shape or \
                arr.dtype != self._a.dtype:
            raise ValueError("Shape or dtype mismatch: set() needs a NumPy array of "
                             f"{self._a.shape} {self._a.dtype}")
        self._a[...] = arr

    def __array__(self, dtype=None, copy=None):
        raise TypeError(_CONVERSION)

    def __dlpack_device__(self) -> tuple[int, int]:
        return (2, self._dev)  # kDLCUDA

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        # The capsule describes the host memory behind the simulation; only
        # simcuda.from_dlpack reads it (it pairs it with this array's device).
        if max_version is None:
            return self._a.__dlpack__()
        return self._a.__dlpack__(max_version=max_version)

    # -- NumPy protocols: dispatch to the simulated device, refusing host operands ----------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        from ._functions import ufunc_call
        return ufunc_call(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        from ._functions import NOT_IN_CUPY, function_call
        if func.__name__ in NOT_IN_CUPY:
            return NotImplemented
        return function_call(func, args, kwargs)

    # -- indexing ---------------------------------------------------------------------------
    def __getitem__(self, key):
        key, advanced = unwrap_index(key)
        if advanced:
            check_device(self._dev)
        with on_device(self._dev):
            return wrap(self._a[key])

    def __setitem__(self, key, value) -> None:
        check_device(self._dev)
        key, _ = unwrap_index(key)
        self._a[key] = unwrap(value, host_ok=True)

    # -- Python protocol --------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    def __bool__(self) -> bool:
        return bool(self._a)

    def __float__(self) -> float:
        return float(self._a)

    def __int__(self) -> int:
        return int(self._a)

    def __index__(self) -> int:
        return self._a.__index__()

    def __complex__(self) -> complex:
        return complex(self._a)

    def __repr__(self) -> str:
        return repr(self._a)

    def __str__(self) -> str:
        return str(self._a)

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def __reduce__(self):
        return (_rebuild, (self._a.copy(),))


def _rebuild(a: np.ndarray) -> ndarray:
    return new(a)


class _Method:
    """A bound ``numpy.ndarray`` method run as CuPy would run it (results on the device)."""

    __slots__ = ("fn", "name", "owner")

    def __init__(self, owner: ndarray, name: str, fn):
        self.owner, self.name, self.fn = owner, name, fn

    def __call__(self, *args, **kwargs):
        if self.name in ("sort", "argsort") and kwargs.get("kind") not in (None, "stable"):
            raise ValueError(f"kind={kwargs['kind']!r} is not supported: CuPy sorts stably only")
        if self.name not in _LOCAL_METHODS:
            check_device(self.owner._dev)
        args = unwrap(args)
        kwargs = {k: unwrap(v) for k, v in kwargs.items()}
        with on_device(self.owner._dev), np.errstate(all="ignore"):
            result = self.fn(*args, **kwargs)
        if self.name in ("item", "tolist"):
            return result
        return wrap(result)


def _operator(ufunc, reflected=False, inplace=False):
    def op(self, other):
        from ._functions import ufunc_call
        if inplace:
            ufunc_call(ufunc, "__call__", (self, other), {"out": (self,)})
            return self
        return ufunc_call(ufunc, "__call__", (other, self) if reflected else (self, other), {})
    return op


def _unary(ufunc):
    def op(self):
        from ._functions import ufunc_call
        return ufunc_call(ufunc, "__call__", (self,), {})
    return op


_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "truediv": np.true_divide,
           "floordiv": np.floor_divide, "mod": np.remainder, "pow": np.power,
           "matmul": np.matmul, "and": np.bitwise_and, "or": np.bitwise_or,
           "xor": np.bitwise_xor, "lshift": np.left_shift, "rshift": np.right_shift}
for _name, _uf in _BINARY.items():
    setattr(ndarray, f"__{_name}__", _operator(_uf))
    setattr(ndarray, f"__r{_name}__", _operator(_uf, reflected=True))
    setattr(ndarray, f"__i{_name}__", _operator(_uf, inplace=True))
for _name, _uf in {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
                   "gt": np.greater, "ge": np.greater_equal}.items():
    setattr(ndarray, f"__{_name}__", _operator(_uf))
for _name, _uf in {"neg": np.negative, "pos": np.positive, "abs": np.absolute,
                   "invert": np.invert}.items():
    setattr(ndarray, f"__{_name}__", _unary(_uf))
del _name, _uf

"""simcuda: a NumPy-backed stand-in for the parts of CuPy that gradforge uses (tests only).

In the spirit of Numba's CUDA simulator: with ``GRADFORGE_SIMULATE_CUDA=1`` the CUDA backend
imports this module instead of ``cupy``, so CI runs gradforge's GPU code path (and the real
``kernels/*.cu`` through the host-compiled emulation) without a GPU. Device arrays are NumPy
arrays behind a type that keeps CuPy's boundaries: host and device data do not mix, NumPy
cannot silently read device memory, computations refuse arrays from another device, and only
the API CuPy has is offered. Two devices are simulated.

It is imported only through that environment variable, which the test suite sets; user code
never imports it.
"""
from __future__ import annotations

import numpy as _np

from . import _device, cuda, cupyx, random
from ._array import ndarray
from ._array import new as _new
from ._array import unwrap as _unwrap
from ._functions import NOT_IN_CUPY as _NOT_IN_CUPY
from ._functions import namespace as _namespace
from ._functions import simulate as _simulate
from ._functions import ufunc
from ._raw import RawKernel, RawModule

__all__ = [
    "RawKernel",
    "RawModule",
    "array",
    "asarray",
    "asnumpy",
    "cuda",
    "cupyx",
    "from_dlpack",
    "get_default_memory_pool",
    "ndarray",
    "random",
    "ufunc",
]

__version__ = "14.0.0+simulated"


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0) -> ndarray:
    """A device array on the current device from host data or a device array (copied)."""
    if isinstance(obj, ndarray):
        # NOTE: like CuPy, order="C"/"F" copies an array without that layout (ascontiguousarray).
        layout_ok = order in ("K", "A") or obj._a.flags[f"{order}_CONTIGUOUS"]
        if not copy and layout_ok and (dtype is None or _np.dtype(dtype) == obj.dtype) and \
                ndmin <= obj.ndim:
            return obj
        return _new(_np.array(obj._a, dtype=dtype, copy=True, order=order, ndmin=ndmin))
    host = _unwrap(obj, host_ok=True, check=False)
    return _new(_np.array(host, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def asarray(a, dtype=None, order=None, *, blocking=False) -> ndarray:
    """``a`` itself when it is already a device array of that dtype, else a device copy."""
    if isinstance(a, ndarray) and (dtype is None or _np.dtype(dtype) == a.dtype):
        return a
    return array(a, dtype=dtype, copy=not isinstance(a, ndarray), order=order or "K")


asanyarray = asarray


def ascontiguousarray(a, dtype=None) -> ndarray:
    return array(a, dtype=dtype, copy=False, order="C")


def asnumpy(a, stream=None, order="C", out=None, blocking=True) -> _np.ndarray:
    """A host copy of a device array; host data passes through ``numpy.asarray``."""
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    result = _np.asarray(a, order=order)
    if out is not None:
        out[...] = result
        return out
    return result


class _HostCapsule:
    """Hands NumPy the host memory behind a simulated device array's DLPack capsule."""

    def __init__(self, capsule):
        self._capsule = capsule

    def __dlpack__(self, **kwargs):
        return self._capsule

    def __dlpack_device__(self):
        return (1, 0)


def from_dlpack(obj) -> ndarray:
    """Zero-copy import of a DLPack-capable object whose memory is on a (simulated) device."""
    if isinstance(obj, ndarray):
        return _new(obj._a.view())
    kind, index = obj.__dlpack_device__()
    if int(kind) != 2:
        raise TypeError(f"simcuda.from_dlpack: expected device memory (kDLCUDA), got device "
                        f"type {int(kind)}; use simcuda.asarray for host data")
    try:  # a versioned capsule carries the read-only flag (NumPy marks legacy ones read-only)
        capsule = obj.__dlpack__(max_version=(1, 0))
    except TypeError:
        capsule = obj.__dlpack__()
    host = _np.from_dlpack(_HostCapsule(capsule))
    out = object.__new__(ndarray)
    out._a = host
    out._dev = _device.adopt(host, device=int(index))
    return out


def get_default_memory_pool() -> _device.MemoryPool:
    return _device.POOL


_NAMESPACES = {"linalg": _np.linalg, "fft": _np.fft}
_cache: dict = {}


def __getattr__(name: str):
    """Every other NumPy name CuPy has, simulated on the device."""
    found = _cache.get(name)
    if found is not None:
        return found
    if name.startswith("_") or name in _NOT_IN_CUPY or not hasattr(_np, name):
        raise AttributeError(f"module 'cupy' (simulated) has no attribute {name!r}")
    if name in _NAMESPACES:
        found = _namespace(_NAMESPACES[name], name)
    else:
        found = _simulate(getattr(_np, name), name)
    _cache[name] = found
    return found

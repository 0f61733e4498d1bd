"""Simulated ``cupy.RawModule``: the real CUDA source compiled for the host and run serially.

The kernels engineer's emulation harness (``tests/kernel_emulation``) compiles the source under
a CUDA shim and runs the launch grid thread by thread, checking each argument against the C
parameter types. The simulation adds what CuPy itself does to the arguments before a launch:
device arrays become pointers (they must be on the current device), Python ``int``, ``float``
and ``bool`` become ``int64``, ``float64`` and ``bool`` (so a Python float passed for a
``float`` parameter is caught, as it would be garbage on a GPU), and host arrays are refused.
"""
from __future__ import annotations

import numpy as np

from . import _device
from ._array import check_device, ndarray, unsupported


def _kernel_argument(a):
    if isinstance(a, ndarray):
        check_device(a._dev)
        return a._a
    if isinstance(a, np.generic):
        return a
    if isinstance(a, bool):
        return np.bool_(a)
    if isinstance(a, int):
        return np.int64(a)
    if isinstance(a, float):
        return np.float64(a)
    raise unsupported(a)


class RawKernel:
    """One ``__global__`` function; ``kernel(grid, block, args)`` launches it."""

    def __init__(self, emulated, device_id: int):
        self._kernel = emulated
        self._device_id = device_id
        self.name = emulated.name

    def __call__(self, grid, block, args, *, shared_mem: int = 0, stream=None) -> None:
        if self._device_id != _device.current():
            raise RuntimeError(f"CUDA_ERROR_INVALID_HANDLE: kernel {self.name} was loaded on "
                               f"device {self._device_id}, current device is "
                               f"{_device.current()}")
        if not isinstance(args, tuple):
            raise TypeError(f"kernel arguments must be a tuple, got {type(args).__name__}")
        self._kernel(grid, block, tuple(_kernel_argument(a) for a in args),
                     shared_mem=shared_mem)


class RawModule:
    """``RawModule(code=..., options=...)``; ``get_function(name)`` loads on the current device."""

    def __init__(self, code: str | None = None, *, path: str | None = None, options=(),
                 backend: str = "nvrtc", translate_cucomplex: bool = False,
                 enable_cooperative_groups: bool = False, name_expressions=None,
                 jitify: bool = False):
        if code is None:
            raise ValueError("simcuda.RawModule: pass the CUDA source as code=")
        from kernel_emulation import EmulatedModule
        self._module = EmulatedModule(code, tuple(options))

    def get_function(self, name: str) -> RawKernel:
        return RawKernel(self._module.get_function(name), _device.current())

"""Simulated ``cupy.cuda.runtime``: device count and selection, synchronisation, properties."""
from __future__ import annotations

from types import SimpleNamespace

from .. import _device

cudaMemoryTypeUnregistered, cudaMemoryTypeHost, cudaMemoryTypeDevice = 0, 1, 2


class CUDARuntimeError(RuntimeError):
    """The error type of CuPy's runtime calls."""


def getDeviceCount() -> int:
    return _device.DEVICE_COUNT


def getDevice() -> int:
    return _device.current()


def setDevice(device: int) -> None:
    _device.set_current(int(device))


def deviceSynchronize() -> None:
    """Nothing to wait for: the simulation runs every kernel synchronously."""


def driverGetVersion() -> int:
    """The CUDA version the simulation stands in for (13.0, as 1000 * major + 10 * minor)."""
    return 13000


runtimeGetVersion = driverGetVersion


def getDeviceProperties(device: int) -> dict:
    """The properties CuPy reports (as a dict, the name as bytes) for a simulated device."""
    _device.check_index(int(device))
    return {"name": _device.DEVICE_NAME.encode(), "totalGlobalMem": 16 * 2 ** 30,
            "major": 9, "minor": 0, "multiProcessorCount": 2}


def pointerGetAttributes(ptr: int):
    """Where a host address lives (``type`` 1 for pinned memory, 0 for ordinary memory)."""
    kind, device = _device.memory_type(int(ptr))
    return SimpleNamespace(type=kind, device=device, devicePointer=0, hostPointer=int(ptr))

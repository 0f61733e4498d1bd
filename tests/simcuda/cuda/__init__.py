"""Simulated ``cupy.cuda``: devices, the allocator, the runtime and cuRAND host API."""
from __future__ import annotations

from .. import _device
from . import curand, runtime

__all__ = [
    "Device",
    "MemoryPointer",
    "curand",
    "get_allocator",
    "get_device_id",
    "runtime",
    "set_allocator",
]

get_allocator = _device.get_allocator
set_allocator = _device.set_allocator
MemoryPointer = _device.MemoryPointer


def get_device_id() -> int:
    return _device.current()


class Device:
    """``cupy.cuda.Device(i)``: ``use()`` it, or enter it to make it current inside a block."""

    def __init__(self, device=None):
        self.id = _device.current() if device is None else int(device)
        self._prev: list[int] = []

    def use(self) -> None:
        _device.set_current(self.id)

    def synchronize(self) -> None:
        _device.check_index(self.id)

    @property
    def compute_capability(self) -> str:
        props = runtime.getDeviceProperties(self.id)
        return f"{props['major']}{props['minor']}"

    def __enter__(self):
        self._prev.append(_device.current())
        _device.set_current(self.id)
        return self

    def __exit__(self, *exc) -> None:
        _device.set_current(self._prev.pop())

    def __eq__(self, other) -> bool:
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self) -> int:
        return hash(("Device", self.id))

    def __repr__(self) -> str:
        return f"<CUDA Device {self.id}>"

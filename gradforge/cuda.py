"""``gradforge.cuda``: CUDA availability, the current device, synchronisation and memory stats.

Everything here works on a machine without a GPU: ``is_available()`` is False and calls that
need a device raise a RuntimeError that says why and how to install the GPU extra.
"""
from __future__ import annotations

from .backend import cuda as _backend
from .backend.device import device as _device
from . import random as _random

__all__ = ["is_available", "device_count", "current_device", "set_device", "device",
           "synchronize", "manual_seed", "manual_seed_all", "memory_allocated",
           "max_memory_allocated", "reset_peak_memory_stats", "empty_cache", "get_device_name"]


def is_available() -> bool:
    """True when CuPy, a working driver and at least one GPU are present."""
    return _backend.is_available()


def device_count() -> int:
    return _backend.device_count()


def current_device() -> int:
    return _backend.current_device()


def set_device(device) -> None:
    _backend.set_device(_index(device))


def _index(device) -> int:
    if device is None:
        return _backend.current_device()
    if isinstance(device, int):
        return device
    d = _device(device)
    return d.index if d.index is not None else _backend.current_device()


class device:
    """Context manager that makes ``device`` the current CUDA device inside the block."""

    def __init__(self, device):
        self.index = _index(device)

    def __enter__(self):
        self.prev = _backend.current_device()
        _backend.set_device(self.index)
        return self

    def __exit__(self, *exc):
        _backend.set_device(self.prev)
        return False


def synchronize(device=None) -> None:
    """Wait for all kernels on the device to finish."""
    _backend.get_backend(_index(device)).synchronize()


def manual_seed(seed: int) -> None:
    """Seed the generator of the current CUDA device (recorded even before CUDA is used)."""
    manual_seed_all(seed)


def manual_seed_all(seed: int) -> None:
    """Seed the generators of all CUDA devices."""
    for g in _random._cuda_generators.values():
        g.manual_seed(seed)
    _random._cuda_seed = int(seed)


def _pool(device=None):
    return _backend.get_backend(_index(device)).memory_pool()


def memory_allocated(device=None) -> int:
    """Bytes of GPU memory held by live tensors (CuPy's memory pool, used bytes)."""
    return int(_pool(device).used_bytes())


def max_memory_allocated(device=None) -> int:
    """The peak of ``memory_allocated`` since the start or the last reset."""
    return _backend.get_backend(_index(device)).peak_memory()


def reset_peak_memory_stats(device=None) -> None:
    _backend.get_backend(_index(device)).reset_peak_memory()


def empty_cache() -> None:
    """Release cached, unused blocks of the memory pool back to the driver."""
    if is_available():
        _pool().free_all_blocks()


def get_device_name(device=None) -> str:
    return _backend.get_backend(_index(device)).device_name()

"""Simulated device state: the current device, the memory pool and allocator, pinned memory.

Two devices are simulated so that ``cuda:1`` and transfers between devices are exercised. As
on a GPU, the current device is per host thread. Device memory is host memory: an array's
bytes are accounted to the pool when the array that owns them is created and returned when
NumPy frees them, so ``used_bytes`` moves exactly as CuPy's does (in 512-byte blocks).
"""
from __future__ import annotations

import threading
import weakref

import numpy as np

DEVICE_COUNT = 2
ROUND = 512  # CuPy's pool rounds every allocation up to a multiple of 512 bytes
DEVICE_NAME = "gradforge simulated CUDA device (NumPy)"

_local = threading.local()


def current() -> int:
    """The current device of this thread (0 until ``Device(i).use()``)."""
    return getattr(_local, "device", 0)


def set_current(index: int) -> None:
    check_index(index)
    _local.device = index


def check_index(index: int) -> None:
    if not 0 <= index < DEVICE_COUNT:
        # The message of cudaErrorInvalidDevice, as CuPy's CUDARuntimeError prints it.
        raise RuntimeError("cudaErrorInvalidDevice: invalid device ordinal")


class MemoryPointer:
    """A block handed out by the pool; freed (back to the pool's cache) when collected."""

    def __init__(self, pool: MemoryPool, device_id: int, size: int):
        self.device_id = device_id
        self.size = size
        self.ptr = 0  # simulated blocks are bookkeeping only; arrays report their own address
        weakref.finalize(self, pool._free, device_id, size)


class MemoryPool:
    """The counters of ``cupy.get_default_memory_pool()``, one set per device."""

    def __init__(self):
        self._used = [0] * DEVICE_COUNT
        self._cached = [0] * DEVICE_COUNT
        self._lock = threading.Lock()

    def malloc(self, size: int) -> MemoryPointer:
        dev = current()
        size = -(-int(size) // ROUND) * ROUND
        with self._lock:
            self._used[dev] += size
            self._cached[dev] = max(0, self._cached[dev] - size)
        return MemoryPointer(self, dev, size)

    def _free(self, device_id: int, size: int) -> None:
        with self._lock:
            self._used[device_id] -= size
            self._cached[device_id] += size

    def used_bytes(self) -> int:
        return self._used[current()]

    def free_bytes(self) -> int:
        return self._cached[current()]

    def total_bytes(self) -> int:
        return self.used_bytes() + self.free_bytes()

    def n_free_blocks(self) -> int:
        return self._cached[current()] // ROUND

    def free_all_blocks(self, stream=None) -> None:
        self._cached[current()] = 0


POOL = MemoryPool()
_allocator = [POOL.malloc]


def get_allocator():
    return _allocator[0]


def set_allocator(allocator=None) -> None:
    """``None`` means CuPy's default: the memory pool."""
    _allocator[0] = POOL.malloc if allocator is None else allocator


# id(root NumPy array) -> (device, pool block, first address, end address): the arrays whose
# bytes live "on a device".
_owners: dict[int, tuple[int, object, int, int]] = {}


def root_of(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def adopt(a: np.ndarray, device: int | None = None) -> int:
    """The device of ``a``'s memory; memory not yet on a device is allocated on the current one
    (or registered on ``device`` without a new allocation, for a DLPack import)."""
    root = root_of(a)
    key = id(root)
    entry = _owners.get(key)
    if entry is not None:
        return entry[0]
    block = get_allocator()(root.nbytes) if device is None else None
    dev = current() if device is None else device
    start = root.__array_interface__["data"][0]
    _owners[key] = (dev, block, start, start + root.nbytes)
    weakref.finalize(root, _owners.pop, key, None)
    return dev


def device_of_range(ptr: int, nbytes: int) -> int | None:
    """The device whose allocation holds ``[ptr, ptr + nbytes)``, or None."""
    for dev, _, start, end in list(_owners.values()):
        if start <= ptr and ptr + nbytes <= end:
            return dev
    return None


# Pinned (page-locked) host buffers: id -> (start address, end address).
_pinned: dict[int, tuple[int, int]] = {}


def empty_pinned(shape, dtype=float) -> np.ndarray:
    a = np.empty(shape, dtype)
    start = a.ctypes.data
    _pinned[id(a)] = (start, start + max(a.nbytes, 1))
    weakref.finalize(a, _pinned.pop, id(a), None)
    return a


def memory_type(ptr: int) -> tuple[int, int]:
    """``(cudaMemoryType, device)`` of a host address: 1 for pinned memory, else 0
    (unregistered)."""
    for start, end in _pinned.values():
        if start <= ptr < end:
            return 1, current()
    return 0, -1

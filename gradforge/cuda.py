"""``gradforge.cuda``: CUDA availability, the current device, synchronisation, RNG and memory.

Everything here works on a machine without a GPU: ``is_available()`` is False, the seeding
functions record the seed for later, and calls that need a device raise a RuntimeError that
says why (no CuPy, no driver, no device) and how to install the GPU extra.
"""
from __future__ import annotations

from . import random as _random
from .backend import as_device
from .backend import cuda as _backend
from .backend.device import device as _device

__all__ = [
    "current_device",
    "device",
    "device_count",
    "empty_cache",
    "get_device_name",
    "get_rng_state",
    "get_rng_state_all",
    "initial_seed",
    "is_available",
    "manual_seed",
    "manual_seed_all",
    "max_memory_allocated",
    "memory_allocated",
    "memory_reserved",
    "reset_peak_memory_stats",
    "set_device",
    "set_rng_state",
    "set_rng_state_all",
    "synchronize",
]


def is_available() -> bool:
    """True when CuPy, a working driver and at least one GPU are present."""
    return _backend.is_available()


def device_count() -> int:
    """The number of GPUs (0 when CUDA is not available)."""
    return _backend.device_count()


def current_device() -> int:
    """The index of the current CUDA device."""
    return _backend.current_device()


def set_device(device) -> None:
    """Make ``device`` (an index, ``"cuda:1"`` or a ``gradforge.device``) the current device."""
    _backend.set_device(_index(device))


def _index(device) -> int:
    """The CUDA ordinal named by ``device`` (``None`` and ``"cuda"`` mean the current one)."""
    if device is None:
        return _backend.current_device()
    if isinstance(device, int) and not isinstance(device, bool):
        return device
    d = _device(device)
    if d.type != "cuda":
        raise ValueError(f"Expected a cuda device, but got: {d}")
    return d.index if d.index is not None else _backend.current_device()


def _backend_of(device):
    return _backend.get_backend(_index(device))


class device:
    """Context manager making ``device`` the current CUDA device inside the block.

    Args:
        device: an index, ``"cuda:N"``, a ``gradforge.device``, or None (no change).
    """

    def __init__(self, device):
        self.device = device

    def __enter__(self):
        self.prev = None
        if self.device is not None:
            self.prev = _backend.current_device()
            _backend.set_device(_index(self.device))
        return self

    def __exit__(self, *exc) -> bool:
        if self.prev is not None:
            _backend.set_device(self.prev)
        return False


def synchronize(device=None) -> None:
    """Wait until every kernel queued on ``device`` (default: current) has finished."""
    _backend_of(device).synchronize()


# -- random numbers ------------------------------------------------------------------------
def manual_seed(seed: int) -> None:
    """Seed the generator of the current CUDA device.

    Safe without a GPU: the seed is recorded and used when CUDA generators are created.
    """
    if not is_available():
        _random._cuda_seed = int(seed)
        return
    _random.generator_for(as_device("cuda")).manual_seed(seed)


def manual_seed_all(seed: int) -> None:
    """Seed the generators of all CUDA devices (also those not created yet)."""
    for g in _random._cuda_generators.values():
        g.manual_seed(seed)
    _random._cuda_seed = int(seed)


def initial_seed() -> int:
    """The seed of the current device's generator."""
    return _random.generator_for(as_device("cuda")).initial_seed()


def get_rng_state(device="cuda"):
    """The state of ``device``'s generator as a CPU uint8 tensor (seed and draw count)."""
    return _random.generator_for(as_device(_device("cuda", _index(device)))).get_state()


def set_rng_state(new_state, device="cuda") -> None:
    """Restore ``device``'s generator from ``get_rng_state``."""
    _random.generator_for(as_device(_device("cuda", _index(device)))).set_state(new_state)


def get_rng_state_all() -> list:
    return [get_rng_state(i) for i in range(device_count())]


def set_rng_state_all(new_states) -> None:
    for i, state in enumerate(new_states):
        set_rng_state(state, i)


# -- memory (CuPy's memory pool) -------------------------------------------------------------
def memory_allocated(device=None) -> int:
    """Bytes of GPU memory held by live arrays (CuPy's memory pool, used bytes)."""
    return _backend_of(device).memory_allocated()


def max_memory_allocated(device=None) -> int:
    """The peak of ``memory_allocated`` since the first CUDA use or the last reset."""
    return _backend_of(device).max_memory_allocated()


def reset_peak_memory_stats(device=None) -> None:
    """Start peak tracking afresh from the current ``memory_allocated``."""
    _backend_of(device).reset_peak_memory_stats()


def memory_reserved(device=None) -> int:
    """Bytes the memory pool holds from the driver: live arrays plus cached free blocks."""
    return _backend_of(device).memory_reserved()


def empty_cache() -> None:
    """Release the current device's cached, unused blocks of the memory pool to the driver."""
    if is_available():
        _backend_of(None).empty_cache()


def get_device_name(device=None) -> str:
    """The GPU's product name, e.g. ``"NVIDIA H100 80GB HBM3"``."""
    return _backend_of(device).device_name()

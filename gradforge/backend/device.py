"""``gradforge.device``: where a tensor lives, and the backend that owns its arrays.

A ``device`` is a light descriptor (``device("cuda:1")``), valid even on a machine without a
GPU, as in PyTorch. Its ``backend`` is resolved on first use: the NumPy backend for ``cpu``
and the CuPy backend for ``cuda[:n]``, which raises a RuntimeError saying why when CUDA is not
usable here. Everything above the backend gets its array module as ``device.xp``.
"""
from __future__ import annotations

import contextlib

__all__ = ["CPU", "as_device", "device", "on_device"]

_KNOWN = ("cpu", "cuda")


class device:
    """A device descriptor: ``device("cpu")``, ``device("cuda")``, ``device("cuda", 1)``."""

    # ``xp`` is filled in on first use by __getattr__ (then read as a plain slot: ops read it
    # on every call).
    __slots__ = ("_backend", "index", "type", "xp")

    def __new__(cls, type, index: int | None = None):
        if isinstance(type, device):
            return type if index is None else device(type.type, index)
        if isinstance(type, int) and not isinstance(type, bool):
            # NOTE: torch reads a bare integer as a CUDA ordinal.
            type, index = "cuda", type
        if not isinstance(type, str):
            # torch.device objects and anything else that prints as "cuda:0".
            type = str(type)
        text = type.strip()
        kind, sep, ordinal = text.partition(":")
        if kind not in _KNOWN or (sep and not ordinal.isdigit()):
            raise ValueError(
                f"Expected one of cpu, cuda device type at start of device string: {text!r}")
        if sep:
            if index is not None:
                raise ValueError(f"device string {text!r} already has an index; got index={index}")
            index = int(ordinal)
        if index is not None:
            index = int(index)
            if index < 0:
                raise ValueError(f"Device index must not be negative, got {index}")
            if kind == "cpu" and index != 0:
                raise ValueError(f"CPU device index must be 0, got {index}")
        self = object.__new__(cls)
        self.type = kind
        self.index = None if kind == "cpu" else index
        self._backend = None
        return self

    @property
    def backend(self):
        """The array backend for this device (resolved and cached on first use)."""
        b = self._backend
        if b is None:
            if self.type == "cpu":
                from .cpu import BACKEND as b
            else:
                from . import cuda as _cuda
                b = _cuda.get_backend(self.index)
            self._backend = b
        return b

    def __getattr__(self, name: str):
        # Only reached for an unset slot: ``xp``, the array module of this device (numpy on
        # ``cpu``, cupy on ``cuda``), resolved through the backend the first time.
        if name != "xp":
            raise AttributeError(f"'device' object has no attribute {name!r}")
        self.xp = self.backend.xp
        return self.xp

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            try:
                other = device(other)
            except ValueError:
                return False
        if not isinstance(other, device):
            return NotImplemented
        return self.type == other.type and self.index == other.index

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __reduce__(self):
        return (device, (self.type, self.index))


CPU = device("cpu")


def as_device(d) -> device:
    """Normalise a device argument to a concrete device (``"cuda"`` becomes ``cuda:<current>``)."""
    if d is None or d is CPU:
        return CPU
    d = device(d)
    if d.type == "cpu":
        return CPU
    if d.index is None:
        from . import cuda as _cuda
        d = device("cuda", _cuda.current_device())
    return _canonical(d)


_CANONICAL: dict = {}


def _canonical(d: device) -> device:
    # One descriptor object per device, so the backend lookup is cached once.
    return _CANONICAL.setdefault((d.type, d.index), d)


_STAY = contextlib.nullcontext()  # reusable: nothing to switch


def on_device(d: device):
    """A context manager running its block with ``d`` as the current CUDA device.

    CuPy allocates on the current GPU: creating or writing arrays of a ``cuda:1`` tensor
    while device 0 is current needs device 1 made current first. Nothing happens for the
    CPU or when ``d`` is current already. (Per-op hot paths test ``d.index is not None``
    and call ``d.backend.activate()`` themselves, so the CPU pays nothing there.)
    """
    if d.index is None:
        return _STAY
    return d.backend.activate() or _STAY

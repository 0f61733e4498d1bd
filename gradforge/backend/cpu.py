"""The CPU backend: NumPy arrays, NumPy's PCG64 generator, vectorised NumPy twins of the kernels.

Where NumPy and CuPy differ, the backend exposes a named method (``add_at``, ``im2col`` ...)
that ops call without branching; ``backend/cuda.py`` implements the same names.
"""
from __future__ import annotations

import math

import numpy as np

from .device import CPU


class CPUBackend:
    """NumPy on the host."""

    name = "cpu"
    xp = np
    device = CPU

    def asarray(self, data, dtype=None):
        """Host data (a NumPy array, list or scalar) as an array of this backend."""
        return np.asarray(data, dtype=dtype)

    def to_host(self, array) -> np.ndarray:
        return np.asarray(array)

    def synchronize(self) -> None:
        """Nothing to wait for: NumPy runs synchronously."""

    def new_generator(self, seed: int):
        """A bit generator for ``gradforge.Generator`` on this device."""
        return np.random.Generator(np.random.PCG64(seed))

    def rng_state_bytes(self, rng, seed: int) -> bytes:
        """Serialise a PCG64 generator (seed, 128-bit state and increment, cached half-word)."""
        st = rng.bit_generator.state
        return (int(seed).to_bytes(8, "little") + st["state"]["state"].to_bytes(16, "little")
                + st["state"]["inc"].to_bytes(16, "little") + bytes([st["has_uint32"]])
                + int(st["uinteger"]).to_bytes(4, "little"))

    def rng_from_state_bytes(self, data: bytes):
        """``(seed, generator)`` from ``rng_state_bytes``; a clear error for foreign bytes."""
        if len(data) != 45:
            raise RuntimeError(f"invalid CPU RNG state: expected 45 bytes, got {len(data)}")
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": int.from_bytes(data[8:24], "little"),
                      "inc": int.from_bytes(data[24:40], "little")},
            "has_uint32": data[40], "uinteger": int.from_bytes(data[41:45], "little")}
        return int.from_bytes(data[:8], "little"), rng

    def add_at(self, target, index, values) -> None:
        """``target[index] += values`` with repeated indices accumulating (unbuffered)."""
        np.add.at(target, index, values)

    def erf(self, x):
        """The error function; NumPy has none, so math.erf elementwise (exact to round-off)."""
        return _ERF(x).astype(x.dtype, copy=False) if x.ndim else np.asarray(
            math.erf(float(x)), dtype=x.dtype)


_ERF = np.frompyfunc(math.erf, 1, 1)

BACKEND = CPUBackend()

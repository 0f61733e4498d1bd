"""Random numbers on the GPU: cuRAND's Philox4x32-10 behind NumPy's ``Generator`` method names.

A CUDA generator's state is ``(seed, draws)``, as torch's CUDA generator is (seed, offset):
draw ``k`` reads the Philox stream keyed by a hash of ``(seed, k)``. So the state is 16 bytes,
``get_state``/``set_state`` are exact, and a run resumed from a saved state repeats every later
draw. CuPy's own generators cannot be serialised, which is why the numbers come from the
cuRAND host API (``cupy.cuda.curand``) instead. This module does not import cupy: the CUDA
backend hands it the module.
"""
from __future__ import annotations

import math
import weakref

import numpy as np

_MASK64 = (1 << 64) - 1


def _stream_key(seed: int, draw: int) -> int:
    """A 64-bit Philox key per (seed, draw): SplitMix64's finaliser, so nearby draws differ."""
    z = (seed + (draw + 1) * 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class PhiloxGenerator:
    """Draws on one GPU; each call uses a fresh Philox stream (see the module docstring).

    Args:
        cp: the cupy module (or its simulator).
        index: the CUDA device the numbers are generated on.
        seed: the 64-bit seed.
        draws: how many draws were made before (restoring a saved state).
    """

    def __init__(self, cp, index: int, seed: int, draws: int = 0):
        self._cp = cp
        self._curand = cp.cuda.curand
        self.index = index
        self.seed = int(seed) & _MASK64
        self.draws = int(draws)
        with cp.cuda.Device(index):
            self._handle = self._curand.createGenerator(
                self._curand.CURAND_RNG_PSEUDO_PHILOX4_32_10)
        weakref.finalize(self, self._curand.destroyGenerator, self._handle)

    def state_bytes(self) -> bytes:
        return self.seed.to_bytes(8, "little") + self.draws.to_bytes(8, "little")

    def _fill(self, generate, out, *args) -> None:
        """Fill the contiguous ``out`` from the next stream (the draw counts even when empty)."""
        key = _stream_key(self.seed, self.draws)
        self.draws += 1
        if out.size:
            self._curand.setPseudoRandomGeneratorSeed(self._handle, key)
            self._curand.setGeneratorOffset(self._handle, 0)
            generate(self._handle, out.data.ptr, out.size, *args)

    def random(self, size=None, dtype=np.float64):
        """Uniform samples on [0, 1)."""
        cp, dtype = self._cp, np.dtype(dtype)
        shape = _shape(size)
        with cp.cuda.Device(self.index):
            out = cp.empty(math.prod(shape), dtype)
            if dtype == np.float32:
                self._fill(self._curand.generateUniform, out)
            elif dtype == np.float64:
                self._fill(self._curand.generateUniformDouble, out)
            else:
                raise TypeError(f"random() draws float32 or float64, not {dtype}")
            # cuRAND's uniforms lie in (0, 1]; map 1 to 0 for [0, 1), as torch does.
            out[out == 1] = 0
            return out.reshape(shape)

    def uniform(self, low=0.0, high=1.0, size=None, dtype=np.float64):
        # The scaling allocates too: on this GPU, whichever one is current.
        with self._cp.cuda.Device(self.index):
            return self.random(size, dtype) * (high - low) + low

    def standard_normal(self, size=None, dtype=np.float64):
        """Standard normal samples."""
        cp, dtype = self._cp, np.dtype(dtype)
        shape = _shape(size)
        n = math.prod(shape)
        generate = {np.dtype(np.float32): self._curand.generateNormal,
                    np.dtype(np.float64): self._curand.generateNormalDouble}.get(dtype)
        if generate is None:
            raise TypeError(f"standard_normal() draws float32 or float64, not {dtype}")
        with cp.cuda.Device(self.index):
            # cuRAND makes normals in Box-Muller pairs: draw an even count, keep n.
            out = cp.empty(n + n % 2, dtype)
            self._fill(generate, out, 0.0, 1.0)
            return out[:n].reshape(shape)

    def normal(self, loc=0.0, scale=1.0, size=None, dtype=np.float64):
        with self._cp.cuda.Device(self.index):
            return self.standard_normal(size, dtype) * scale + loc

    def integers(self, low, high=None, size=None, dtype=np.int64):
        """Integers drawn uniformly from [low, high).

        NOTE: taken modulo the range from 32 (or 64) random bits, as torch does on the GPU;
        the bias is below 2**-32 relative for ranges under 2**32.
        """
        cp = self._cp
        if high is None:
            low, high = 0, low
        span = int(high) - int(low)
        if span <= 0:
            raise ValueError(f"high <= low: integers({low}, {high})")
        shape = _shape(size)
        n = math.prod(shape)
        words = 1 if span <= 1 << 32 else 2
        with cp.cuda.Device(self.index):
            bits = cp.empty(n * words, np.uint32)
            self._fill(self._curand.generate, bits)
            value = bits.astype(np.uint64)
            if words == 2:
                value = (value[:n] << np.uint64(32)) | value[n:]
            value = (value % np.uint64(span)).astype(np.int64) + int(low)
            return value.astype(dtype, copy=False).reshape(shape)

    def permutation(self, n: int):
        """A random permutation of ``0..n-1`` (the order of uniform keys, as torch's randperm)."""
        keys = self.random((int(n),))
        with self._cp.cuda.Device(self.index):
            return self._cp.argsort(keys).astype(np.int64)


def _shape(size) -> tuple:
    if size is None:
        return ()
    if isinstance(size, (int, np.integer)):
        return (int(size),)
    return tuple(int(s) for s in size)


def from_state_bytes(cp, index: int, data: bytes) -> tuple[int, PhiloxGenerator]:
    """``(seed, generator)`` from ``PhiloxGenerator.state_bytes``; a clear error otherwise."""
    if len(data) != 16:
        raise RuntimeError(f"invalid CUDA RNG state: expected 16 bytes, got {len(data)}")
    seed = int.from_bytes(data[:8], "little")
    return seed, PhiloxGenerator(cp, index, seed, int.from_bytes(data[8:], "little"))

"""Random number generators: ``gradforge.Generator``, ``manual_seed`` and the RNG state.

Each device has a default generator. A CPU generator wraps NumPy's PCG64; a CUDA generator
draws on the GPU with CuPy's generator. ``manual_seed`` seeds all of them, as in torch.
"""
from __future__ import annotations

import numpy as np

from .backend import as_device
from .backend import device as _device_cls

_DEFAULT_SEED = 67280421310721  # torch's default initial seed
_MASK64 = (1 << 64) - 1


class Generator:
    """A random number generator on one device (``Generator(device="cpu")``)."""

    def __init__(self, device="cpu"):
        # A descriptor: whether CUDA is usable is checked only when numbers are drawn.
        self.device = _device_cls(device)
        self._seed = _DEFAULT_SEED
        self._rng = None

    def _device(self):
        return as_device(self.device)

    @property
    def rng(self):
        """The backend bit generator (created on first use)."""
        if self._rng is None:
            self._rng = self._device().backend.new_generator(self._seed)
        return self._rng

    def manual_seed(self, seed: int) -> Generator:
        seed = int(seed)
        if not -(1 << 63) <= seed < (1 << 64):
            raise RuntimeError(f"Overflow when unpacking long: seed {seed} out of range")
        self._seed = seed & _MASK64
        self._rng = None
        return self

    def seed(self) -> int:
        """Seed from fresh entropy and return the seed used."""
        s = int(np.random.SeedSequence().entropy) & _MASK64
        self.manual_seed(s)
        return s

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self):
        """The full generator state as a uint8 tensor (for checkpoints)."""
        from .ops.creation import tensor
        return tensor(np.frombuffer(self._device().backend.rng_state_bytes(self.rng, self._seed),
                                    dtype=np.uint8).copy())

    def set_state(self, state) -> Generator:
        data = bytes(np.asarray(state.cpu().numpy() if hasattr(state, "numpy") else state,
                                dtype=np.uint8))
        self._seed, self._rng = self._device().backend.rng_from_state_bytes(data)
        return self


default_generator = Generator("cpu")
_cuda_generators: dict = {}
_cuda_seed: int | None = None  # set by manual_seed before any CUDA generator exists


def generator_for(device, generator: Generator | None = None) -> Generator:
    """The generator to draw from for ``device``: the given one, or the device default."""
    if generator is not None:
        if generator._device() != device:
            raise RuntimeError(f"Expected a '{device.type}' device type for generator but found "
                               f"'{generator._device().type}'")
        return generator
    if device.type == "cpu":
        return default_generator
    g = _cuda_generators.get(device.index)
    if g is None:
        g = _cuda_generators[device.index] = Generator(device)
        g.manual_seed(default_generator.initial_seed() if _cuda_seed is None else _cuda_seed)
    return g


def manual_seed(seed: int) -> Generator:
    """Seed the CPU generator and every CUDA generator."""
    global _cuda_seed
    default_generator.manual_seed(seed)
    _cuda_seed = int(seed)
    for g in _cuda_generators.values():
        g.manual_seed(seed)
    return default_generator


def seed() -> int:
    return default_generator.seed()


def initial_seed() -> int:
    return default_generator.initial_seed()


def get_rng_state():
    return default_generator.get_state()


def set_rng_state(new_state) -> None:
    default_generator.set_state(new_state)

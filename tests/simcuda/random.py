"""Simulated ``cupy.random``: ``default_rng`` returning a Generator that draws on the device.

Only the methods ``cupy.random.Generator`` has are offered (no ``permutation``, ``choice``,
``shuffle`` or ``normal``), so code that relies on NumPy-only methods fails here as on a GPU.
"""
from __future__ import annotations

import numpy as np

from ._array import wrap

_METHODS = frozenset({
    "random", "uniform", "integers", "standard_normal", "standard_exponential", "exponential",
    "gamma", "standard_gamma", "beta", "binomial", "poisson", "geometric", "chisquare",
    "dirichlet", "f", "hypergeometric", "logseries", "power"})


class Generator:
    """A simulated ``cupy.random.Generator`` (NumPy's PCG64 underneath)."""

    def __init__(self, seed=None):
        self._rng = np.random.default_rng(seed)

    def __getattr__(self, name: str):
        if name not in _METHODS:
            raise AttributeError(f"'cupy.random.Generator' object has no attribute {name!r}")
        method = getattr(self._rng, name)

        def draw(*args, **kwargs):
            return wrap(np.asarray(method(*args, **kwargs)))
        return draw


def default_rng(seed=None) -> Generator:
    return Generator(seed)

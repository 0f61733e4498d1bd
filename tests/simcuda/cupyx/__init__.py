"""Simulated ``cupyx``: pinned host memory (``empty_pinned``) and ``cupyx.scipy.special``."""
from __future__ import annotations

import numpy as np

from .. import _device

__all__ = ["empty_pinned", "zeros_pinned"]


def empty_pinned(shape, dtype=float, order="C") -> np.ndarray:
    """A NumPy array in (simulated) page-locked host memory."""
    if order != "C":
        raise ValueError("simcuda: only C-ordered pinned arrays are simulated")
    return _device.empty_pinned(shape, dtype)


def zeros_pinned(shape, dtype=float, order="C") -> np.ndarray:
    out = empty_pinned(shape, dtype, order)
    out[...] = 0
    return out

"""Awkward window geometries shared by the kernel emulation tests and the NumPy-twin tests.

Each case names what it exercises: batch 1, odd and non-square sizes, stride > 1, padding,
dilation, kernel 1, kernel equal to the (padded) input, ceil_mode (including a last window
that ceil_mode drops), stride larger than the kernel.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest


@dataclass(frozen=True)
class Window:
    """An input shape and a sliding-window geometry (PyTorch's argument meanings)."""

    n: int
    c: int
    h: int
    w: int
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    dh: int = 1
    dw: int = 1
    ceil_mode: bool = False

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.h, self.w)

    @property
    def conv_args(self) -> tuple[int, ...]:
        """``kh, kw, sh, sw, ph, pw, dh, dw`` as the backends take them."""
        return (self.kh, self.kw, self.sh, self.sw, self.ph, self.pw, self.dh, self.dw)

    @property
    def max_pool_args(self) -> tuple:
        return (*self.conv_args, self.ceil_mode)

    @property
    def avg_pool_args(self) -> tuple:
        """``kh, kw, sh, sw, ph, pw, ceil_mode`` (average pooling has no dilation)."""
        return (self.kh, self.kw, self.sh, self.sw, self.ph, self.pw, self.ceil_mode)

    def torch_kwargs(self) -> dict:
        return {"kernel_size": (self.kh, self.kw), "stride": (self.sh, self.sw),
                "padding": (self.ph, self.pw)}


def _params(cases: dict[str, Window]) -> list:
    return [pytest.param(case, id=name) for name, case in cases.items()]


CONV = _params({
    "batch1-odd-nonsquare-pad": Window(1, 2, 5, 7, 3, 3, 1, 1, 1, 1),
    "stride-pad-dilation": Window(2, 3, 7, 6, 3, 2, 2, 3, 1, 2, 2, 1),
    "kernel1": Window(2, 3, 4, 5, 1, 1, 1, 1, 0, 0),
    "kernel1-stride2": Window(1, 2, 5, 4, 1, 1, 2, 2, 0, 0),
    "kernel-equals-input": Window(2, 2, 4, 3, 4, 3, 1, 1, 0, 0),
    "kernel-equals-padded-input": Window(1, 1, 3, 3, 5, 5, 2, 2, 1, 1),
    "stride-gt-kernel": Window(1, 2, 9, 8, 2, 3, 4, 3, 0, 1),
    "dilation-only": Window(2, 1, 8, 9, 3, 3, 1, 2, 2, 0, 2, 3),
})

_POOL = {
    "2x2-nonoverlapping": Window(1, 2, 6, 8, 2, 2, 2, 2, 0, 0),
    "2x2-odd-ceil": Window(2, 3, 5, 7, 2, 2, 2, 2, 0, 0, ceil_mode=True),
    # Floor mode leaves the last row and column out of every window (their gradient is 0).
    "2x2-odd-floor": Window(2, 3, 5, 7, 2, 2, 2, 2, 0, 0),
    "3x3-stride2-pad-overlapping": Window(2, 2, 7, 6, 3, 3, 2, 2, 1, 1),
    "nonsquare-pad-ceil": Window(1, 3, 7, 6, 3, 2, 2, 1, 1, 1, ceil_mode=True),
    "kernel1": Window(2, 1, 4, 5, 1, 1, 1, 1, 0, 0),
    "kernel1-stride2-ceil": Window(1, 2, 5, 4, 1, 1, 2, 2, 0, 0, ceil_mode=True),
    "kernel-equals-input": Window(2, 2, 4, 3, 4, 3, 1, 1, 0, 0),
    # ceil_mode drops the third window, which would start in the right padding.
    "stride-gt-kernel-ceil-drop": Window(1, 1, 5, 5, 2, 2, 3, 3, 1, 1, ceil_mode=True),
}
_DILATED = {
    "dilation-pad-ceil": Window(1, 2, 6, 9, 3, 3, 2, 3, 1, 1, 2, 2, ceil_mode=True),
    # Every window here lies in the padding or beyond the input: torch returns -inf with
    # an index outside the window.
    "dilated-window-without-cells": Window(1, 1, 2, 2, 2, 2, 2, 2, 1, 1, 3, 3),
}
MAX_POOL = _params({**_POOL, **_DILATED})
AVG_POOL = _params(_POOL)


def make_input(shape, dtype=np.float64, seed: int = 0, ties: bool = False) -> np.ndarray:
    """A seeded array; ``ties`` draws small integers so windows hold repeated maxima."""
    rng = np.random.default_rng(seed)
    if ties:
        return rng.integers(-3, 4, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)

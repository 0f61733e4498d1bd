"""Dropout layers: ``Dropout`` (elementwise), ``Dropout1d`` and ``Dropout2d`` (whole channels).

They are active in training mode only; in eval mode they return their input.
"""
from __future__ import annotations

from ...tensor import Tensor
from .. import functional as F
from .module import Module

__all__ = ["Dropout", "Dropout1d", "Dropout2d"]


class _DropoutNd(Module):
    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """Zero each element with probability ``p``; scale the rest by ``1/(1-p)``.

    Args:
        p: probability of an element being zeroed (default 0.5).
        inplace: overwrite the input.

    Shape:
        Input (*); output the same.
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(input, self.p, self.training, self.inplace)


class Dropout1d(_DropoutNd):
    """Zero whole channels of (N, C, L) input with probability ``p``.

    Shape:
        Input (N, C, L) or (C, L); output the same.
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout1d(input, self.p, self.training, self.inplace)


class Dropout2d(_DropoutNd):
    """Zero whole channels of (N, C, H, W) input with probability ``p`` (one draw per
    sample and channel); scale the rest by ``1/(1-p)``.

    Args:
        p: probability of a channel being zeroed (default 0.5).
        inplace: overwrite the input.

    Shape:
        Input (N, C, H, W); output the same.
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout2d(input, self.p, self.training, self.inplace)

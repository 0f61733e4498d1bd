"""A few torchvision-style transforms for the image datasets: ToTensor, Normalize, Compose.

They work on tensors (the datasets hand out float32 C x H x W images in [0, 1]) and on
NumPy arrays (H x W or H x W x C, uint8 or float).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..backend import CPU
from ..ops.creation import tensor
from ..tensor import Tensor

__all__ = ["Compose", "Lambda", "Normalize", "ToTensor"]


class Compose:
    """Apply ``transforms`` one after another."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}" for t in self.transforms)
        return f"{type(self).__name__}({inner}\n)"


class Lambda:
    """Wrap a function as a transform."""

    def __init__(self, fn: Callable):
        if not callable(fn):
            raise TypeError(f"Argument lambd should be callable, got {type(fn).__name__}")
        self.fn = fn

    def __call__(self, x):
        return self.fn(x)


class ToTensor:
    """An image as a float32 tensor C x H x W, uint8 values scaled to [0, 1].

    NumPy arrays H x W or H x W x C are moved to channels-first; uint8 data (array or
    tensor) is divided by 255. A float tensor is already in that form and is returned as is,
    so torchvision pipelines ``Compose([ToTensor(), Normalize(...)])`` run unchanged on the
    gradforge datasets.
    """

    def __call__(self, pic) -> Tensor:
        if isinstance(pic, Tensor):
            if pic.is_floating_point():
                return pic
            return pic.to("float32") / 255.0 if pic.dtype.name == "uint8" else pic.float()
        if not isinstance(pic, np.ndarray):
            raise TypeError(f"pic should be a Tensor or an ndarray, got {type(pic).__name__}")
        if pic.ndim not in (2, 3):
            raise ValueError(f"pic should be 2 or 3 dimensional, got {pic.ndim} dimensions "
                             f"(shape {pic.shape})")
        chw = (pic[None] if pic.ndim == 2 else pic.transpose(2, 0, 1))
        if pic.dtype == np.uint8:
            chw = chw.astype(np.float32) / np.float32(255)
        return Tensor._make(np.ascontiguousarray(chw, dtype=np.float32), CPU)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Normalize:
    """Per-channel ``(x - mean) / std`` of a tensor (..., C, H, W).

    Args:
        mean: one value per channel (or one for all).
        std: one value per channel (or one for all); no zeros.
        inplace: overwrite the input instead of allocating a new tensor.
    """

    def __init__(self, mean: Sequence[float] | float, std: Sequence[float] | float,
                 inplace: bool = False):
        self.mean = list(mean) if isinstance(mean, Sequence) else [float(mean)]
        self.std = list(std) if isinstance(std, Sequence) else [float(std)]
        if any(s == 0 for s in self.std):
            raise ValueError(f"std evaluated to zero after conversion to float, leading to "
                             f"division by zero (std={self.std})")
        self.inplace = inplace

    def __call__(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or not x.is_floating_point():
            kind = x.dtype if isinstance(x, Tensor) else type(x).__name__
            raise TypeError(f"Normalize expects a floating-point tensor, got {kind}")
        if x.ndim < 3:
            raise ValueError(f"Normalize expects a tensor of shape (..., C, H, W), got shape "
                             f"{list(x.shape)}")
        mean = tensor(self.mean, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
        std = tensor(self.std, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
        if self.inplace:
            return x.sub_(mean).div_(std)
        return (x - mean) / std

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"

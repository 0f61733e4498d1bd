"""Pooling layers: ``MaxPool1d/2d``, ``AvgPool1d/2d``, ``AdaptiveAvgPool1d/2d`` and
``AdaptiveMaxPool1d/2d``. They hold no parameters; arguments and repr are torch's."""
from __future__ import annotations

from ...tensor import Tensor
from .. import functional as F
from .module import Module

__all__ = ["AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",
           "AvgPool1d", "AvgPool2d", "MaxPool1d", "MaxPool2d"]


def _single(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


class _MaxPoolNd(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        self.kernel_size = kernel_size
        # NOTE: the stride defaults to the kernel size (non-overlapping windows), as in torch.
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """1-D max pooling; padding counts as -inf.

    Args: as ``MaxPool2d``, with ints.

    Shape:
        Input (N, C, L) or (C, L); output (N, C, L_out) (and int64 indices with
        ``return_indices``).
    """

    def forward(self, input: Tensor):
        return F.max_pool1d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            ceil_mode=self.ceil_mode, return_indices=self.return_indices)


class MaxPool2d(_MaxPoolNd):
    """2-D max pooling; padding counts as -inf.

    Args:
        kernel_size: window size, an int or an (h, w) pair.
        stride: window step (default: kernel_size).
        padding: implicit -inf border, at most half the kernel.
        dilation: spacing between window cells.
        return_indices: also return the flat H*W position of each maximum (for unpooling).
        ceil_mode: round the output size up.

    Shape:
        Input (N, C, H, W) or (C, H, W); output (N, C, H_out, W_out),
        ``H_out = (H + 2*padding - dilation*(kernel_size - 1) - 1) // stride + 1`` (rounded up
        with ``ceil_mode``).
    """

    def forward(self, input: Tensor):
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            ceil_mode=self.ceil_mode, return_indices=self.return_indices)


class AvgPool1d(Module):
    """1-D average pooling.

    Args: as ``AvgPool2d`` (without ``divisor_override``), with ints.

    Shape:
        Input (N, C, L) or (C, L); output (N, C, L_out).
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True):
        super().__init__()
        # NOTE: torch stores the 1-d arguments as 1-tuples (they show so in the repr).
        self.kernel_size = _single(kernel_size)
        self.stride = _single(stride if stride is not None else kernel_size)
        self.padding = _single(padding)
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def forward(self, input: Tensor) -> Tensor:
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)


class AvgPool2d(Module):
    """2-D average pooling.

    Args:
        kernel_size: window size, an int or an (h, w) pair.
        stride: window step (default: kernel_size).
        padding: implicit zero border, at most half the kernel.
        ceil_mode: round the output size up.
        count_include_pad: count the zero padding in the divisor (default True).
        divisor_override: divide every window's sum by this instead.

    Shape:
        Input (N, C, H, W) or (C, H, W); output (N, C, H_out, W_out).
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def forward(self, input: Tensor) -> Tensor:
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)


class _AdaptivePool(Module):
    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptivePool):
    """Average pooling of (N, C, L) or (C, L) input to length ``output_size``, over windows
    [floor(i*L/out), ceil((i+1)*L/out))."""

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_avg_pool1d(input, self.output_size)


class AdaptiveAvgPool2d(_AdaptivePool):
    """Average pooling to a fixed output size (torch's adaptive windows).

    Args:
        output_size: an int or an (OH, OW) pair; None keeps that input size.

    Shape:
        Input (N, C, H, W) or (C, H, W); output (N, C, OH, OW).
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(input, self.output_size)


class _AdaptiveMaxPool(_AdaptivePool):
    def __init__(self, output_size, return_indices: bool = False):
        super().__init__(output_size)
        self.return_indices = return_indices


class AdaptiveMaxPool1d(_AdaptiveMaxPool):
    """Max pooling of (N, C, L) or (C, L) input to length ``output_size`` (adaptive
    windows); ``return_indices`` also returns the position of each maximum."""

    def forward(self, input: Tensor):
        return F.adaptive_max_pool1d(input, self.output_size, self.return_indices)


class AdaptiveMaxPool2d(_AdaptiveMaxPool):
    """Max pooling to a fixed output size (torch's adaptive windows).

    Args:
        output_size: an int or an (OH, OW) pair; None keeps that input size.
        return_indices: also return the flat H*W position of each maximum.

    Shape:
        Input (N, C, H, W) or (C, H, W); output (N, C, OH, OW).
    """

    def forward(self, input: Tensor):
        return F.adaptive_max_pool2d(input, self.output_size, self.return_indices)

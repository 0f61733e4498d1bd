"""Pooling: max and average pooling (1-D and 2-D) through the backend's kernels, and
adaptive pooling.

A 1-D pooling is the 2-D one over a height-1 image. Max pooling records the flat H*W
position of each window's maximum; its gradient scatters to those cells
(``MaxPoolScatter``), whose own gradient gathers from them, so every order is available.
Average pooling is linear: ``AvgPool2d`` and ``AvgPool2dBackward`` are each other's adjoint.
Adaptive average pooling runs as a plain average pooling, a mean, or (for windows of uneven
size) two products with averaging matrices; adaptive max pooling as a max pooling or, for
uneven windows, one gather of every window.
"""
from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..backend.dtypes import int64
from ..tensor import Tensor
from .indexing import gather
from .matmul import matmul

__all__ = ["adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d",
           "adaptive_max_pool2d", "avg_pool1d", "avg_pool2d", "max_pool1d", "max_pool2d"]


# -- max pooling -----------------------------------------------------------------------------
class _MaxPoolBase(Function):
    """Shared backward: d x = g scattered to the argmax cells (MaxPoolScatter)."""

    @staticmethod
    def backward(ctx, grad_output, _grad_indices):
        if grad_output is None:
            return None, None
        indices = Tensor._make(ctx.indices, ctx.device)
        return MaxPoolScatter.apply(grad_output, indices, ctx.x_shape, ctx.window), None


class MaxPool2d(_MaxPoolBase):
    """(y, idx) = window maxima and their flat H*W positions; d x = g scattered to idx."""

    @staticmethod
    def forward(ctx, x, window):
        out, indices = ctx.device.backend.max_pool2d_forward(x._data, *window)
        # The int64 indices never receive a gradient: no zeros are made for them.
        ctx.set_materialize_grads(False)
        ctx.x_shape, ctx.window, ctx.indices = x._data.shape, window, indices
        return out, indices


def _adaptive_bounds(n: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """torch's adaptive windows along one axis: [floor(i*n/out), ceil((i+1)*n/out))."""
    i = np.arange(out)
    return (i * n) // out, ((i + 1) * n + out - 1) // out


def _adaptive_cells(n: int, out: int) -> np.ndarray:
    """(out, longest window) positions per window, the short ones repeating their last cell
    (a repeat changes neither the maximum nor which cell holds it first)."""
    start, end = _adaptive_bounds(n, out)
    k = int((end - start).max())
    return np.minimum(start[:, None] + np.arange(k), end[:, None] - 1)


class AdaptiveMaxPool2d(_MaxPoolBase):
    """(y, idx) = maxima over torch's adaptive windows (uneven sizes); d x = g scattered."""

    @staticmethod
    def forward(ctx, x, out_hw):
        xp, backend = ctx.xp, ctx.device.backend
        a = x._data
        n, c, h, w = a.shape
        oh, ow = out_hw
        rows, cols = _adaptive_cells(h, oh), _adaptive_cells(w, ow)
        # Every window at once, (N, C, OH, OW, KH*KW) in row-major window order.
        r, q = backend.asarray(rows[:, None, :, None]), backend.asarray(cols[None, :, None, :])
        windows = a[:, :, r, q].reshape(n, c, oh, ow, rows.shape[1] * cols.shape[1])
        local = xp.argmax(windows, axis=-1)[..., None]
        out = xp.take_along_axis(windows, local, axis=-1)[..., 0]
        cells = backend.asarray((rows[:, None, :, None] * w + cols[None, :, None, :])
                                .reshape(oh, ow, -1))
        indices = xp.take_along_axis(xp.broadcast_to(cells, windows.shape), local, axis=-1)
        ctx.set_materialize_grads(False)
        ctx.x_shape, ctx.window, ctx.indices = a.shape, None, indices[..., 0]
        return out, indices[..., 0]


class MaxPoolScatter(Function):
    """grad_x = g added at the argmax cells; d g = gg gathered at those cells (the adjoint).

    ``window`` is the max pooling's (fixed windows: the backend's scatter, a plain store
    where windows are disjoint) or None (adaptive windows, which may share a maximum).
    """

    @staticmethod
    def forward(ctx, grad_output, indices, x_shape, window):
        ctx.save_for_backward(indices)
        backend, g, idx = ctx.device.backend, grad_output._data, indices._data
        if window is not None:
            return backend.max_pool2d_backward(g, idx, x_shape, *window)
        n, c, h, w = x_shape
        cells = idx.shape[2] * idx.shape[3]
        flat = idx.reshape(n * c, cells) + ctx.xp.arange(n * c).reshape(-1, 1) * (h * w)
        grad_x = ctx.xp.zeros(n * c * h * w, g.dtype)
        backend.add_at(grad_x, flat.reshape(-1), g.reshape(-1))
        return grad_x.reshape(x_shape)

    @staticmethod
    def backward(ctx, grad_output):
        (indices,) = ctx.saved_tensors
        n, c, oh, ow = indices.shape
        h, w = grad_output.shape[2:]
        picked = gather(grad_output.reshape(n, c, h * w), 2, indices.reshape(n, c, oh * ow))
        return picked.reshape(indices.shape), None, None, None


# -- average pooling -------------------------------------------------------------------------
class AvgPool2d(Function):
    """y = window sums / divisor; d x = AvgPool2dBackward(g) (its adjoint)."""

    @staticmethod
    def forward(ctx, x, window):
        ctx.x_shape, ctx.window = x._data.shape, window
        return ctx.device.backend.avg_pool2d_forward(x._data, *window)

    @staticmethod
    def backward(ctx, grad_output):
        return AvgPool2dBackward.apply(grad_output, ctx.x_shape, ctx.window), None


class AvgPool2dBackward(Function):
    """grad_x = each window's g / divisor spread over it; d g = AvgPool2d(gg) (the adjoint)."""

    @staticmethod
    def forward(ctx, grad_output, x_shape, window):
        ctx.window = window
        return ctx.device.backend.avg_pool2d_backward(grad_output._data, x_shape, *window)

    @staticmethod
    def backward(ctx, grad_output):
        return AvgPool2d.apply(grad_output, ctx.window), None, None


# -- argument handling -----------------------------------------------------------------------
def _param(value, n: int, name: str, op: str) -> tuple[int, ...]:
    """An int or a sequence of 1 or ``n`` ints as ``n`` ints."""
    if isinstance(value, int):
        return (value,) * n
    values = tuple(int(v) for v in value)
    if len(values) not in (1, n):
        raise RuntimeError(f"{op}: {name} must either be a single int, or a tuple of {n} ints "
                           f"(got {name}={values})")
    return values * (n // len(values))


def _stride(stride, kernel, n: int, op: str) -> tuple[int, ...]:
    """The stride, defaulting to the kernel size (None or an empty sequence, as in torch)."""
    if stride is None or (not isinstance(stride, int) and len(stride) == 0):
        return kernel
    return _param(stride, n, "stride", op)


def _batched(input: Tensor, nd: int, op: str) -> tuple[Tensor, bool]:
    """The input as (N, C, ...) (a batch dim added to unbatched input) and whether it was."""
    if input.ndim not in (nd + 1, nd + 2) or 0 in input.shape[input.ndim - nd - 1:]:
        raise RuntimeError(f"{op}: Expected {nd + 1}D or {nd + 2}D (batch mode) tensor with "
                           "optional 0 dim batch size for input, but got: "
                           f"{list(input.shape)}")
    if not input.is_floating_point():
        raise RuntimeError(f"{op}: expected a floating point input, got {input.dtype}")
    return (input.unsqueeze(0), True) if input.ndim == nd + 1 else (input, False)


def _finish(out, unbatched: bool, lifted: bool):
    """Undo the height-1 lift of a 1-D op and the batch dim of an unbatched input.

    A ``(values, indices)`` pair hands out a copy of the indices: the original stays with the
    graph for backward, safe from in-place changes by the caller.
    """
    if isinstance(out, tuple):
        values, indices = out
        return _finish(values, unbatched, lifted), _finish(indices.clone(), unbatched, lifted)
    if lifted:
        out = out.squeeze(2)
    return out.squeeze(0) if unbatched else out


def _max_pool(op, nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    x, unbatched = _batched(input, nd, op)
    kernel = _param(kernel_size, nd, "kernel_size", op)
    stride = _stride(stride, kernel, nd, op)
    padding = _param(padding, nd, "padding", op)
    dilation = _param(dilation, nd, "dilation", op)
    if nd == 1:
        x = x.unsqueeze(2)
        kernel, stride, padding, dilation = ((1, *kernel), (1, *stride), (0, *padding),
                                             (1, *dilation))
    out, indices = MaxPool2d.apply(x, (*kernel, *stride, *padding, *dilation, bool(ceil_mode)))
    return _finish((out, indices) if return_indices else out, unbatched, nd == 1)


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """2-D max pooling; padding counts as -inf (it is never the maximum).

    Args:
        input: (N, C, H, W) or (C, H, W).
        kernel_size, stride (default: kernel_size), padding (at most half the kernel),
            dilation: an int or an (h, w) pair.
        ceil_mode: round the output size up (a window must still start inside the input or
            its left padding).
        return_indices: also return the int64 flat H*W position of each maximum.
    """
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices)


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """1-D max pooling of an (N, C, L) or (C, L) input; arguments as ``max_pool2d``."""
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices)


def _avg_pool(op, nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override):
    x, unbatched = _batched(input, nd, op)
    kernel = _param(kernel_size, nd, "kernel_size", op)
    stride = _stride(stride, kernel, nd, op)
    padding = _param(padding, nd, "padding", op)
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError(f"divisor must be not zero (got divisor_override={divisor_override})")
    if nd == 1:
        x = x.unsqueeze(2)
        kernel, stride, padding = (1, *kernel), (1, *stride), (0, *padding)
    window = (*kernel, *stride, *padding, bool(ceil_mode), bool(count_include_pad),
              divisor_override)
    return _finish(AvgPool2d.apply(x, window), unbatched, nd == 1)


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """2-D average pooling.

    Args:
        input: (N, C, H, W) or (C, H, W).
        kernel_size, stride (default: kernel_size), padding: an int or an (h, w) pair.
        ceil_mode: round the output size up.
        count_include_pad: divide by the window size including the zero padding (default)
            or by the number of input cells in the window.
        divisor_override: divide every window's sum by this instead.
    """
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override)


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """1-D average pooling of an (N, C, L) or (C, L) input; arguments as ``avg_pool2d``."""
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, None)


# -- adaptive pooling ------------------------------------------------------------------------
def _adaptive_args(input: Tensor, output_size, nd: int, op: str):
    """``(x as (N, C, H, W), unbatched, (OH, OW))`` (1-D input lifted to height 1)."""
    if input.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(f"{op}(): Expected {nd + 1}D or {nd + 2}D tensor, but got "
                           f"{list(input.shape)}")
    if 0 in input.shape[-nd:] or not input.is_floating_point():
        raise RuntimeError(f"{op}(): Expected a floating point input with non-zero size for "
                           f"non-batch dimensions, but got {input.dtype} of size "
                           f"{list(input.shape)}")
    sizes = (output_size,) * nd if output_size is None or isinstance(output_size, int) \
        else tuple(output_size)
    if len(sizes) != nd:
        raise RuntimeError(f"{op}: output_size must be {nd} (got {output_size})")
    # NOTE: None keeps that dim's input size, as in torch.
    sizes = tuple(n if s is None else int(s) for s, n in zip(sizes, input.shape[-nd:]))
    if any(s < 0 for s in sizes):
        raise RuntimeError(f"{op}: elements of output_size must be greater than or equal to 0 "
                           f"but received {sizes}")
    x = input.unsqueeze(0) if input.ndim == nd + 1 else input
    if nd == 1:
        x, sizes = x.unsqueeze(2), (1, *sizes)
    return x, input.ndim == nd + 1, sizes


def _averaging_matrix(n: int, out: int, like: Tensor) -> Tensor:
    """(out, n): row i averages torch's i-th adaptive window."""
    start, end = _adaptive_bounds(n, out)
    cells = np.arange(n)
    inside = (cells >= start[:, None]) & (cells < end[:, None])
    m = (inside / (end - start)[:, None]).astype(like._data.dtype)
    return Tensor._make(like._device.backend.asarray(m), like._device)


def _empty(x: Tensor, out_hw) -> Tensor:
    """An output with no elements (a zero output size), still in the graph of ``x``."""
    return x.sum((2, 3), keepdim=True).expand(*x.shape[:2], *out_hw)


def _adaptive_avg(x: Tensor, out_hw) -> Tensor:
    h, w = x.shape[2:]
    oh, ow = out_hw
    if oh * ow == 0:
        return _empty(x, out_hw)
    if (oh, ow) == (1, 1):
        return x.mean((2, 3), keepdim=True)
    if h % oh == 0 and w % ow == 0:
        kh, kw = h // oh, w // ow
        return AvgPool2d.apply(x, (kh, kw, kh, kw, 0, 0, False, True, None))
    # Uneven windows: average rows, then columns (both are fixed linear maps).
    out = x if oh == h else matmul(_averaging_matrix(h, oh, x), x)
    return out if ow == w else matmul(out, _averaging_matrix(w, ow, x).t())


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Average pooling to a fixed output size; window i spans
    [floor(i*H/OH), ceil((i+1)*H/OH)) (torch's rule), likewise along W.

    Args:
        input: (N, C, H, W) or (C, H, W).
        output_size: an int or an (OH, OW) pair; None keeps that input size.
    """
    x, unbatched, size = _adaptive_args(input, output_size, 2, "adaptive_avg_pool2d")
    return _finish(_adaptive_avg(x, size), unbatched, False)


def adaptive_avg_pool1d(input: Tensor, output_size) -> Tensor:
    """Adaptive average pooling of an (N, C, L) or (C, L) input to length ``output_size``."""
    x, unbatched, size = _adaptive_args(input, output_size, 1, "adaptive_avg_pool1d")
    return _finish(_adaptive_avg(x, size), unbatched, True)


def _adaptive_max(x: Tensor, out_hw):
    h, w = x.shape[2:]
    oh, ow = out_hw
    if oh * ow == 0:
        return _empty(x, out_hw), x.new_zeros((*x.shape[:2], oh, ow), dtype=int64)
    if h % oh == 0 and w % ow == 0:
        kh, kw = h // oh, w // ow
        return MaxPool2d.apply(x, (kh, kw, kh, kw, 0, 0, 1, 1, False))
    return AdaptiveMaxPool2d.apply(x, (oh, ow))


def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False):
    """Max pooling to a fixed output size over torch's adaptive windows (see
    ``adaptive_avg_pool2d``); ``return_indices`` as in ``max_pool2d``."""
    x, unbatched, size = _adaptive_args(input, output_size, 2, "adaptive_max_pool2d")
    out, indices = _adaptive_max(x, size)
    return _finish((out, indices) if return_indices else out, unbatched, False)


def adaptive_max_pool1d(input: Tensor, output_size, return_indices: bool = False):
    """Adaptive max pooling of an (N, C, L) or (C, L) input to length ``output_size``."""
    x, unbatched, size = _adaptive_args(input, output_size, 1, "adaptive_max_pool1d")
    out, indices = _adaptive_max(x, size)
    return _finish((out, indices) if return_indices else out, unbatched, True)

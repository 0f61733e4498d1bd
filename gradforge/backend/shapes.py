"""Output-size arithmetic for sliding windows (convolution, pooling), shared by ops and kernels.

The formulas are PyTorch's, so shapes agree to the element:

- convolution: ``out = (size + 2*p - d*(k - 1) - 1) // s + 1``;
- pooling: the same, rounded up instead of down under ``ceil_mode``, except that the last
  window must start inside the input or the left padding (a window lying entirely in the
  right padding is dropped).

The ``*_output_shape`` helpers validate their arguments and raise the errors torch raises
(RuntimeError, naming the sizes involved). ``column_chunks`` bounds the im2col buffer.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

__all__ = [
    "COLUMN_BUFFER_BYTES",
    "column_chunks",
    "conv_output_shape",
    "conv_output_size",
    "keepdim_shape",
    "pool2d_grad_output_shape",
    "pool_output_shape",
    "pool_output_size",
    "sum_subscripts",
]

COLUMN_BUFFER_BYTES = 256 * 2 ** 20
"""Largest im2col column buffer (bytes) built in one piece; larger batches are chunked.

A 3x3 convolution over (64, 32, 32) float32 samples needs 2.25 MiB of columns per sample,
so the benchmark layer (batch 32, 72 MiB) runs in one piece and a batch of 256 in three.
"""


def keepdim_shape(shape: Sequence[int], dims) -> tuple[int, ...]:
    """``shape`` with the reduced ``dims`` set to 1: a reduction's shape with keepdim."""
    return tuple(1 if i in dims else n for i, n in enumerate(shape))


def sum_subscripts(ndim: int, dims, operands: int = 1) -> str:
    """``einsum`` subscripts summing ``operands`` arrays of ``ndim`` dims (their elementwise
    product, for two) over ``dims``: ``sum_subscripts(4, (0, 2, 3), 2)`` is
    ``"abcd,abcd->b"``."""
    axes = "abcdefghijklmnopqrstuvwxyz"[:ndim]
    kept = "".join(axis for i, axis in enumerate(axes) if i not in dims)
    return ",".join([axes] * operands) + "->" + kept


def conv_output_size(size: int, k: int, s: int, p: int, d: int) -> int:
    """Number of convolution windows along one axis (may be < 1 for invalid arguments)."""
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def pool_output_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """Number of pooling windows along one axis, with torch's ``ceil_mode`` rule."""
    span = size + 2 * p - d * (k - 1) - 1
    if not ceil_mode:
        return span // s + 1
    out = -(-span // s) + 1
    # NOTE: torch drops a last window that would start in the right padding.
    if (out - 1) * s >= size + p:
        out -= 1
    return out


def _fmt(values: Sequence[int], sep: str = " x ") -> str:
    return sep.join(str(int(v)) for v in values)


def _check_window_args(kernel, stride, padding, dilation) -> None:
    for name, values, low in (("kernel size", kernel, 1), ("stride", stride, 1),
                              ("dilation", dilation, 1), ("padding", padding, 0)):
        if any(int(v) < low for v in values):
            bound = "greater than zero" if low else "non-negative"
            raise RuntimeError(f"{name} should be {bound}, but got {name}=({_fmt(values, ', ')})")


def conv_output_shape(size: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
                      padding: Sequence[int], dilation: Sequence[int]) -> tuple[int, ...]:
    """Spatial output shape of a convolution (or unfold); raises where torch refuses.

    Args:
        size: input spatial sizes, e.g. ``(H, W)``; kernel, stride, padding, dilation: one
            value per spatial axis.

    Raises:
        RuntimeError: a non-positive kernel, stride or dilation, negative padding, or a
            (dilated) kernel larger than the padded input.
    """
    # Memoised (every convolution asks several times per step); errors are not cached.
    return _conv_output_shape(tuple(size), tuple(kernel), tuple(stride), tuple(padding),
                              tuple(dilation))


@functools.lru_cache(maxsize=1024)
def _conv_output_shape(size, kernel, stride, padding, dilation) -> tuple[int, ...]:
    """``conv_output_shape`` on tuples."""
    _check_window_args(kernel, stride, padding, dilation)
    padded = [n + 2 * p for n, p in zip(size, padding)]
    effective = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    if any(e > n for e, n in zip(effective, padded)):
        raise RuntimeError(
            f"Calculated padded input size per channel: ({_fmt(padded)}). Kernel size: "
            f"({_fmt(effective)}). Kernel size can't be greater than actual input size")
    return tuple(conv_output_size(n, k, s, p, d)
                 for n, k, s, p, d in zip(size, kernel, stride, padding, dilation))


def pool_output_shape(size: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
                      padding: Sequence[int], dilation: Sequence[int],
                      ceil_mode: bool) -> tuple[int, ...]:
    """Spatial output shape of a max or average pooling; raises where torch refuses.

    Raises:
        RuntimeError: a non-positive kernel, stride or dilation, negative padding, padding
            larger than half the kernel, or an output smaller than one element.
    """
    return _pool_output_shape(tuple(size), tuple(kernel), tuple(stride), tuple(padding),
                              tuple(dilation), bool(ceil_mode))


@functools.lru_cache(maxsize=1024)
def _pool_output_shape(size, kernel, stride, padding, dilation, ceil_mode) -> tuple[int, ...]:
    """``pool_output_shape`` on tuples."""
    _check_window_args(kernel, stride, padding, dilation)
    for k, p, d in zip(kernel, padding, dilation):
        # NOTE: torch compares against the undilated kernel despite the message's wording.
        if p > k // 2:
            raise RuntimeError(
                f"pad should be at most half of effective kernel size, but got pad={p}, "
                f"kernel_size={k} and dilation={d}")
    out = tuple(pool_output_size(n, k, s, p, d, ceil_mode)
                for n, k, s, p, d in zip(size, kernel, stride, padding, dilation))
    if any(o < 1 for o in out):
        raise RuntimeError(f"Given input size: ({_fmt(size, 'x')}). Calculated output size: "
                           f"({_fmt(out, 'x')}). Output size is too small")
    return out


def pool2d_grad_output_shape(grad_shape: Sequence[int], x_shape: Sequence[int],
                             kernel: Sequence[int], stride: Sequence[int],
                             padding: Sequence[int], dilation: Sequence[int],
                             ceil_mode: bool) -> tuple[int, int]:
    """``(OH, OW)`` of a 2-D pooling over ``x_shape``, checked against its gradient's shape.

    Raises:
        ValueError: ``grad_shape`` is not ``(N, C, OH, OW)``.
    """
    n, c, h, w = x_shape
    oh, ow = pool_output_shape((h, w), kernel, stride, padding, dilation, ceil_mode)
    if tuple(grad_shape) != (n, c, oh, ow):
        raise ValueError(f"pooling gradient has shape {tuple(grad_shape)}, expected "
                         f"{(n, c, oh, ow)} for input {tuple(x_shape)}")
    return oh, ow


def column_chunks(batch: int, bytes_per_sample: int,
                  limit: int = COLUMN_BUFFER_BYTES) -> list[slice]:
    """Batch slices whose column buffers each stay within ``limit`` bytes (at least 1 sample).

    Args:
        batch: the batch size N.
        bytes_per_sample: size of one sample's columns, ``C*kh*kw * OH*OW * itemsize``.
        limit: the largest buffer to build at once.
    """
    if batch * bytes_per_sample <= limit:
        return [slice(0, batch)]
    step = max(1, limit // bytes_per_sample)
    return [slice(start, min(start + step, batch)) for start in range(0, batch, step)]

"""Spatial ops: ``pad`` (constant, reflect, replicate, circular), ``interpolate`` (nearest,
nearest-exact, linear/bilinear/trilinear, area) and ``unfold``/``fold``.

Constant padding is one Function whose adjoint is itself with the pads negated (a crop).
The other padding modes and interpolation are compositions of differentiable tensor ops:
one gather of whole rows per padded or resized axis (``GetItem``, whose backward
scatter-adds), and for the linear modes a blend of two gathers per axis. The index arrays
are computed once on the host with torch's formulas, in the dtype torch computes them in.
``unfold``/``fold`` are the backend's im2col/col2im, each the other's adjoint.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd.function import Function
from ..backend.shapes import conv_output_size
from ..tensor import Tensor
from .conv import expand_param
from .indexing import getitem_arrays

__all__ = ["fold", "interpolate", "pad", "unfold"]


# -- pad -------------------------------------------------------------------------------------
class ConstantPad(Function):
    """y = x framed by ``value`` (negative pads crop); d x = g with the pads negated, i.e.
    cropped back (the adjoint of padding with zeros is cropping, and vice versa)."""

    @staticmethod
    def forward(ctx, x, pads, value):
        ctx.pads = pads
        a = x._data
        shape = tuple(n + lo + hi for n, (lo, hi) in zip(a.shape, pads))
        out = ctx.xp.full(shape, value, a.dtype)
        src = tuple(slice(max(-lo, 0), n - max(-hi, 0)) for n, (lo, hi) in zip(a.shape, pads))
        dst = tuple(slice(max(lo, 0), max(lo, 0) + s.stop - s.start) for s, (lo, _) in
                    zip(src, pads))
        out[dst] = a[src]
        return out

    @staticmethod
    def backward(ctx, grad_output):
        undo = tuple((-lo, -hi) for lo, hi in ctx.pads)
        return ConstantPad.apply(grad_output, undo, 0), None, None


def _source_index(n: int, lo: int, hi: int, mode: str) -> np.ndarray:
    """For positions ``-lo .. n + hi - 1`` of a padded axis, the input position each copies
    (a negative ``lo`` or ``hi`` crops)."""
    if mode == "circular":
        # NOTE: as torch, negative pads crop first and the rest wraps around the cropped axis.
        kept = n + min(lo, 0) + min(hi, 0)
        return np.arange(-max(lo, 0), kept + max(hi, 0)) % kept + max(-lo, 0)
    j = np.arange(-lo, n + hi)
    if mode == "replicate":
        return j.clip(0, n - 1)
    j = np.abs(j)  # reflect about 0, then about n - 1
    return np.where(j > n - 1, 2 * (n - 1) - j, j)


def _gather_axis(x: Tensor, axis: int, index: np.ndarray) -> Tensor:
    """``x`` indexed along ``axis`` by the host ``index`` (differentiable; repeats add)."""
    idx = x._device.backend.asarray(index.astype(np.int64))
    return getitem_arrays(x, (slice(None),) * axis + (idx,), False)


def _pad_error(text: str, pad, input: Tensor) -> RuntimeError:
    return RuntimeError(f"{text}: padding {tuple(pad)} for input of size {list(input.shape)}")


def pad(input: Tensor, pad, mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad the last ``len(pad) // 2`` dims: ``pad = (left, right, top, bottom, ...)``.

    Args:
        input: any tensor for ``'constant'``; for the other modes (N, C, *) or (C, *) with
            1 to 3 padded dims.
        pad: pairs of sizes, last dim first; negative sizes crop.
        mode: ``'constant'`` (``value``, default 0), ``'reflect'`` (mirror without the
            edge), ``'replicate'`` (repeat the edge) or ``'circular'`` (wrap around).
    """
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    dims = len(pad) // 2
    if dims > input.ndim:
        raise RuntimeError("Padding length should be less than or equal to two times the input "
                           f"dimension but got padding length {len(pad)} and input of "
                           f"dimension {input.ndim}")
    pairs = [(pad[2 * i], pad[2 * i + 1]) for i in range(dims)]  # last dim first
    if mode == "constant":
        pads = [(0, 0)] * (input.ndim - dims) + pairs[::-1]
        for n, (lo, hi) in zip(input.shape, pads):
            if n + min(lo, 0) + min(hi, 0) < 0 or n + lo + hi < 0:
                raise _pad_error("negative padding crops more than the input holds", pad, input)
        if all(p == (0, 0) for p in pads):
            return input.clone()
        return ConstantPad.apply(input, tuple(pads), 0 if value is None else value)
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if value is not None and value != 0:
        raise RuntimeError(f'Padding mode "{mode}" doesn\'t take in value argument')
    if not 1 <= dims <= 3 or input.ndim not in (dims + 1, dims + 2):
        raise NotImplementedError(f"Padding size {len(pad)} is not supported for "
                                  f"{input.ndim}D input tensor.")
    if mode != "circular" and 0 in input.shape[input.ndim - dims - 1:]:
        raise RuntimeError(f"{mode} padding: expected {dims + 1}D or {dims + 2}D (batch mode) "
                           "tensor with possibly 0 batch size and other non-zero dimensions for "
                           f"input, but got: {list(input.shape)}")
    out = input
    for k, (lo, hi) in enumerate(pairs):
        axis = input.ndim - 1 - k
        n = input.shape[axis]
        if n + min(lo, 0) + min(hi, 0) < 0 or n + lo + hi < 0:
            raise _pad_error("negative padding crops more than the input holds", pad, input)
        if mode == "reflect" and (lo >= n or hi >= n):
            raise RuntimeError("Argument #4: Padding size should be less than the corresponding "
                               f"input dimension, but got: padding ({lo}, {hi}) at dimension "
                               f"{axis} of input {list(input.shape)}")
        kept = n + min(lo, 0) + min(hi, 0)
        if mode == "circular" and (lo > kept or hi > kept):
            raise _pad_error("Padding value causes wrapping around more than once", pad, input)
        if lo or hi:
            out = _gather_axis(out, axis, _source_index(n, lo, hi, mode))
    return out if out is not input else input.clone()


# -- interpolate -----------------------------------------------------------------------------
_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "trilinear", "area")
_LINEAR_DIMS = {"linear": 1, "bilinear": 2, "trilinear": 3}


def _output_size(input: Tensor, size, scale_factor, recompute_scale_factor):
    """``(output sizes, scale factors or None per axis)`` with torch's rules."""
    dims = input.ndim - 2
    spatial = list(input.shape[2:])
    if (size is None) == (scale_factor is None):
        raise ValueError("only one of size or scale_factor should be defined" if size is not None
                         else "either size or scale_factor should be defined")
    if size is not None:
        out = (int(size),) * dims if isinstance(size, (int, float)) else tuple(int(s) for s in size)
        if len(out) != dims:
            raise ValueError("Input and output must have the same number of spatial dimensions, "
                             f"but got input with spatial dimensions of {spatial} and output "
                             f"size of {size}. Please provide input tensor in (N, C, d1, d2, "
                             "...,dK) format and output size in (o1, o2, ...,oK) format.")
        return out, (None,) * dims
    scales = (float(scale_factor),) * dims if isinstance(scale_factor, (int, float)) else \
        tuple(float(s) for s in scale_factor)
    if len(scales) != dims:
        raise ValueError("Input and scale_factor must have the same number of spatial "
                         f"dimensions, but got input with spatial dimensions of {spatial} and "
                         f"scale_factor of shape {scale_factor}. Please provide input tensor in "
                         "(N, C, d1, d2, ...,dK) format and scale_factor in (s1, s2, ...,sK) "
                         "format.")
    out = tuple(math.floor(n * s) for n, s in zip(spatial, scales))
    return out, (None,) * dims if recompute_scale_factor else scales


def _scale(n: int, out: int, scale, dtype):
    """torch's ``compute_scales_value``: 1/scale_factor when given, else n/out (in dtype)."""
    return dtype(1.0 / scale) if scale is not None and scale > 0 else dtype(n) / dtype(out)


def _nearest_index(n: int, out: int, scale, exact: bool) -> np.ndarray:
    """Source positions of ``nearest`` (floor(dst*scale)) or ``nearest-exact``
    (floor((dst + 0.5)*scale)); float32 arithmetic as in torch's kernels."""
    dst = np.arange(out)
    if not exact:
        if out == n:
            return dst
        if out == 2 * n:
            return dst >> 1
        src = np.floor(dst.astype(np.float32) * _scale(n, out, scale, np.float32))
    else:
        src = np.floor(((dst + 0.5) * np.float64(_scale(n, out, scale, np.float32)))
                       .astype(np.float32))
    return np.minimum(src.astype(np.int64), n - 1)


def _linear_weights(n: int, out: int, scale, align_corners: bool, dtype):
    """``(i0, i1, lambda)``: output j blends inputs i0 and i1 as (1 - lambda)*x0 + lambda*x1."""
    dt = np.dtype(dtype).type
    dst = np.arange(out).astype(dt)
    if align_corners:
        ratio = dt(n - 1) / dt(out - 1) if out > 1 else dt(0)
        src = ratio * dst
    else:
        src = np.maximum(_scale(n, out, scale, dt) * (dst + dt(0.5)) - dt(0.5), dt(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n - 1)
    lam = np.clip(src - i0.astype(dt), 0, 1).astype(dt)
    i1 = np.where(i0 < n - 1, i0 + 1, i0)
    return i0, i1, lam


def _blend(x: Tensor, axis: int, i0, i1, lam) -> Tensor:
    """``x[i0]*(1 - lam) + x[i1]*lam`` along ``axis`` (lam broadcast over the other axes)."""
    shape = [1] * x.ndim
    shape[axis] = lam.shape[0]
    backend = x._device.backend
    w1 = Tensor._make(backend.asarray(lam.reshape(shape)), x._device)
    w0 = Tensor._make(backend.asarray((1 - lam).reshape(shape)), x._device)
    return _gather_axis(x, axis, i0) * w0 + _gather_axis(x, axis, i1) * w1


def interpolate(input: Tensor, size=None, scale_factor=None, mode: str = "nearest",
                align_corners: bool | None = None, recompute_scale_factor: bool | None = None,
                antialias: bool = False) -> Tensor:
    """Resize the spatial dims of an (N, C, *) input to ``size`` or by ``scale_factor``.

    Args:
        mode: ``'nearest'`` (torch's floor rule), ``'nearest-exact'``, ``'linear'`` (3-D
            input), ``'bilinear'`` (4-D), ``'trilinear'`` (5-D) or ``'area'``.
        align_corners: linear modes only: map the corner pixels' centres onto each other
            (default False: map the corners of the pixel grids).
        recompute_scale_factor: derive the sampling scale from the output size instead of
            using ``scale_factor`` as given.
    """
    if mode not in _MODES:
        raise NotImplementedError(f"interpolate: mode {mode!r} is not supported; expected one "
                                  f"of {', '.join(_MODES)}")
    if mode in _LINEAR_DIMS:
        align_corners = bool(align_corners)
    elif align_corners is not None:
        raise ValueError("align_corners option can only be set with the interpolating modes: "
                         "linear | bilinear | bicubic | trilinear")
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not supported")
    if input.ndim not in (3, 4, 5):
        raise NotImplementedError(f"Input Error: Only 3D, 4D and 5D input Tensors supported "
                                  f"(got {input.ndim}D) for the modes: {' | '.join(_MODES)} "
                                  f"(got {mode})")
    if mode in _LINEAR_DIMS and _LINEAR_DIMS[mode] != input.ndim - 2:
        raise NotImplementedError(f"Got {input.ndim}D input, but {mode} mode needs "
                                  f"{_LINEAR_DIMS[mode] + 2}D input")
    if mode not in ("nearest", "nearest-exact") and not input.is_floating_point():
        raise RuntimeError(f"interpolate: mode {mode!r} needs a floating point input, got "
                           f"{input.dtype}")
    out_size, scales = _output_size(input, size, scale_factor, recompute_scale_factor)
    spatial = tuple(input.shape[2:])
    if any(o <= 0 for o in out_size) or any(n <= 0 for n in spatial):
        raise RuntimeError(f"Input and output sizes should be greater than 0, but got input "
                           f"{spatial} output {out_size}")
    if mode == "area":
        from .pool import adaptive_avg_pool1d, adaptive_avg_pool2d
        if input.ndim == 5:
            raise NotImplementedError("interpolate: mode 'area' supports 3-D and 4-D input")
        return (adaptive_avg_pool1d if input.ndim == 3 else adaptive_avg_pool2d)(input, out_size)
    out = input
    for k, (n, o, s) in enumerate(zip(spatial, out_size, scales)):
        axis = 2 + k
        if mode in _LINEAR_DIMS:
            out = _blend(out, axis, *_linear_weights(n, o, s, align_corners, input._data.dtype))
        elif o != n or mode == "nearest-exact":
            out = _gather_axis(out, axis, _nearest_index(n, o, s, mode == "nearest-exact"))
    return out if out is not input else input.clone()


# -- unfold / fold ---------------------------------------------------------------------------
class Unfold(Function):
    """cols = im2col(x); d x = col2im(g) (Fold: the adjoint)."""

    @staticmethod
    def forward(ctx, x, window):
        ctx.x_shape, ctx.window = x._data.shape, window
        cols = ctx.device.backend.im2col(x._data, *window)
        # A 1x1 window is a read-only view of x: unfold returns a tensor of its own.
        return cols if cols.flags.owndata else cols.copy()

    @staticmethod
    def backward(ctx, grad_output):
        return Fold.apply(grad_output, ctx.x_shape, ctx.window), None


class Fold(Function):
    """x = col2im(cols), overlapping windows summed; d cols = im2col(g) (Unfold)."""

    @staticmethod
    def forward(ctx, cols, x_shape, window):
        ctx.window = window
        return ctx.device.backend.col2im(cols._data, x_shape, *window)

    @staticmethod
    def backward(ctx, grad_output):
        return Unfold.apply(grad_output, ctx.window), None, None


def _window(kernel_size, dilation, padding, stride):
    params = [expand_param(v, 2, name) for v, name in
              ((kernel_size, "kernel_size"), (dilation, "dilation"), (padding, "padding"),
               (stride, "stride"))]
    for (name, values), low in zip(zip(("kernel_size", "dilation", "padding", "stride"), params),
                                   (1, 1, 0, 1)):
        if any(v < low for v in values):
            raise RuntimeError(f"{name} should be {'non-negative' if low == 0 else 'positive'}"
                               f", but got {name}={values}")
    return params


def _blocks(spatial, kernel, dilation, padding, stride):
    return tuple(conv_output_size(n, k, s, p, d) for n, k, s, p, d in
                 zip(spatial, kernel, stride, padding, dilation))


def unfold(input: Tensor, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """Sliding local blocks as columns (im2col): (N, C, H, W) -> (N, C*kh*kw, L).

    Shape:
        Input (N, C, H, W) or (C, H, W); output (N, C*kh*kw, L) or (C*kh*kw, L), L the
        number of blocks, ordered row-major over the output grid.
    """
    if input.ndim not in (3, 4):
        raise RuntimeError(f"Input Error: Only 3D or 4D input Tensors are supported (got "
                           f"{input.ndim}D input of size {list(input.shape)})")
    kernel, dilation, padding, stride = _window(kernel_size, dilation, padding, stride)
    x = input.unsqueeze(0) if input.ndim == 3 else input
    blocks = _blocks(x.shape[2:], kernel, dilation, padding, stride)
    if any(b < 1 for b in blocks):
        raise RuntimeError(f"Given input with spatial size {tuple(x.shape[2:])}, kernel_size="
                           f"{kernel}, dilation={dilation}, padding={padding}, calculated shape "
                           f"of the array of sliding blocks as {blocks}, but its components "
                           "must be at least one.")
    cols = Unfold.apply(x, (*kernel, *stride, *padding, *dilation))
    return cols.squeeze(0) if input.ndim == 3 else cols


def fold(input: Tensor, output_size, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """Sum sliding local blocks back into an image (col2im), the adjoint of ``unfold``.

    Shape:
        Input (N, C*kh*kw, L) or (C*kh*kw, L); output (N, C, *output_size) or
        (C, *output_size).
    """
    if input.ndim not in (2, 3):
        raise RuntimeError("Expected 2D or 3D (batch mode) tensor for input with possibly 0 "
                           f"batch size and non-zero dimensions for input, but got: "
                           f"{list(input.shape)}")
    size = (output_size,) * 2 if isinstance(output_size, int) else tuple(output_size)
    if len(size) != 2:
        raise RuntimeError(f"It is expected output_size equals to 2, but got size {len(size)}")
    kernel, dilation, padding, stride = _window(kernel_size, dilation, padding, stride)
    cols = input.unsqueeze(0) if input.ndim == 2 else input
    per_block = kernel[0] * kernel[1]
    if cols.shape[1] % per_block:
        raise RuntimeError("Expected size of input's dimension 1 to be divisible by the product "
                           f"of kernel_size, but got input.size(1)={cols.shape[1]} and "
                           f"kernel_size={kernel}.")
    blocks = _blocks(size, kernel, dilation, padding, stride)
    if any(b < 1 for b in blocks) or cols.shape[2] != blocks[0] * blocks[1]:
        raise RuntimeError(f"Given output_size={size}, kernel_size={kernel}, dilation="
                           f"{dilation}, padding={padding}, stride={stride}, expected size of "
                           "input's dimension 2 to match the calculated number of sliding blocks "
                           f"{blocks[0]} * {blocks[1]} = {blocks[0] * blocks[1]}, but got "
                           f"input.size(2)={cols.shape[2]}.")
    x_shape = (cols.shape[0], cols.shape[1] // per_block) + size
    out = Fold.apply(cols, x_shape, (*kernel, *stride, *padding, *dilation))
    return out.squeeze(0) if input.ndim == 2 else out

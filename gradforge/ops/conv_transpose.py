"""Transposed convolution: ``conv_transpose1d`` and ``conv_transpose2d``.

``conv_transpose(x, w)`` is the adjoint of ``conv(., w)`` in its input: per group
``cols = W^T x``, then col2im sums the overlapping windows into the output (a stride-1 case
runs as a convolution with the flipped kernel; see ``conv.conv_transpose_array``). Its
backward goes the other way, through im2col: ``d x = conv(g, w)`` and
``d w = Conv2dWeightGrad(g, x)``.
"""
from __future__ import annotations

from ..autograd.function import Function
from ..tensor import Tensor
from ._util import spread_over_batch
from .conv import (
    Conv2d,
    Conv2dWeightGrad,
    ConvGeometry,
    as_batched,
    check_bias,
    check_geometry,
    check_operands,
    conv_transpose_array,
    crop,
    expand_param,
    lift_1d,
)

__all__ = ["conv_transpose1d", "conv_transpose2d"]


class ConvTranspose2d(Function):
    """y = conv^T(x, w) + b on an ``out_hw`` grid; d x = conv(g, w) (cropped to x),
    d w = Conv2dWeightGrad(g, x), d b = sum g."""

    @staticmethod
    def forward(ctx, x, weight, bias, geom, out_hw):
        ctx.save_for_backward(x, weight)
        ctx.geom = geom
        y = conv_transpose_array(ctx.device.backend, x._data, weight._data, geom, out_hw)
        if bias is not None:
            y += spread_over_batch(ctx.xp, bias._data.reshape(1, -1, 1, 1), y.shape)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        geom = ctx.geom
        # With an output_padding of a stride or more, conv(g) has windows x does not feed.
        grad_x = crop(Conv2d.apply(grad_output, weight, None, geom), x.shape[2:]) \
            if needs[0] else None
        grad_w = Conv2dWeightGrad.apply(grad_output, x, geom, tuple(weight.shape)) \
            if needs[1] else None
        grad_b = grad_output.sum((0, 2, 3)) if needs[2] else None
        return grad_x, grad_w, grad_b, None, None


def _conv_transpose(name: str, nd: int, input, weight, bias, stride, padding, output_padding,
                    groups, dilation) -> Tensor:
    check_operands(name, input, weight, bias, nd)
    x, unbatched = as_batched(input, nd, name)
    stride = expand_param(stride, nd, "stride")
    padding = expand_param(padding, nd, "padding")
    dilation = expand_param(dilation, nd, "dilation")
    output_padding = expand_param(output_padding, nd, "output_padding")
    check_geometry(stride, padding, dilation, groups)
    for op, s, d in zip(output_padding, stride, dilation):
        if op < 0 or (op >= s and op >= d):
            raise RuntimeError(
                "output padding must be smaller than either stride or dilation, but got "
                f"output_padding={list(output_padding)}, stride={list(stride)} and "
                f"dilation={list(dilation)}")
    in_channels = weight.shape[0]
    if in_channels % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} "
                           f"at dimension 0, but got weight of size {list(weight.shape)} instead")
    if x.shape[1] != in_channels:
        raise RuntimeError(f"Given transposed=1, weight of size {list(weight.shape)}, expected "
                           f"input{list(x.shape)} to have {in_channels} channels, but got "
                           f"{x.shape[1]} channels instead")
    check_bias(weight.shape, bias, weight.shape[1] * groups)
    size = tuple(x.shape[2:])
    out = tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, s, p, d, k, op in
                zip(size, stride, padding, dilation, weight.shape[2:], output_padding))
    if any(o < 1 for o in out):
        raise RuntimeError(f"Given input size per channel: ({' x '.join(map(str, size))}). "
                           f"Calculated output size per channel: ({' x '.join(map(str, out))}). "
                           "Output size is too small")
    if nd == 1:
        x, weight = lift_1d(x, weight)
        stride, padding, dilation, out = (1, *stride), (0, *padding), (1, *dilation), (1, *out)
    y = ConvTranspose2d.apply(x, weight, bias, ConvGeometry(stride, padding, dilation, groups), out)
    if nd == 1:
        y = y.squeeze(2)
    return y.squeeze(0) if unbatched else y


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1,
                     padding=0, output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """2-D transposed convolution (the gradient of ``conv2d`` with respect to its input).

    Args:
        input: (N, C_in, H, W) or unbatched (C_in, H, W).
        weight: (C_in, C_out/groups, kH, kW).
        bias: (C_out,) or None.
        stride, padding, dilation: those of the convolution this op transposes.
        output_padding: extra rows/columns on the bottom/right of the output (smaller than
            the stride or the dilation), to pick one of the input sizes a strided
            convolution maps to the same output size.
        groups: as in ``conv2d``.

    Output size per axis: ``(H - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1``.
    """
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def conv_transpose1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1,
                     padding=0, output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """1-D transposed convolution of an (N, C_in, L) or (C_in, L) input with a
    (C_in, C_out/groups, k) weight; arguments as ``conv_transpose2d``."""
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)

"""Normalisation: batch_norm, layer_norm and group_norm.

All three standardise ``x`` over some dims and apply a per-feature affine map; one fused
Function, ``Normalize``, does that on arrays, in as few passes over the activation as the
affine map allows. Its backward is the classic formula, on arrays (``_backward_arrays``)
or, under ``create_graph``, with tensor ops. The arrays keep the centred input and the
inverse standard deviation from the forward pass; under ``create_graph`` the statistics are
recomputed with tensor ops instead, so that they depend on ``x`` in the graph and the
second derivative is exact.
"""
from __future__ import annotations

import math

from ..autograd.function import Function
from ..autograd.grad_mode import is_grad_enabled
from ..backend.shapes import keepdim_shape, sum_subscripts
from ..tensor import Tensor
from ._util import spread_over_batch
from .elementwise import rsqrt
from .reduce import sum_to_dims


def _standardize(x: Tensor, dims: tuple, eps: float):
    """``((x - mean) * invstd, invstd)`` over ``dims`` with tensor ops (differentiable)."""
    centered = x - x.mean(dims, keepdim=True)
    invstd = rsqrt((centered * centered).mean(dims, keepdim=True) + eps)
    return centered * invstd, invstd


class Normalize(Function):
    """out = xhat*w + b, xhat = (x - mean)*invstd over dims;
    d x = invstd*(h - mean(h) - xhat*mean(h*xhat)) with h = g*w; d w = sum(g*xhat); d b = sum(g).

    ``weight`` and ``bias`` (or None) already have a shape that broadcasts against ``x``.
    ``running`` is None or ``(running_mean, running_var, momentum)``: the batch statistics
    are folded into those buffers here, while they are at hand (as torch's kernel does).
    """

    @staticmethod
    def forward(ctx, a, weight, bias, dims, eps, running=None):
        xp = ctx.xp
        # Statistics in float32 at least, as torch accumulates them: a float16 sum overflows.
        x = a._data if a._data.dtype.itemsize >= 4 else a._data.astype(xp.float32)
        total = ctx.device.backend.sum(x, dims, True)
        count = _count(x.shape, dims)
        mean = total / count
        centered = x - spread_over_batch(xp, mean, x.shape)
        var = _reduce_dot(xp, centered, centered, dims) / count
        invstd = 1 / xp.sqrt(var + eps)
        if running is not None:
            _update_running(running, mean, var, count)
        ctx.save_for_backward(a, weight)
        ctx.dims, ctx.eps = dims, eps
        ctx.bias_shape = None if bias is None else bias._data.shape
        if any(ctx.needs_input_grad):
            ctx.centered, ctx.invstd = centered, invstd
        if weight is None or _per_statistic(weight._data.shape, invstd.shape):
            # The affine map is constant within each statistic (batch norm's per channel):
            # one pass multiplies by invstd*w. A new array: ``centered`` is kept for backward.
            scale = invstd if weight is None else invstd * weight._data
            out = xp.multiply(centered, spread_over_batch(xp, scale, x.shape))
        else:
            out = xp.multiply(centered, invstd)
            out *= weight._data
        if bias is not None:
            out += spread_over_batch(xp, bias._data, x.shape)
        return out.astype(a._data.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad_output):
        a, weight = ctx.saved_tensors
        dims = ctx.dims
        needs = ctx.needs_input_grad
        if not is_grad_enabled():
            return _backward_arrays(ctx, grad_output._data, weight, needs)
        # create_graph: statistics as functions of x, so that backward is differentiable.
        xhat, invstd = _standardize(a, dims, ctx.eps)
        grad_x = grad_w = grad_b = None
        if needs[0]:
            h = grad_output if weight is None else grad_output * weight
            grad_x = invstd * (h - h.mean(dims, keepdim=True)
                               - xhat * (h * xhat).mean(dims, keepdim=True))
        if weight is not None and needs[1]:
            grad_w = (grad_output * xhat).sum_to_size(weight.shape)
        if ctx.bias_shape is not None and needs[2]:
            grad_b = grad_output.sum_to_size(ctx.bias_shape)
        return grad_x, grad_w, grad_b, None, None, None


def _backward_arrays(ctx, g, weight, needs):
    """``Normalize.backward`` on arrays, for a backward that records nothing.

    With xc = x - mean (kept from forward), xhat = xc*invstd and n elements per statistic,
    the formula is ``d x = invstd*(h - mean(h) - xhat*mean(h*xhat))``, h = g*w. Where w is
    constant within each statistic (batch norm) it is per statistic ``d x = A*g + B*xc + C``
    with A = w*invstd, B = -A*invstd**2*sum(g*xc)/n, C = -A*sum(g)/n: two reductions and
    three passes over the activation. Otherwise (layer and group norm's elementwise affine
    maps) it is evaluated as written, in the array of h and one scratch buffer.
    """
    xp, backend, dims = ctx.xp, ctx.device.backend, ctx.dims
    xc, invstd = ctx.centered, ctx.invstd  # float32 at least (see forward)
    dtype = g.dtype  # the gradients' dtype: float16 ones are computed in float32
    g = g.astype(xc.dtype, copy=False)
    count = _count(xc.shape, dims)
    w = None if weight is None else weight._data
    grad_x = grad_w = grad_b = None
    sum_g = backend.sum(g, dims, True) if (needs[0] or (
        ctx.bias_shape is not None and needs[2])) else None
    if ctx.bias_shape is not None and needs[2]:
        grad_b = sum_g if sum_g.shape == ctx.bias_shape else _sum_to(g, ctx.bias_shape)
        grad_b = Tensor._make(grad_b.astype(dtype, copy=False), ctx.device)
    if not (needs[0] or (w is not None and needs[1])):
        return grad_x, grad_w, grad_b, None, None, None
    scratch = backend.workspace(g.shape, g.dtype)
    if w is None or _per_statistic(w.shape, invstd.shape):
        sum_gxc = _reduce_dot(xp, g, xc, dims)
        if w is not None and needs[1]:
            grad_w = Tensor._make(_sum_to(sum_gxc * invstd, w.shape).astype(w.dtype, copy=False),
                                  ctx.device)
        if needs[0]:
            scale = invstd if w is None else invstd * w
            along_xc = scale * invstd * invstd * (sum_gxc / -count)
            out = xp.multiply(g, spread_over_batch(xp, scale, g.shape))
            out += xp.multiply(xc, spread_over_batch(xp, along_xc, g.shape), out=scratch)
            out += spread_over_batch(xp, scale * (sum_g / -count), g.shape)
            grad_x = Tensor._make(out.astype(dtype, copy=False), ctx.device)
        return grad_x, grad_w, grad_b, None, None, None
    xhat = xp.multiply(xc, invstd)
    if needs[1]:
        grad_w = Tensor._make(_sum_to(xp.multiply(g, xhat, out=scratch), w.shape).astype(
            w.dtype, copy=False), ctx.device)
    if needs[0]:
        h = g * w  # a new array: g itself may still be read by other nodes
        mean_hx = _reduce_dot(xp, h, xhat, dims) / count
        out = xp.subtract(h, h.mean(axis=dims, keepdims=True), out=h)
        out -= xp.multiply(xhat, mean_hx, out=scratch)
        out *= invstd
        grad_x = Tensor._make(out.astype(dtype, copy=False), ctx.device)
    return grad_x, grad_w, grad_b, None, None, None


def _count(shape, dims) -> int:
    """Values per statistic (from the shape: an empty batch has statistics of none)."""
    return math.prod(shape[d] for d in dims)


def _per_statistic(weight_shape, stats_shape) -> bool:
    """Whether a weight of this (broadcastable) shape is constant within each statistic."""
    lead = len(stats_shape) - len(weight_shape)
    return lead >= 0 and all(w == 1 or w == s
                             for w, s in zip(weight_shape, stats_shape[lead:]))


def _reduce_dot(xp, a, b, dims):
    """``sum(a*b)`` over ``dims`` (kept as size-1 dims) without an array for the products."""
    return xp.einsum(sum_subscripts(a.ndim, dims, 2), a, b).reshape(keepdim_shape(a.shape, dims))


def _sum_to(array, shape):
    """``array`` summed down to ``shape``, as ``Tensor.sum_to_size`` does."""
    dims = sum_to_dims(array.shape, shape)
    return array.sum(axis=dims, keepdims=True).reshape(shape) if dims else array.reshape(shape)


def _update_running(running, mean, var, n: int) -> None:
    """running = (1 - momentum)*running + momentum*batch (the variance unbiased)."""
    running_mean, running_var, momentum = running
    for buf, stat in ((running_mean, mean), (running_var, var * (n / max(n - 1, 1)))):
        data = buf._data
        data *= 1 - momentum
        data += (momentum * stat).reshape(data.shape).astype(data.dtype, copy=False)
        buf._vc[0] += 1


def _channel_shape(weight, ndim: int):
    """A per-channel (dim 1) tensor reshaped to broadcast against an ``ndim`` input."""
    if weight is None or ndim <= 2:
        return weight
    return weight.reshape((1, weight.shape[0]) + (1,) * (ndim - 2))


def batch_norm(input, running_mean, running_var, weight=None, bias=None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel (dim 1) over the batch and spatial dims.

    In training the batch statistics are used and folded into ``running_mean`` and
    ``running_var`` (unbiased) when given; in evaluation the running statistics are used.
    """
    shape = tuple(input.shape)
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected at least 2D input (got {input.ndim}D input)")
    channels = shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and t.numel() != channels:
            raise RuntimeError(f"{name} should contain {channels} elements not {t.numel()}")
    if training and input.numel() == 0:
        # NOTE: as torch, an empty batch passes through with the running statistics untouched;
        # the affine map keeps weight and bias in the graph (with zero gradients).
        out = input.clone()
        if weight is not None:
            out = out * _channel_shape(weight, input.ndim)
        return out if bias is None else out + _channel_shape(bias, input.ndim)
    if training:
        if input.numel() // channels <= 1:
            raise ValueError("Expected more than 1 value per channel when training, got input "
                             f"size {input.shape}")
        if eps <= 0.0:
            raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
        dims = (0,) + tuple(range(2, input.ndim))
        running = None if running_mean is None or running_var is None else \
            (running_mean, running_var, momentum)
        return Normalize.apply(input, _channel_shape(weight, input.ndim),
                               _channel_shape(bias, input.ndim), dims, eps, running)
    if running_mean is None or running_var is None:
        raise RuntimeError("running_mean must be defined in evaluation mode")
    # Evaluation: a fixed per-channel affine map, x*scale + shift.
    scale = rsqrt(running_var + eps)
    if weight is not None:
        scale = scale * weight
    shift = -running_mean * scale
    if bias is not None:
        shift = shift + bias
    return input * _channel_shape(scale, input.ndim) + _channel_shape(shift, input.ndim)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Normalise over the trailing ``normalized_shape`` dims, then scale and shift
    elementwise."""
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(normalized_shape)
    k = len(normalized_shape)
    if k == 0 or tuple(input.shape[input.ndim - k:]) != normalized_shape or input.ndim < k:
        raise RuntimeError(f"Given normalized_shape={list(normalized_shape)}, expected input "
                           f"with shape [*, {', '.join(map(str, normalized_shape))}], but got "
                           f"input of size{list(input.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != normalized_shape:
            raise RuntimeError(f"Expected {name} to be of same shape as normalized_shape, but "
                               f"got {name} of shape {list(t.shape)} and normalized_shape = "
                               f"{list(normalized_shape)}")
    dims = tuple(range(input.ndim - k, input.ndim))
    return Normalize.apply(input, weight, bias, dims, eps)


def group_norm(input, num_groups: int, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Normalise each group of ``C // num_groups`` channels (with their spatial dims) per
    sample, then apply a per-channel affine map."""
    shape = tuple(input.shape)
    if input.ndim < 2 or shape[1] % num_groups != 0:
        raise RuntimeError("Expected number of channels in input to be divisible by "
                           f"num_groups, but got input of shape {list(shape)} and "
                           f"num_groups={num_groups}")
    n, c = shape[0], shape[1]
    per_group = c // num_groups
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.numel() != c:
            raise RuntimeError(f"Expected {name} to be a vector of size equal to the number of "
                               f"channels in input, but got {name} of shape {list(t.shape)} "
                               f"and input of shape {list(shape)}")
    # (N, G, C/G, rest): the groups are dims 2-3, the affine map runs along dims 1-2.
    grouped = input.reshape(n, num_groups, per_group, math.prod(shape[2:]))
    affine = (1, num_groups, per_group, 1)
    out = Normalize.apply(grouped, None if weight is None else weight.reshape(affine),
                          None if bias is None else bias.reshape(affine), (2, 3), eps)
    return out.reshape(shape)

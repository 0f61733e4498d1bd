"""Normalisation: batch_norm, layer_norm and group_norm.

All three standardise ``x`` over some dims and apply a per-feature affine map; one fused
Function, ``Normalize``, does that in a single pass over arrays. Its backward is the
classic formula, written once with tensor ops. The statistics it needs (the standardised
input and the inverse standard deviation) are kept from the forward pass; under
``create_graph`` they are recomputed with tensor ops instead, so that they depend on ``x``
in the graph and the second derivative is exact.
"""
from __future__ import annotations

from ..autograd.function import Function
from ..autograd.grad_mode import is_grad_enabled
from ..tensor import Tensor
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
        xp, backend = ctx.xp, ctx.device.backend
        x = a._data
        mean = x.mean(axis=dims, keepdims=True)
        xhat = x - mean  # centred here, standardised in place below
        squares = backend.workspace(x.shape, x.dtype)
        var = xp.multiply(xhat, xhat, out=squares).mean(axis=dims, keepdims=True)
        del squares
        invstd = 1 / xp.sqrt(var + eps)
        xhat *= invstd
        if running is not None:
            _update_running(running, mean, var, x.size // var.size)
        ctx.save_for_backward(a, weight)
        ctx.dims, ctx.eps = dims, eps
        ctx.bias_shape = None if bias is None else bias._data.shape
        if any(ctx.needs_input_grad):
            ctx.xhat, ctx.invstd = xhat, invstd
        if weight is None:
            # A copy even without a bias: the output must not alias the saved xhat.
            return xhat + bias._data if bias is not None else xhat.copy()
        out = xhat * weight._data
        if bias is not None:
            out += bias._data
        return out

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
    """``Normalize.backward`` on arrays, for a backward that records nothing: the same
    formula with one new array for ``d x`` and one scratch buffer for the products, instead
    of a new array per tensor op (each pass over a large activation is a fresh allocation)."""
    xp, backend, dims = ctx.xp, ctx.device.backend, ctx.dims
    xhat, invstd = ctx.xhat, ctx.invstd
    scratch = backend.workspace(g.shape, g.dtype)
    grad_x = grad_w = grad_b = None
    if weight is not None and needs[1]:
        xp.multiply(g, xhat, out=scratch)
        grad_w = Tensor._make(_sum_to(scratch, weight.shape), ctx.device)
    if ctx.bias_shape is not None and needs[2]:
        grad_b = Tensor._make(_sum_to(g, ctx.bias_shape), ctx.device)
    if needs[0]:
        # invstd * (h - mean(h) - xhat * mean(h * xhat)) with h = g * w, computed in the
        # array of h when that is new (never in g, which other nodes may still read).
        h = g if weight is None else g * weight._data
        mean_h = h.mean(axis=dims, keepdims=True)
        mean_hx = xp.multiply(h, xhat, out=scratch).mean(axis=dims, keepdims=True)
        out = xp.subtract(h, mean_h, out=None if h is g else h)
        out -= xp.multiply(xhat, mean_hx, out=scratch)
        out *= invstd
        grad_x = Tensor._make(out, ctx.device)
    return grad_x, grad_w, grad_b, None, None, None


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
    grouped = input.reshape(n, num_groups, per_group, -1)
    affine = (1, num_groups, per_group, 1)
    out = Normalize.apply(grouped, None if weight is None else weight.reshape(affine),
                          None if bias is None else bias.reshape(affine), (2, 3), eps)
    return out.reshape(shape)

"""Loss functions with torch's ``reduction`` ('none' | 'mean' | 'sum').

Classification losses are fused Functions: ``cross_entropy`` (log-softmax, gather and
reduction in one pass), ``nll_loss``, ``binary_cross_entropy`` and
``binary_cross_entropy_with_logits`` (stable for any logit). Regression losses and
``kl_div`` are composites of primitives.
"""
from __future__ import annotations

import warnings

from ..autograd.function import Function
from ..autograd.grad_mode import is_grad_enabled
from ..tensor import Tensor
from ._util import broadcast_shapes
from .activation import softplus
from .elementwise import abs as _abs, clamp, exp, log, log1p, sigmoid, where
from .reduce import log_softmax, softmax

_REDUCTIONS = ("none", "mean", "sum")


# -- reduction ---------------------------------------------------------------------------------
def _reduction(reduction: str, size_average=None, reduce=None) -> str:
    """The reduction, translating the deprecated ``size_average``/``reduce`` flags."""
    if size_average is not None or reduce is not None:
        warnings.warn("size_average and reduce args will be deprecated, please use "
                      "reduction='mean', 'sum' or 'none' instead.", stacklevel=3)
        if reduce is False:
            return "none"
        return "sum" if size_average is False else "mean"
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return reduction


def _reduce(loss: Tensor, reduction: str, weight=None) -> Tensor:
    """Apply the elementwise ``weight`` (if any) and the reduction; a weighted mean divides
    by the sum of the weights."""
    if weight is not None:
        if tuple(weight.shape) != tuple(loss.shape):
            raise ValueError(f"Weights and input must have the same size: weight "
                             f"{tuple(weight.shape)}, loss {tuple(loss.shape)}")
        loss = loss * weight
        if reduction == "mean":
            return loss.sum() / weight.sum()
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def _elementwise_weight(loss: Tensor, weight) -> Tensor:
    """``loss * weight``, where the weight broadcasts to the loss's shape (not beyond it)."""
    if weight is None:
        return loss
    if broadcast_shapes(tuple(weight.shape), tuple(loss.shape)) != tuple(loss.shape):
        raise RuntimeError(f"output with shape {list(loss.shape)} doesn't match the broadcast "
                           f"shape of the weight {list(weight.shape)}")
    return loss * weight


def _const(ctx, array) -> Tensor:
    return Tensor._make(array, ctx.device)


# -- class-index targets ---------------------------------------------------------------------
def _class_dim(x) -> int:
    return 0 if x.ndim == 1 else 1


def _check_class_target(name: str, input, target, weight) -> None:
    """Class-index ``target``: int64/uint8 of the input's shape without the class dim."""
    if input.ndim == 0:
        raise RuntimeError(f"{name}: input must have a class dimension, got a 0-d input")
    if target.dtype.name not in ("int64", "uint8"):
        raise RuntimeError(f"{name}: expected target dtype to be Long or Byte (class indices) "
                           f"or a float target of the input's shape {tuple(input.shape)} "
                           f"(class probabilities), but got {target.dtype.name} target of "
                           f"shape {tuple(target.shape)}")
    shape, tshape = tuple(input.shape), tuple(target.shape)
    expected = shape[:1] + shape[2:] if input.ndim > 1 else ()
    if input.ndim > 1 and tshape[:1] != shape[:1] and target.ndim == input.ndim - 1:
        raise ValueError(f"Expected input batch_size ({shape[0]}) to match target batch_size "
                         f"({tshape[0] if tshape else 0}).")
    if tshape != expected:
        raise RuntimeError(f"{name}: expected target size {list(expected)} for input of size "
                           f"{list(shape)}, got {list(tshape)}")
    classes = shape[_class_dim(input)]
    if weight is not None and tuple(weight.shape) != (classes,):
        raise RuntimeError(f"weight tensor should be defined either for all {classes} classes "
                           f"or no classes but got weight tensor of shape: {list(weight.shape)}")


def _class_targets(xp, x, target, weight, ignore_index, cdim):
    """The gather index (class dim kept), the not-ignored mask (1.0/0.0 in the input's dtype)
    and each target's weight (0 where ignored)."""
    t = target._data
    classes = x.shape[cdim]
    keep = t != ignore_index
    bad = keep & ((t < 0) | (t >= classes))
    if bad.any():
        raise IndexError(f"Target {int(t[bad].reshape(-1)[0])} is out of bounds: expected class "
                         f"indices in [0, {classes}) for input of shape {tuple(x.shape)}")
    index = xp.where(keep, t, 0)
    valid = keep.astype(x.dtype)
    w_t = valid if weight is None else weight._data[index] * valid
    return xp.expand_dims(index, cdim), valid, w_t


def _onehot(xp, shape, index, cdim):
    """Boolean mask of ``shape`` that is True at ``index`` along the class dim."""
    return xp.arange(shape[cdim]).reshape((-1,) + (1,) * (len(shape) - cdim - 1)) == index


def _finish(xp, loss, w_t, reduction):
    """Reduce per-target losses and return the gradient scale of each: the mean divides by
    the summed target weights (torch); with nothing to average it is nan, with zero gradient."""
    if reduction == "none":
        return loss, 1.0
    total = loss.sum()
    if reduction == "sum":
        return total, 1.0
    denom = w_t.sum()
    nonzero = denom != 0
    safe = xp.where(nonzero, denom, 1)
    return xp.where(nonzero, total / safe, xp.nan), xp.where(nonzero, 1 / safe, 0)


class CrossEntropy(Function):
    """Fused log_softmax + weighted nll + label smoothing over class indices.

    Per target: l = -(1-ls)*w[t]*logp[t] - ls/C*sum_c w_c*logp_c;
    d l/d x = softmax(x)*a - B, a = (1-ls)*w[t] + ls/C*sum(w), B = (1-ls)*w[t]*onehot + ls/C*w.
    """

    @staticmethod
    def forward(ctx, a, target, weight, ignore_index, reduction, label_smoothing):
        xp = ctx.xp
        x = a._data
        cdim = _class_dim(x)
        classes = x.shape[cdim]
        shifted = x - x.max(axis=cdim, keepdims=True)
        exps = xp.exp(shifted)
        sums = exps.sum(axis=cdim, keepdims=True)
        logp = shifted - xp.log(sums)
        index, valid, w_t = _class_targets(xp, x, target, weight, ignore_index, cdim)
        keep, smooth = 1.0 - label_smoothing, label_smoothing / classes
        loss = xp.take_along_axis(logp, index, cdim).squeeze(cdim) * (w_t * -keep)
        w_c = None if weight is None else \
            weight._data.reshape((-1,) + (1,) * (x.ndim - cdim - 1))
        if label_smoothing > 0:
            weighted = logp if w_c is None else logp * w_c
            loss = loss - weighted.sum(axis=cdim) * (valid * smooth)
        out, scale = _finish(xp, loss, w_t, reduction)
        ctx.save_for_backward(a)
        ctx.cdim, ctx.reduction = cdim, reduction
        if any(ctx.needs_input_grad):
            valid = xp.expand_dims(valid, cdim)
            w_sum = classes if weight is None else weight._data.sum()
            ctx.a = xp.expand_dims(w_t * keep, cdim) * scale + valid * (smooth * w_sum * scale)
            onehot = _onehot(xp, x.shape, index, cdim)
            ctx.B = onehot * (xp.expand_dims(w_t, cdim) * (keep * scale))
            if label_smoothing > 0:
                ctx.B = ctx.B + valid * (smooth * scale) * (1.0 if w_c is None else w_c)
            exps /= sums  # the softmax
            ctx.unit = exps * ctx.a - ctx.B
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (a,) = ctx.saved_tensors
        if is_grad_enabled():
            # create_graph: the softmax as a function of x, so that backward is differentiable.
            unit = softmax(a, ctx.cdim) * _const(ctx, ctx.a) - _const(ctx, ctx.B)
        else:
            unit = _const(ctx, ctx.unit)
        g = grad_output if ctx.reduction != "none" else grad_output.unsqueeze(ctx.cdim)
        return unit * g, None, None, None, None, None


class NllLoss(Function):
    """l = -w[t]*input[t] per target; d input = -w[t]*onehot(t) (scaled by the reduction)."""

    @staticmethod
    def forward(ctx, a, target, weight, ignore_index, reduction):
        xp = ctx.xp
        x = a._data
        cdim = _class_dim(x)
        index, _, w_t = _class_targets(xp, x, target, weight, ignore_index, cdim)
        loss = xp.take_along_axis(x, index, cdim).squeeze(cdim) * -w_t
        out, scale = _finish(xp, loss, w_t, reduction)
        ctx.cdim, ctx.reduction = cdim, reduction
        if any(ctx.needs_input_grad):
            ctx.unit = _onehot(xp, x.shape, index, cdim) * (xp.expand_dims(w_t, cdim) * -scale)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        # Linear in the input: the same constant serves every order of differentiation.
        g = grad_output if ctx.reduction != "none" else grad_output.unsqueeze(ctx.cdim)
        return _const(ctx, ctx.unit) * g, None, None, None, None


def cross_entropy(input, target, weight=None, size_average=None, ignore_index: int = -100,
                  reduce=None, reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Cross entropy between logits ``input`` (N, C, d1, ...) and class indices (N, d1, ...)
    or class probabilities (same shape as ``input``)."""
    reduction = _reduction(reduction, size_average, reduce)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: "
                           f"{label_smoothing}")
    if target.is_floating_point() and tuple(target.shape) == tuple(input.shape):
        if ignore_index >= 0:
            raise RuntimeError("ignore_index is not supported for floating point target")
        # NOTE: no cast: a float64 target makes a float64 loss of a float32 input (torch).
        return _soft_cross_entropy(input, target, weight, reduction, label_smoothing)
    _check_class_target("cross_entropy", input, target, weight)
    return CrossEntropy.apply(input, target, weight, ignore_index, reduction, label_smoothing)


def _soft_cross_entropy(input, target, weight, reduction, label_smoothing) -> Tensor:
    """Cross entropy against class probabilities (a composite: the target is differentiable
    too)."""
    cdim = _class_dim(input)
    classes = input.shape[cdim]
    if label_smoothing > 0:
        target = target * (1 - label_smoothing) + label_smoothing / classes
    prod = log_softmax(input, cdim) * target
    if weight is not None:
        prod = prod * weight.reshape((-1,) + (1,) * (input.ndim - cdim - 1))
    if reduction == "none":
        return -prod.sum(cdim)
    if reduction == "sum":
        return -prod.sum()
    return -prod.sum() / (input.numel() // classes)


def nll_loss(input, target, weight=None, size_average=None, ignore_index: int = -100,
             reduce=None, reduction: str = "mean") -> Tensor:
    """Negative log likelihood of log-probabilities ``input`` (N, C, d1, ...) at class
    indices ``target`` (N, d1, ...)."""
    reduction = _reduction(reduction, size_average, reduce)
    _check_class_target("nll_loss", input, target, weight)
    return NllLoss.apply(input, target, weight, ignore_index, reduction)


# -- binary targets ----------------------------------------------------------------------------
def _float_target(name: str, input, target) -> Tensor:
    """``target`` cast to the input's float dtype, or a clear error for an integer target."""
    if not target.is_floating_point():
        raise RuntimeError(f"{name}: expected a floating-point target like the input "
                           f"({input.dtype.name}), but got {target.dtype.name}")
    return target.to(input.dtype)


def _log_clamped(xp, x):
    """max(log(x), -100), as torch clamps the logs of binary_cross_entropy (no warning at 0)."""
    positive = x > 0
    return xp.where(positive, xp.maximum(xp.log(xp.where(positive, x, 1)), -100), -100)


class BinaryCrossEntropy(Function):
    """l = -(t*log(x) + (1-t)*log(1-x)), logs clamped at -100;
    d x = g*(x - t)/max(x*(1-x), 1e-12); d t = g*(log(1-x) - log(x))."""

    @staticmethod
    def forward(ctx, a, target):
        xp = ctx.xp
        x, t = a._data, target._data
        if bool(((x < 0) | (x > 1)).any()):
            raise RuntimeError("binary_cross_entropy: all elements of input should be between 0 "
                               "and 1 (did you mean binary_cross_entropy_with_logits?)")
        ctx.save_for_backward(a, target)
        return (t - 1) * _log_clamped(xp, 1 - x) - t * _log_clamped(xp, x)

    @staticmethod
    def backward(ctx, grad_output):
        a, target = ctx.saved_tensors
        grad_x = grad_t = None
        if ctx.needs_input_grad[0]:
            grad_x = grad_output * (a - target) / clamp((1 - a) * a, min=1e-12)
        if ctx.needs_input_grad[1]:
            grad_t = grad_output * (clamp(log1p(-a), min=-100) - clamp(log(a), min=-100))
        return grad_x, grad_t


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction: str = "mean") -> Tensor:
    """Binary cross entropy between probabilities ``input`` and ``target`` (same shape)."""
    reduction = _reduction(reduction, size_average, reduce)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Using a target size ({target.shape}) that is different to the input "
                         f"size ({input.shape}) is deprecated. Please ensure they have the same "
                         "size.")
    target = _float_target("binary_cross_entropy", input, target)
    loss = BinaryCrossEntropy.apply(input, target)
    return _reduce(_elementwise_weight(loss, weight), reduction)


class BinaryCrossEntropyWithLogits(Function):
    """l = (1-t)*x + lw*softplus(-x), lw = 1 + (pos_weight-1)*t;
    d x = g*((1-t) - lw*sigmoid(-x)); d t = g*((pos_weight-1)*softplus(-x) - x);
    d pos_weight = g*t*softplus(-x)."""

    @staticmethod
    def forward(ctx, a, target, pos_weight):
        xp = ctx.xp
        x, t = a._data, target._data
        ctx.save_for_backward(a, target, pos_weight)
        # NOTE: softplus(-x) = log1p(exp(-|x|)) + max(-x, 0): no overflow at logits of +-1000.
        softplus_neg = xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0)
        log_weight = 1 if pos_weight is None else 1 + (pos_weight._data - 1) * t
        return (1 - t) * x + log_weight * softplus_neg

    @staticmethod
    def backward(ctx, grad_output):
        a, target, pos_weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grad_x = grad_t = grad_pw = None
        if needs[0]:
            log_weight = 1 if pos_weight is None else (pos_weight - 1) * target + 1
            grad_x = grad_output * ((1 - target) - log_weight * sigmoid(-a))
        if needs[1]:
            grad_t = -a if pos_weight is None else (pos_weight - 1) * softplus(-a) - a
            grad_t = grad_output * grad_t
        if pos_weight is not None and needs[2]:
            grad_pw = grad_output * target * softplus(-a)
        return grad_x, grad_t, grad_pw


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None,
                                     reduce=None, reduction: str = "mean",
                                     pos_weight=None) -> Tensor:
    """Sigmoid + binary cross entropy in one numerically stable step.

    ``pos_weight`` (broadcast along the last dim, one per class) weighs positive examples.
    """
    reduction = _reduction(reduction, size_average, reduce)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Target size ({target.shape}) must be the same as input size "
                         f"({input.shape})")
    target = _float_target("binary_cross_entropy_with_logits", input, target)
    if pos_weight is not None:
        # Expanded explicitly, so that its gradient is summed back by expand's backward.
        pos_weight = pos_weight.to(input.dtype).expand(input.shape)
    loss = BinaryCrossEntropyWithLogits.apply(input, target, pos_weight)
    return _reduce(_elementwise_weight(loss, weight), reduction)


# -- regression and divergence (composites) -----------------------------------------------------
def _difference(name: str, input, target) -> Tensor:
    if tuple(target.shape) != tuple(input.shape):
        warnings.warn(f"{name}: Using a target size ({target.shape}) that is different to the "
                      f"input size ({input.shape}). This will likely lead to incorrect results "
                      "due to broadcasting. Please ensure they have the same size.",
                      stacklevel=3)
    return input - target


def mse_loss(input, target, size_average=None, reduce=None, reduction: str = "mean",
             weight=None) -> Tensor:
    """Mean squared error ``(input - target)**2``."""
    reduction = _reduction(reduction, size_average, reduce)
    diff = _difference("mse_loss", input, target)
    return _reduce(diff * diff, reduction, weight)


def l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean",
            weight=None) -> Tensor:
    """Mean absolute error ``|input - target|``."""
    reduction = _reduction(reduction, size_average, reduce)
    return _reduce(_abs(_difference("l1_loss", input, target)), reduction, weight)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    """``0.5*d**2/beta`` where ``|d| < beta``, else ``|d| - 0.5*beta`` (d = input - target)."""
    reduction = _reduction(reduction, size_average, reduce)
    if beta < 0:
        raise RuntimeError(f"smooth_l1_loss does not support negative values for beta, got "
                           f"{beta}")
    diff = _difference("smooth_l1_loss", input, target)
    dist = _abs(diff)
    if beta == 0:
        return _reduce(dist, reduction)
    return _reduce(where(dist < beta, diff * diff * (0.5 / beta), dist - 0.5 * beta), reduction)


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0,
               weight=None) -> Tensor:
    """``0.5*d**2`` where ``|d| < delta``, else ``delta*(|d| - 0.5*delta)``."""
    reduction = _reduction(reduction)
    if delta <= 0:
        raise RuntimeError(f"huber_loss does not support non-positive values for delta, got "
                           f"{delta}")
    diff = _difference("huber_loss", input, target)
    dist = _abs(diff)
    loss = where(dist < delta, diff * diff * 0.5, (dist - 0.5 * delta) * delta)
    return _reduce(loss, reduction, weight)


def kl_div(input, target, size_average=None, reduce=None, reduction: str = "mean",
           log_target: bool = False) -> Tensor:
    """KL divergence ``target * (log(target) - input)`` with ``input`` given as log-probabilities.

    ``reduction='batchmean'`` divides the sum by the batch size (the mathematically correct
    KL divergence); ``'mean'`` divides by the number of elements, as torch does.
    """
    if reduction != "batchmean" or size_average is not None or reduce is not None:
        reduction = _reduction(reduction, size_average, reduce)
    if log_target:
        loss = exp(target) * (target - input)
    else:
        # xlogy(t, t) - t*input: 0 where t == 0 (log taken of 1 there, so no nan gradient).
        positive = target > 0
        loss = target * (log(where(positive, target, 1.0)) - input)
    if reduction == "batchmean":
        return loss.sum() / input.shape[0] if input.ndim > 0 else loss.sum()
    return _reduce(loss, reduction)

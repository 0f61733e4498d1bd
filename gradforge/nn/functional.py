"""``gradforge.nn.functional``: the stateless functions behind the layers (``torch.nn.functional``).

The math lives in ``gradforge.ops`` (one Function per op); this module re-exports it under
torch's names and adds the functions that are compositions of ops: ``bilinear``, ``dropout``,
``embedding``, ``one_hot``, ``normalize``, ``cosine_similarity`` and the activations that
take ``inplace``. Other op families add their entries in their own section below.
"""
from __future__ import annotations

import warnings

from ..autograd.grad_mode import no_grad
from ..backend.dtypes import int32, int64
from ..ops import activation as _act
from ..ops.activation import gelu, softplus
from ..ops.attention import scaled_dot_product_attention
from ..ops.conv import conv1d, conv2d
from ..ops.conv_transpose import conv_transpose1d, conv_transpose2d
from ..ops.creation import arange, rand
from ..ops.elementwise import abs as _abs, relu as _relu, sigmoid, tanh, where
from ..ops.inplace import relu_
from ..ops.linear import linear
from ..ops.loss import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy,
                        huber_loss, kl_div, l1_loss, mse_loss, nll_loss, smooth_l1_loss)
from ..ops.matmul import einsum
from ..ops.norm import batch_norm, group_norm, layer_norm
from ..ops.pool import (adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_max_pool1d,
                        adaptive_max_pool2d, avg_pool1d, avg_pool2d, max_pool1d, max_pool2d)
from ..ops.reduce import log_softmax as _log_softmax, softmax as _softmax
from ..ops.spatial import fold, interpolate, pad, unfold
from ..tensor import Tensor

__all__ = [
    # activations
    "relu", "relu_", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish",
    "sigmoid", "tanh", "softplus", "softsign", "hardtanh", "hardsigmoid", "hardswish",
    "logsigmoid", "tanhshrink", "glu", "softmax", "softmin", "log_softmax",
    # layers
    "linear", "bilinear", "dropout", "dropout1d", "dropout2d", "embedding", "one_hot",
    "batch_norm", "layer_norm", "group_norm", "normalize", "cosine_similarity",
    # losses
    "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "cross_entropy", "nll_loss", "kl_div",
    # attention
    "scaled_dot_product_attention",
    # convolution, pooling and resizing (ops/conv.py, conv_transpose.py, pool.py, spatial.py)
    "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "unfold", "fold",
    "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d",
    "adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d", "pad", "interpolate",
]


# -- activations ---------------------------------------------------------------------------------
def _maybe_inplace(fn, input: Tensor, inplace: bool, *args) -> Tensor:
    """``fn(input, *args)``; with ``inplace`` the result is written into ``input``."""
    if not inplace:
        return fn(input, *args)
    # The op runs on a copy, so the input it saves for backward is not the one overwritten.
    return input.copy_(fn(input.clone(), *args))


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """``max(x, 0)``."""
    return relu_(input) if inplace else _relu(input)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """``min(max(x, 0), 6)``."""
    return _maybe_inplace(_act.relu6, input, inplace)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """``x`` where positive, ``negative_slope * x`` elsewhere."""
    return _maybe_inplace(_act.leaky_relu, input, inplace, negative_slope)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``x`` where positive, ``alpha * (exp(x) - 1)`` elsewhere."""
    return _maybe_inplace(_act.elu, input, inplace, alpha)


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """Scaled ELU with the self-normalising constants."""
    return _maybe_inplace(_act.selu, input, inplace)


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``."""
    return _maybe_inplace(_act.celu, input, inplace, alpha)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """``x * sigmoid(x)``."""
    return _maybe_inplace(_act.silu, input, inplace)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0,
             inplace: bool = False) -> Tensor:
    """``clamp(x, min_val, max_val)``, with zero gradient at and beyond the bounds."""
    return _maybe_inplace(_act.hardtanh, input, inplace, min_val, max_val)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """``relu6(x + 3) / 6``."""
    return _maybe_inplace(lambda x: _act.hardtanh(x + 3, 0.0, 6.0) / 6, input, inplace)


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """``x * relu6(x + 3) / 6``."""
    return _maybe_inplace(lambda x: x * _act.hardtanh(x + 3, 0.0, 6.0) / 6, input, inplace)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """``x * tanh(softplus(x))``."""
    return _maybe_inplace(lambda x: x * tanh(softplus(x)), input, inplace)


def logsigmoid(input: Tensor) -> Tensor:
    """``log(sigmoid(x)) = -softplus(-x)``, stable for large ``|x|``."""
    return -softplus(-input)


def softsign(input: Tensor) -> Tensor:
    """``x / (1 + |x|)``."""
    return input / (_abs(input) + 1)


def tanhshrink(input: Tensor) -> Tensor:
    """``x - tanh(x)``."""
    return input - tanh(input)


def glu(input: Tensor, dim: int = -1) -> Tensor:
    """Gated linear unit: the first half of ``dim`` times sigmoid of the second half."""
    size = input.shape[dim]
    if size % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {dim} is size {size}")
    a, b = input.chunk(2, dim)
    return a * sigmoid(b)


def _implicit_dim(name: str, dim):
    if dim is None:
        warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the "
                      "call to include dim=X as an argument.", stacklevel=3)
    return dim


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3,
            dtype=None) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``dim``."""
    return _softmax(input, _implicit_dim("softmax", dim), dtype)


def softmin(input: Tensor, dim: int | None = None, _stacklevel: int = 3,
            dtype=None) -> Tensor:
    """``softmax(-x)`` along ``dim``."""
    return _softmax(-input, _implicit_dim("softmin", dim), dtype)


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3,
                dtype=None) -> Tensor:
    """``log(softmax(x))`` computed stably in one op."""
    return _log_softmax(input, _implicit_dim("log_softmax", dim), dtype)


# -- linear layers -------------------------------------------------------------------------------
def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``y_k = x1^T A_k x2 + b_k`` with ``weight`` (out, in1, in2)."""
    _check_bilinear(tuple(input1.shape), tuple(input2.shape), tuple(weight.shape),
                    None if bias is None else tuple(bias.shape))
    out = einsum("...i,kij,...j->...k", input1, weight, input2)
    return out if bias is None else out + bias


def _check_bilinear(shape1: tuple, shape2: tuple, weight: tuple, bias) -> None:
    """torch's shape checks, before einsum would fail with a message about subscripts."""
    if len(weight) != 3:
        raise RuntimeError(f"bilinear(): weight must be 3-dimensional (out, in1, in2), got "
                           f"weight of size {list(weight)}")
    if len(shape1) != len(shape2):
        raise RuntimeError(f"bilinear(): input dimensions do not match: got {len(shape1)} and "
                           f"{len(shape2)}")
    for d, (n1, n2) in enumerate(zip(shape1[:-1], shape2[:-1])):
        if n1 != n2:
            raise RuntimeError(f"bilinear(): input batch dimensions do not match at dim {d}: "
                               f"got {n1} and {n2}")
    for k, shape in ((1, shape1), (2, shape2)):
        if not shape or shape[-1] != weight[k]:
            raise RuntimeError(f"bilinear(): input{k} size does not match weight size: got "
                               f"{shape[-1] if shape else 0} but expected {weight[k]}")
    if bias is not None and bias != weight[:1]:
        raise RuntimeError(f"bilinear(): bias size does not match weight size: got "
                           f"{list(bias)} but expected {weight[0]}")


# -- dropout -------------------------------------------------------------------------------------
def _check_p(p: float) -> None:
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _dropout_mask(input: Tensor, shape: tuple, p: float) -> Tensor:
    """Kept entries 1/(1-p), dropped 0, drawn from the gradforge RNG (torch's scaling)."""
    keep = 1.0 - p
    if keep == 0.0:
        return input.new_zeros(shape)
    mask = (rand(shape, dtype=input.dtype, device=input.device) < keep).to(input.dtype)
    return mask.mul_(1.0 / keep)


def dropout(input: Tensor, p: float = 0.5, training: bool = True,
            inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)``."""
    _check_p(p)
    if not training or p == 0.0:
        return input
    mask = _dropout_mask(input, tuple(input.shape), p)
    return input.mul_(mask) if inplace else input * mask


def _feature_dropout(input: Tensor, p: float, training: bool, inplace: bool) -> Tensor:
    """Zero whole channels: one draw per (sample, channel) broadcast over the rest."""
    _check_p(p)
    if input.ndim < 2:
        raise RuntimeError(f"Feature dropout requires at least 2 dimensions in the input, got "
                           f"shape {tuple(input.shape)}")
    if not training or p == 0.0:
        return input
    mask = _dropout_mask(input, tuple(input.shape[:2]) + (1,) * (input.ndim - 2), p)
    return input.mul_(mask) if inplace else input * mask


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True,
              inplace: bool = False) -> Tensor:
    """Channel-wise dropout for (N, C, L) inputs."""
    if input.ndim not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a "
                           f"{input.ndim}D input")
    return _feature_dropout(input, p, training, inplace)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True,
              inplace: bool = False) -> Tensor:
    """Channel-wise dropout for (N, C, H, W) inputs: each channel is zeroed as a whole."""
    if input.ndim not in (3, 4):
        warnings.warn(f"dropout2d: Received a {input.ndim}-D input to dropout2d, which is "
                      "deprecated; dropout2d expects (N, C, H, W) or (C, H, W) inputs.",
                      stacklevel=2)
    if input.ndim == 3:
        # NOTE: torch treats 3-D input as (N, C, L) (channel-wise 1-D dropout), not (C, H, W).
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that "
                      "channel-wise 1D dropout behavior is desired - input is interpreted as "
                      "shape (N, C, L), where C is the channel dim.", stacklevel=2)
    return _feature_dropout(input, p, training, inplace)


# -- embeddings and encodings --------------------------------------------------------------------
def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None,
              max_norm: float | None = None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """Rows of ``weight`` at the indices ``input``; the ``padding_idx`` row gets no gradient.

    Shape:
        input (*) int64 or int32; weight (num_embeddings, embedding_dim); output (*, dim).
    """
    if input.dtype not in (int64, int32):
        raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the "
                           f"following scalar types: Long, Int; but got {input.dtype} instead "
                           "(while checking arguments for embedding)")
    if scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding: scale_grad_by_freq and sparse gradients are not "
                                  "supported by gradforge")
    num = weight.shape[0]
    if input.numel() and bool(((input < 0) | (input >= num)).any()):
        raise IndexError(f"index out of range in self: embedding indices must be in [0, {num}) "
                         f"for a weight of shape {tuple(weight.shape)}")
    if padding_idx is not None:
        if not -num <= padding_idx < num:
            raise ValueError(f"Padding_idx must be within num_embeddings ({num}), got "
                             f"{padding_idx}")
        padding_idx %= num
    if max_norm is not None:
        _renorm_rows(weight, input.reshape(-1), max_norm, norm_type)
    out = weight[input]
    if padding_idx is not None:
        # Positions holding padding_idx pass a detached copy: that row gets no gradient.
        out = where((input != padding_idx).unsqueeze(-1), out, out.detach())
    return out


def _renorm_rows(weight: Tensor, index: Tensor, max_norm: float, norm_type: float) -> None:
    """Rescale in place the looked-up rows whose norm exceeds ``max_norm`` (torch's renorm)."""
    with no_grad():
        rows = weight[index]
        norms = rows.norm(norm_type, dim=1, keepdim=True)
        scale = where(norms > max_norm, max_norm / (norms + 1e-7), 1.0)
        weight[index] = rows * scale


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 one-hot encoding along a new last dim (``num_classes`` inferred when -1)."""
    if tensor.dtype != int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor, got "
                           f"{tensor.dtype}")
    if tensor.numel() == 0:
        if num_classes == -1:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
    else:
        if bool((tensor < 0).any()):
            raise RuntimeError("Class values must be non-negative.")
        top = int(tensor.max())
        if num_classes == -1:
            num_classes = top + 1
        elif top >= num_classes:
            raise RuntimeError(f"Class values must be smaller than num_classes: got class "
                               f"{top} for num_classes={num_classes}.")
    classes = arange(num_classes, device=tensor.device)
    return (tensor.unsqueeze(-1) == classes).to(int64)


# -- normalisation and similarity ----------------------------------------------------------------
def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12,
              out=None) -> Tensor:
    """``input / max(||input||_p, eps)`` along ``dim`` (written into ``out`` if given)."""
    result = input / input.norm(p, dim, keepdim=True).clamp(min=eps)
    return result if out is None else out.copy_(result)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """``x1 . x2 / (max(||x1||, eps) * max(||x2||, eps))`` along ``dim``."""
    return ((x1 / _clamped_norm(x1, dim, eps)) * (x2 / _clamped_norm(x2, dim, eps))).sum(dim)


def _clamped_norm(x: Tensor, dim: int, eps: float) -> Tensor:
    """``max(||x||, eps)`` whose gradient is the norm's, clamped or not.

    NOTE: torch clamps the norms in place under no_grad, so below ``eps`` the gradient still
    flows through the unclamped norm; the detached shortfall added here does the same.
    """
    norm = x.norm(2, dim, keepdim=True)
    return norm + (eps - norm.detach()).clamp(min=0)

"""Attention: ``scaled_dot_product_attention`` and the softmax it is built on.

softmax(q k^T * scale + mask) v, composed from matmul and one fused primitive,
``SafeSoftmax``: a softmax whose fully masked rows (all -inf) are 0 instead of NaN, as in
PyTorch 2.5+. Everything else is the existing matmul, where and add, so the gradient (and
its gradient) comes from their Functions.
"""
from __future__ import annotations

import math

from ..autograd.function import Function
from ..tensor import Tensor
from ._util import norm_dim
from .creation import arange, rand
from .elementwise import where
from .matmul import matmul
from .movement import expand, permute, reshape, stack, transpose, unsqueeze
from .reduce import Softmax


class SafeSoftmax(Softmax):
    """Softmax whose rows that are all -inf give 0 (and gradient 0); backward is Softmax's."""

    @staticmethod
    def forward(ctx, a, dim):
        ctx.dim = dim
        xp = ctx.xp
        x = a._data
        m = xp.max(x, axis=dim, keepdims=True)
        # NOTE: a fully masked row has max -inf; shifting by 0 there keeps exp(-inf) = 0
        # instead of exp(nan), and the zero sum is divided as 1.
        m = xp.where(m == -math.inf, 0, m)
        e = xp.exp(x - m)
        s = xp.sum(e, axis=dim, keepdims=True)
        e /= xp.where(s == 0, 1, s)
        return e


def safe_softmax(input: Tensor, dim: int = -1) -> Tensor:
    """Softmax along ``dim`` that returns 0 (not NaN) for rows that are entirely -inf."""
    return SafeSoftmax.apply(input, norm_dim(dim, input.ndim))


class SplitHeads(Function):
    """(seq, N, parts*E) -> parts x (N, heads, seq, E/heads), contiguous. d: merge back.

    ``batch_first`` reads (N, seq, parts*E). The copy makes the per-head GEMMs that follow
    plain BLAS calls: NumPy's batched matmul on permuted views is several times slower.
    """

    @staticmethod
    def forward(ctx, x, heads, parts, batch_first):
        ctx.heads, ctx.batch_first = heads, batch_first
        a = x._data
        seq_dim = 1 if batch_first else 0
        seq, n = a.shape[seq_dim], a.shape[1 - seq_dim]
        a = a.reshape(a.shape[:2] + (parts, heads, a.shape[-1] // (parts * heads)))
        order = (2, 0, 3, 1, 4) if batch_first else (2, 1, 3, 0, 4)
        split = ctx.xp.ascontiguousarray(a.transpose(order))
        ctx.shape = (n, seq) if batch_first else (seq, n)
        return tuple(split[k] for k in range(parts))

    @staticmethod
    def backward(ctx, *grads):
        g = stack(grads)  # (parts, N, heads, seq, d)
        order = (1, 3, 0, 2, 4) if ctx.batch_first else (3, 1, 0, 2, 4)
        return reshape(permute(g, order), ctx.shape + (-1,)), None, None, None


class MergeHeads(Function):
    """(N, heads, seq, d) -> (seq, N, heads*d) (or (N, seq, ...)), contiguous. d: split."""

    @staticmethod
    def forward(ctx, a, batch_first):
        heads, d = a._data.shape[1], a._data.shape[3]
        ctx.heads, ctx.batch_first = heads, batch_first
        order = (0, 2, 1, 3) if batch_first else (2, 0, 1, 3)
        out = ctx.xp.ascontiguousarray(a._data.transpose(order))
        return out.reshape(out.shape[:2] + (heads * d,))

    @staticmethod
    def backward(ctx, grad_output):
        return SplitHeads.apply(grad_output, ctx.heads, 1, ctx.batch_first)[0], None


def split_heads(x: Tensor, num_heads: int, parts: int = 1,
                batch_first: bool = False) -> tuple[Tensor, ...]:
    """Split packed projections (L, N, parts*E) into ``parts`` tensors (N, heads, L, E/heads).

    With ``batch_first`` the input is (N, L, parts*E). Each result is contiguous.
    """
    if x.ndim != 3 or x.shape[-1] % (parts * num_heads):
        raise RuntimeError(f"split_heads: expected (L, N, {parts}*E) with E divisible by "
                           f"{num_heads} heads, got shape {tuple(x.shape)}")
    return SplitHeads.apply(x, num_heads, parts, batch_first)


def merge_heads(x: Tensor, batch_first: bool = False) -> Tensor:
    """(N, heads, L, d) -> (L, N, heads*d), or (N, L, heads*d) with ``batch_first``."""
    if x.ndim != 4:
        raise RuntimeError(f"merge_heads: expected (N, heads, L, d), got shape {tuple(x.shape)}")
    return MergeHeads.apply(x, batch_first)


def _check_qkv(query: Tensor, key: Tensor, value: Tensor) -> None:
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"scaled_dot_product_attention(): {name} must be a Tensor, not "
                            f"{type(t).__name__}")
        if t.ndim < 2:
            raise RuntimeError(f"scaled_dot_product_attention(): {name} must be at least 2-D "
                               f"(..., sequence, features), got shape {tuple(t.shape)}")
    if not query.dtype == key.dtype == value.dtype:
        raise RuntimeError("Expected query, key, and value to have the same dtype, but got "
                           f"query.dtype: {query.dtype.name} key.dtype: {key.dtype.name} and "
                           f"value.dtype: {value.dtype.name} instead.")
    if query.shape[-1] != key.shape[-1]:
        raise RuntimeError(f"scaled_dot_product_attention(): query and key must have the same "
                           f"embedding size, got query {tuple(query.shape)} and key "
                           f"{tuple(key.shape)}")
    if key.shape[-2] != value.shape[-2]:
        raise RuntimeError(f"scaled_dot_product_attention(): key and value must have the same "
                           f"sequence length, got key {tuple(key.shape)} and value "
                           f"{tuple(value.shape)}")


def _repeat_heads(x: Tensor, groups: int) -> Tensor:
    """(..., Hk, S, E) -> (..., Hk*groups, S, E), each head repeated ``groups`` times."""
    shape = tuple(x.shape)
    x = expand(unsqueeze(x, -3), shape[:-2] + (groups,) + shape[-2:])
    return reshape(x, shape[:-3] + (shape[-3] * groups,) + shape[-2:])


def attention_scores(query: Tensor, key: Tensor, attn_mask: Tensor | None = None,
                     is_causal: bool = False, scale: float | None = None) -> Tensor:
    """The attention weights softmax(q k^T * scale + mask), shape (..., L, S).

    ``attn_mask`` is boolean (True = takes part) or additive (cast to the query's dtype);
    ``is_causal`` adds the lower-triangular mask (position i sees positions <= i).
    """
    L, S = query.shape[-2], key.shape[-2]
    if scale is None:
        scale = 1.0 / math.sqrt(query.shape[-1])
    # Scaling q (L x E) rather than the scores (L x S) touches fewer elements.
    scores = matmul(query * scale, transpose(key, -2, -1))
    if attn_mask is not None:
        if not isinstance(attn_mask, Tensor):
            raise TypeError(f"attn_mask must be a Tensor, not {type(attn_mask).__name__}")
        try:
            if attn_mask.dtype.name == "bool":
                scores = where(attn_mask, scores, -math.inf)
            else:
                scores = scores + attn_mask.to(scores.dtype)
        except RuntimeError as e:
            if "size of tensor" not in str(e):
                raise
            raise RuntimeError(f"scaled_dot_product_attention(): attn_mask of shape "
                               f"{tuple(attn_mask.shape)} does not broadcast to the attention "
                               f"scores of shape {tuple(scores.shape)} (..., L={L}, S={S})"
                               ) from None
    if is_causal:
        causal = unsqueeze(arange(L, device=query.device), -1) >= arange(S, device=query.device)
        scores = where(causal, scores, -math.inf)
    return safe_softmax(scores, -1)


def _dropout(input: Tensor, p: float) -> Tensor:
    """``input`` with elements zeroed with probability ``p`` and the rest scaled by 1/(1-p)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if p == 1.0:
        return input * 0.0
    keep = rand(tuple(input.shape), dtype=input.dtype, device=input.device) >= p
    return where(keep, input * (1.0 / (1.0 - p)), 0.0)


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor,
                                 attn_mask: Tensor | None = None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False) -> Tensor:
    """softmax(query key^T * scale + mask) value, with dropout on the weights.

    Args:
        query: (..., L, E). key: (..., S, E). value: (..., S, Ev).
        attn_mask: boolean, True where a query may attend to a key (torch's convention), or
            additive float; broadcast to (..., L, S).
        dropout_p: dropout probability on the attention weights (applied whenever > 0, as
            in torch; pass 0.0 in evaluation).
        is_causal: also mask future keys (j > i); combined with ``attn_mask`` if both given.
        scale: defaults to 1/sqrt(E).
        enable_gqa: grouped-query attention: key/value heads (dim -3) are repeated to match
            the query heads.

    Returns:
        (..., L, Ev). Queries whose keys are all masked out get 0.
    """
    _check_qkv(query, key, value)
    if enable_gqa and query.ndim >= 3 and query.shape[-3] != key.shape[-3]:
        hq, hk = query.shape[-3], key.shape[-3]
        if hq % hk or value.shape[-3] != hk:
            raise RuntimeError(f"scaled_dot_product_attention(): with enable_gqa the number of "
                               f"query heads ({hq}) must be a multiple of the key/value heads "
                               f"(key {hk}, value {value.shape[-3]})")
        key, value = _repeat_heads(key, hq // hk), _repeat_heads(value, hq // hk)
    weights = attention_scores(query, key, attn_mask, is_causal, scale)
    if dropout_p > 0.0:
        weights = _dropout(weights, dropout_p)
    return matmul(weights, value)

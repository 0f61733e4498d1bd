"""``MultiheadAttention``: PyTorch's multi-head attention layer, parameter for parameter.

The input projections are one matmul for self-attention (``query is key is value``), the
heads are split off into contiguous (N, heads, seq, head_dim) arrays, and the attention
itself is ``ops.attention.attention_scores`` (the softmax of the scaled, masked scores)
followed by dropout and one batched matmul. Inputs stay in their own layout (sequence- or
batch-first) throughout: no transposes of whole activations.
"""
from __future__ import annotations

import math

from ...ops.attention import attention_scores, merge_heads, split_heads
from ...ops.creation import empty, zeros
from ...ops.movement import cat, chunk, reshape, unsqueeze
from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..parameter import Parameter
from .linear import NonDynamicallyQuantizableLinear
from .module import Module

__all__ = ["MultiheadAttention"]


def _additive(mask: Tensor | None, name: str, dtype) -> Tensor | None:
    """torch's canonical mask: a bool mask (True = masked out) becomes 0 / -inf."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        raise TypeError(f"{name} must be a Tensor, not {type(mask).__name__}")
    if mask.dtype.name == "bool":
        return zeros(tuple(mask.shape), dtype=dtype, device=mask.device).masked_fill(
            mask, -math.inf)
    if not mask.is_floating_point():
        raise RuntimeError(f"only bool and floating types of {name} are supported, got "
                           f"{mask.dtype.name}")
    return mask.to(dtype)


def _pad_key(mask: Tensor | None) -> Tensor | None:
    """One more key column that everyone may attend to (bias_kv, add_zero_attn)."""
    if mask is None:
        return None
    return cat([mask, zeros(tuple(mask.shape[:-1]) + (1,), dtype=mask.dtype,
                            device=mask.device)], -1)


class MultiheadAttention(Module):
    """Multi-head attention: concat(head_1..head_h) W_o with head_i = attention(Q W_q^i, K W_k^i,
    V W_v^i).

    Args:
        embed_dim: model dimension E (split over the heads).
        num_heads: number of heads; E must be divisible by it.
        dropout: dropout probability on the attention weights (in training).
        bias: add biases to the input and output projections.
        add_bias_kv: learnable bias_k, bias_v appended to the keys and values.
        add_zero_attn: append a zero key and value after the projections.
        kdim, vdim: key and value feature sizes (default E); if either differs, the
            projections are the separate q_proj_weight, k_proj_weight, v_proj_weight.
        batch_first: inputs and output are (N, L, E) instead of (L, N, E).

    Shape:
        - query: (L, N, E), (N, L, E) with ``batch_first``, or unbatched (L, E);
          key: (S, N, kdim); value: (S, N, vdim) (likewise).
        - key_padding_mask: (N, S) or (S); True (or -inf) marks keys to ignore.
        - attn_mask: (L, S) or (N * num_heads, L, S); bool True = not allowed to attend
          (the opposite of ``scaled_dot_product_attention``), or additive float.
        - output: (L, N, E) like query; weights (N, L, S) averaged over heads, or
          (N, num_heads, L, S) with ``average_attn_weights=False``; None without
          ``need_weights``.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, device=None, dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"embed_dim and num_heads must be greater than 0, got "
                             f"embed_dim={embed_dim} and num_heads={num_heads} instead")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim must be divisible by num_heads (got embed_dim="
                             f"{embed_dim}, num_heads={num_heads})")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.dropout, self.batch_first = dropout, batch_first
        self.head_dim = embed_dim // num_heads
        factory = {"device": device, "dtype": dtype}
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(empty((3 * embed_dim, embed_dim), **factory))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = Parameter(empty((embed_dim, embed_dim), **factory))
            self.k_proj_weight = Parameter(empty((embed_dim, self.kdim), **factory))
            self.v_proj_weight = Parameter(empty((embed_dim, self.vdim), **factory))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(empty(3 * embed_dim, **factory))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias,
                                                        **factory)
        if add_bias_kv:
            self.bias_k = Parameter(empty((1, 1, embed_dim), **factory))
            self.bias_v = Parameter(empty((1, 1, embed_dim), **factory))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """torch's init: Xavier-uniform projections, zero biases, Xavier-normal bias_k/v."""
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    def _heads(self, query: Tensor, key: Tensor, value: Tensor, batch_first: bool) -> tuple:
        """q, k, v projected and split into heads, each (N, heads, seq, head_dim).

        Self-attention (``query is key is value``) is one matmul, ``key is value`` two.
        """
        e, heads, b = self.embed_dim, self.num_heads, self.in_proj_bias
        packed = self._qkv_same_embed_dim and self.bias_k is None
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            weights = (w[:e], w[e:2 * e], w[2 * e:])
        else:
            weights = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        biases = (None,) * 3 if b is None else chunk(b, 3)
        if packed and query is key and key is value:
            return split_heads(F.linear(query, w, b), heads, 3, batch_first)
        if packed and key is value:
            q = split_heads(F.linear(query, weights[0], biases[0]), heads, 1, batch_first)
            kv = F.linear(key, w[e:], None if b is None else b[e:])
            return q + split_heads(kv, heads, 2, batch_first)
        q, k, v = (F.linear(x, w_, b_) for x, w_, b_ in zip((query, key, value), weights,
                                                              biases))
        if self.bias_k is not None:
            # One extra key and value, shared by every sample, at the end of the sequence.
            seq_dim = 1 if batch_first else 0
            shape = tuple(1 if d == seq_dim else s for d, s in enumerate(k.shape))
            k = cat([k, self.bias_k.expand(shape)], seq_dim)
            v = cat([v, self.bias_v.expand(shape)], seq_dim)
        return tuple(split_heads(t, heads, 1, batch_first)[0] for t in (q, k, v))

    def _check(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask) -> bool:
        """Shape checks with torch's messages; returns whether the input is batched."""
        for name, t in (("query", query), ("key", key), ("value", value)):
            if not isinstance(t, Tensor):
                raise TypeError(f"MultiheadAttention: {name} must be a Tensor, not "
                                f"{type(t).__name__}")
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise RuntimeError(f"query, key and value should all be 2-D (unbatched) or 3-D "
                               f"(batched) tensors, got shapes {tuple(query.shape)}, "
                               f"{tuple(key.shape)} and {tuple(value.shape)}")
        for name, t, size in (("query", query, self.embed_dim), ("key", key, self.kdim),
                              ("value", value, self.vdim)):
            if t.shape[-1] != size:
                raise RuntimeError(f"MultiheadAttention: expected {name} with {size} features "
                                   f"(the last dimension), got shape {tuple(t.shape)}")
        if tuple(key.shape[:-1]) != tuple(value.shape[:-1]):
            raise RuntimeError(f"key's sequence and batch dims {tuple(key.shape[:-1])} do not "
                               f"match value's {tuple(value.shape[:-1])}")
        batched = query.ndim == 3
        if key_padding_mask is not None and key_padding_mask.ndim != (2 if batched else 1):
            raise RuntimeError(f"expected key_padding_mask of {2 if batched else 1} dimensions "
                               f"for {'batched' if batched else 'unbatched'} input, got shape "
                               f"{tuple(key_padding_mask.shape)}")
        return batched

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                key_padding_mask: Tensor | None = None, need_weights: bool = True,
                attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        """Attend from ``query`` to ``key``/``value``; returns (output, weights or None).

        ``is_causal`` is a hint that ``attn_mask`` is the causal mask (it must be given, as
        in torch). NOTE: a query whose keys are all masked gets a zero output and zero
        weights (torch returns NaN in the weights path).
        """
        batched = self._check(query, key, value, key_padding_mask)
        if is_causal and attn_mask is None:
            raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the "
                               "Transformer module method `generate_square_subsequent_mask` to "
                               "create this mask.")
        same_kv, same_qkv = key is value, query is key and key is value
        batch_first = self.batch_first and batched
        if not batched:
            query, key, value = (unsqueeze(t, 1) for t in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = unsqueeze(key_padding_mask, 0)
            # Keep identities so that the projection can share one matmul.
            if same_kv:
                value = key
            if same_qkv:
                key = value = query
        seq_dim = 1 if batch_first else 0
        tgt_len, bsz, src_len = query.shape[seq_dim], query.shape[1 - seq_dim], \
            key.shape[seq_dim]
        key_padding_mask = _additive(key_padding_mask, "key_padding_mask", query.dtype)
        attn_mask = _additive(attn_mask, "attn_mask", query.dtype)
        if attn_mask is not None:
            expected = (tgt_len, src_len) if attn_mask.ndim == 2 else \
                (bsz * self.num_heads, tgt_len, src_len)
            if attn_mask.ndim not in (2, 3) or tuple(attn_mask.shape) != expected:
                raise RuntimeError(f"The shape of the {attn_mask.ndim}D attn_mask is "
                                   f"{tuple(attn_mask.shape)}, but should be {expected}.")
        if key_padding_mask is not None and tuple(key_padding_mask.shape) != (bsz, src_len):
            raise RuntimeError(f"expecting key_padding_mask shape of {(bsz, src_len)}, but got "
                               f"{tuple(key_padding_mask.shape)}")

        q, k, v = self._heads(query, key, value, batch_first)
        if self.bias_k is not None:
            attn_mask, key_padding_mask = _pad_key(attn_mask), _pad_key(key_padding_mask)
        if self.add_zero_attn:
            z = zeros((bsz, self.num_heads, 1, self.head_dim), dtype=k.dtype, device=k.device)
            k, v = cat([k, z], 2), cat([v, z], 2)
            attn_mask, key_padding_mask = _pad_key(attn_mask), _pad_key(key_padding_mask)
        mask = None
        if attn_mask is not None:
            # A 3-D mask is indexed by n * heads + h, as torch's (N * heads, L, S) batches.
            mask = attn_mask if attn_mask.ndim == 2 else reshape(
                attn_mask, (bsz, self.num_heads, tgt_len, attn_mask.shape[-1]))
        if key_padding_mask is not None:
            kpm = reshape(key_padding_mask, (bsz, 1, 1, key_padding_mask.shape[-1]))
            mask = kpm if mask is None else mask + kpm

        weights = attention_scores(q, k, mask)
        if self.dropout > 0.0:
            weights = F.dropout(weights, self.dropout, training=self.training)
        out = F.linear(merge_heads(weights @ v, batch_first), self.out_proj.weight,
                       self.out_proj.bias)
        if not batched:
            out = out[:, 0]
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(1)
        return out, weights if batched else weights[0]

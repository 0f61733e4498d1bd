"""scaled_dot_product_attention and its safe softmax: PyTorch oracle, finite differences
(first and second order), dropout, and bad input."""
import math

import numpy as np
import pytest
from module_oracle import check_module
from oracle import DEVICES, compare, mask

import gradforge
from gradforge.ops.attention import SafeSoftmax, merge_heads, safe_softmax, split_heads


def sdpa(lib):
    return lib.nn.functional.scaled_dot_product_attention


def _rows_masked(*shape):
    """A boolean (L, S) mask with row 1 fully masked out and a few other holes."""
    m = np.ones(shape, dtype=bool)
    m[1] = False
    m[0, -1] = False
    return m


SDPA_CASES = {
    "plain": (lambda lib, q, k, v: sdpa(lib)(q, k, v), [(2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 7)]),
    "unbatched": (lambda lib, q, k, v: sdpa(lib)(q, k, v), [(4, 5), (6, 5), (6, 3)]),
    "bool_mask": (lambda lib, q, k, v, m: sdpa(lib)(q, k, v, attn_mask=m),
                  [(2, 2, 4, 3), (2, 2, 5, 3), (2, 2, 5, 3), mask(4, 5)]),
    "bool_mask_row_fully_masked": (lambda lib, q, k, v, m: sdpa(lib)(q, k, v, attn_mask=m),
                                   [(2, 4, 3), (2, 5, 3), (2, 5, 2), _rows_masked(4, 5)]),
    "additive_mask_per_batch": (lambda lib, q, k, v, m: sdpa(lib)(q, k, v, attn_mask=m),
                                [(2, 2, 4, 3), (2, 2, 5, 3), (2, 2, 5, 3), (2, 1, 4, 5)]),
    "causal": (lambda lib, q, k, v: sdpa(lib)(q, k, v, is_causal=True),
               [(2, 5, 3), (2, 5, 3), (2, 5, 4)]),
    "causal_rectangular": (lambda lib, q, k, v: sdpa(lib)(q, k, v, is_causal=True),
                           [(2, 3, 3), (2, 5, 3), (2, 5, 4)]),
    "scale": (lambda lib, q, k, v: sdpa(lib)(q, k, v, scale=0.3),
              [(2, 4, 3), (2, 5, 3), (2, 5, 4)]),
    "batch_broadcast": (lambda lib, q, k, v: sdpa(lib)(q, k, v),
                        [(2, 3, 4, 5), (1, 3, 6, 5), (1, 3, 6, 2)]),
    "grouped_query": (lambda lib, q, k, v: sdpa(lib)(q, k, v, enable_gqa=True),
                      [(2, 4, 3, 5), (2, 2, 6, 5), (2, 2, 6, 3)]),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(SDPA_CASES))
def test_sdpa_matches_torch(name, device):
    fn, specs = SDPA_CASES[name]
    compare(fn, specs, device=device)


def test_sdpa_float_mask_with_causal_combines_both():
    # torch (2.13, no grad) applies both; the masked-fill formulation is the reference.
    def reference(torch, q, k, v, m):
        causal = torch.ones(4, 6, dtype=torch.bool).tril()
        return sdpa(torch)(q, k, v, attn_mask=m.masked_fill(~causal, -math.inf))

    compare(lambda lib, q, k, v, m: sdpa(lib)(q, k, v, attn_mask=m, is_causal=True),
            [(2, 4, 3), (2, 6, 3), (2, 6, 2), (4, 6)], torch_fn=reference)


def test_sdpa_fully_masked_row_is_zero_with_zero_gradient():
    q, k, v = (gradforge.randn(1, 3, 2, dtype=gradforge.float64, requires_grad=True)
               for _ in range(3))
    m = gradforge.tensor(_rows_masked(3, 3))
    out = sdpa(gradforge)(q, k, v, attn_mask=m)
    out.sum().backward()
    assert np.all(out.detach().numpy()[0, 1] == 0)
    assert np.all(q.grad.numpy()[0, 1] == 0)
    assert np.isfinite(k.grad.numpy()).all() and np.isfinite(v.grad.numpy()).all()


@pytest.mark.parametrize("batch_first", [False, True])
def test_split_and_merge_heads(batch_first):
    x = gradforge.randn(3, 2, 3 * 4)  # (L, N, 3E) or (N, L, 3E), E = 4 split over 2 heads
    q, k, v = split_heads(x, 2, 3, batch_first)
    assert q.shape == (3 if batch_first else 2, 2, 2 if batch_first else 3, 2)
    assert all(t.is_contiguous() for t in (q, k, v))
    rebuilt = gradforge.cat([merge_heads(t, batch_first) for t in (q, k, v)], -1)
    np.testing.assert_array_equal(rebuilt.numpy(), x.numpy())
    # Head h of q holds features [h*d, (h+1)*d) of the first third, at every position.
    x_np = x.numpy() if batch_first else x.numpy().transpose(1, 0, 2)
    np.testing.assert_array_equal(q.numpy()[:, 1], x_np[..., 2:4])


def test_sdpa_dropout_keeps_expectation_and_is_seeded():
    q = gradforge.zeros(1, 64, 4)  # uniform weights 1/S, so E[out] = mean of v
    v = gradforge.ones(1, 128, 3)
    gradforge.manual_seed(3)
    out = sdpa(gradforge)(q, gradforge.randn(1, 128, 4), v, dropout_p=0.25)
    weights_kept = out.numpy()[..., 0] * 0.75  # each kept weight is 1/128 / 0.75
    assert abs(float(out.mean()) - 1.0) < 0.05
    assert np.allclose(np.round(weights_kept * 128), weights_kept * 128, atol=1e-4)
    gradforge.manual_seed(3)
    again = sdpa(gradforge)(q, gradforge.randn(1, 128, 4), v, dropout_p=0.25)
    assert np.array_equal(out.numpy(), again.numpy())
    dropped = sdpa(gradforge)(q, q, q, dropout_p=1.0)
    assert np.all(dropped.numpy() == 0)


def test_sdpa_bad_inputs_name_the_shapes():
    f = sdpa(gradforge)
    q, k, v = gradforge.randn(2, 4, 3), gradforge.randn(2, 5, 3), gradforge.randn(2, 5, 2)
    with pytest.raises(RuntimeError, match=r"same embedding size.*\(2, 4, 3\).*\(2, 5, 2\)"):
        f(q, v, v)
    with pytest.raises(RuntimeError, match=r"same sequence length.*\(2, 5, 3\).*\(2, 4, 3\)"):
        f(q, k, q)
    with pytest.raises(RuntimeError, match="same dtype.*float32.*float64"):
        f(q, k.double(), v)
    with pytest.raises(RuntimeError, match=r"attn_mask of shape \(3, 3\).*\(2, 4, 5\)"):
        f(q, k, v, attn_mask=gradforge.ones(3, 3, dtype=gradforge.bool))
    with pytest.raises(RuntimeError, match=r"at least 2-D.*\(3,\)"):
        f(gradforge.randn(3), k, v)
    with pytest.raises(RuntimeError, match=r"query heads \(3\).*key 2"):
        f(gradforge.randn(1, 3, 4, 3), gradforge.randn(1, 2, 5, 3), gradforge.randn(1, 2, 5, 3),
          enable_gqa=True)


# -- finite-difference cases (run by test_autograd_registry.py): ops/attention -------------
_MASK = _rows_masked(3, 4)
GRAD_CASES = {
    "SafeSoftmax": [
        (lambda lib, x: SafeSoftmax.apply(x, 0), [(3, 2)]),
        # fully masked row: zero output and zero gradient, also to second order
        (lambda lib, x: safe_softmax(lib.where(lib.tensor(_MASK), x, -math.inf), -1),
         [(2, 3, 4)]),
        (lambda lib, q, k, v: sdpa(lib)(q, k, v), [(2, 3, 2), (2, 3, 2), (2, 3, 3)]),
        (lambda lib, q, k, v: sdpa(lib)(q, k, v, is_causal=True, scale=0.7),
         [(2, 3, 2), (2, 3, 2), (2, 3, 3)]),
        (lambda lib, q, k, v, m: sdpa(lib)(q, k, v, attn_mask=m),
         [(1, 3, 2), (1, 4, 2), (1, 4, 2), (3, 4)]),
    ],
    "SplitHeads": [
        (lambda lib, x: split_heads(x, 2, 3), [(2, 3, 6)]),
        (lambda lib, x: split_heads(x, 2, 1, batch_first=True), [(3, 2, 4)]),
    ],
    "MergeHeads": [
        (lambda lib, x: merge_heads(x), [(2, 2, 3, 2)]),
        (lambda lib, x: merge_heads(x, batch_first=True), [(2, 2, 3, 2)]),
    ],
}


# -- nn.MultiheadAttention --------------------------------------------------------------------
def _bool_mask(*shape, seed=3):
    """Random True = 'masked out' entries (MultiheadAttention's convention), never a full row."""
    m = np.random.default_rng(seed).random(shape) < 0.3
    m[..., 0] = False
    return m


# (constructor kwargs, call: (lib, module, *inputs) -> outputs, input specs)
MHA_CASES = {
    "self_attention": ({}, lambda lib, m, x: m(x, x, x), [(5, 2, 8)]),
    "batch_first_head_weights": (
        {"batch_first": True},
        lambda lib, m, x: m(x, x, x, average_attn_weights=False), [(2, 5, 8)]),
    "cross_attention": ({}, lambda lib, m, q, kv: m(q, kv, kv), [(3, 2, 8), (5, 2, 8)]),
    "separate_qkv": ({}, lambda lib, m, q, k, v: m(q, k, v),
                     [(3, 2, 8), (5, 2, 8), (5, 2, 8)]),
    "kdim_vdim": ({"kdim": 3, "vdim": 5}, lambda lib, m, q, k, v: m(q, k, v),
                  [(3, 2, 8), (4, 2, 3), (4, 2, 5)]),
    "no_bias_no_weights": ({"bias": False},
                           lambda lib, m, x: m(x, x, x, need_weights=False), [(4, 2, 8)]),
    "key_padding_mask": ({}, lambda lib, m, x, kpm: m(x, x, x, key_padding_mask=kpm),
                         [(5, 2, 8), _bool_mask(2, 5)]),
    "bool_attn_mask": ({"batch_first": True},
                       lambda lib, m, x, am: m(x, x, x, attn_mask=am), [(2, 5, 8),
                                                                          _bool_mask(5, 5)]),
    "float_attn_mask_3d_and_padding": (
        {}, lambda lib, m, x, am, kpm: m(x, x, x, attn_mask=am, key_padding_mask=kpm),
        [(4, 2, 8), (2 * 2, 4, 4), np.where(_bool_mask(2, 4), -math.inf, 0.0)]),
    "causal_hint": ({}, lambda lib, m, x, am: m(x, x, x, attn_mask=am, is_causal=True,
                                                need_weights=False),
                    [(4, 2, 8), ~np.tril(np.ones((4, 4), dtype=bool))]),
    "bias_kv_zero_attn": ({"add_bias_kv": True, "add_zero_attn": True},
                          lambda lib, m, x, kpm: m(x, x, x, key_padding_mask=kpm),
                          [(4, 2, 8), _bool_mask(2, 4)]),
    "unbatched": ({}, lambda lib, m, q, kv: m(q, kv, kv), [(3, 8), (4, 8)]),
    "dropout_in_eval": ({"dropout": 0.5}, lambda lib, m, x: m(x, x, x), [(4, 2, 8)]),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(MHA_CASES))
def test_multihead_attention_matches_torch(name, device):
    kwargs, call, specs = MHA_CASES[name]
    check_module(lambda lib: lib.nn.MultiheadAttention(8, 2, **kwargs), call, specs,
                 device=device)


def test_multihead_attention_init_and_names():
    torch = pytest.importorskip("torch")
    for kwargs in ({}, {"kdim": 3, "vdim": 5, "add_bias_kv": True}, {"bias": False}):
        mine = gradforge.nn.MultiheadAttention(16, 4, **kwargs)
        theirs = torch.nn.MultiheadAttention(16, 4, **kwargs)
        assert [(n, tuple(p.shape)) for n, p in mine.named_parameters()] == \
            [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]
    mine = gradforge.nn.MultiheadAttention(16, 4)
    bound = math.sqrt(6 / (16 + 3 * 16))  # xavier_uniform_ on the (3E, E) in_proj_weight
    w = mine.in_proj_weight.detach().numpy()
    assert np.abs(w).max() <= bound and w.std() > bound / 3
    assert np.all(mine.in_proj_bias.detach().numpy() == 0)
    assert np.all(mine.out_proj.bias.detach().numpy() == 0)


def test_multihead_attention_dropout_in_training():
    gradforge.manual_seed(0)
    mha = gradforge.nn.MultiheadAttention(8, 2, dropout=0.5)
    x = gradforge.randn(6, 1, 8)
    _, weights = mha(x, x, x, average_attn_weights=False)
    w = weights.detach().numpy()
    # Dropped weights are 0, kept ones doubled, so rows no longer sum to 1.
    assert (w == 0).mean() > 0.2 and not np.allclose(w.sum(-1), 1)
    mha.eval()
    _, weights = mha(x, x, x)
    np.testing.assert_allclose(weights.detach().numpy().sum(-1), 1, rtol=1e-6)


def test_multihead_attention_bad_inputs_name_the_sizes():
    mha = gradforge.nn.MultiheadAttention(8, 2)
    x = gradforge.randn(4, 2, 8)
    with pytest.raises(ValueError, match=r"divisible by num_heads \(got embed_dim=8, "
                                         r"num_heads=3\)"):
        gradforge.nn.MultiheadAttention(8, 3)
    with pytest.raises(RuntimeError, match=r"expected query with 8 features.*\(4, 2, 6\)"):
        mha(gradforge.randn(4, 2, 6), x, x)
    with pytest.raises(RuntimeError, match=r"2D attn_mask is \(3, 4\), but should be "
                                           r"\(4, 4\)"):
        mha(x, x, x, attn_mask=gradforge.zeros(3, 4))
    with pytest.raises(RuntimeError, match=r"3D attn_mask is \(2, 4, 4\), but should be "
                                           r"\(4, 4, 4\)"):
        mha(x, x, x, attn_mask=gradforge.zeros(2, 4, 4))
    with pytest.raises(RuntimeError, match=r"key_padding_mask shape of \(2, 4\), but got "
                                           r"\(2, 5\)"):
        mha(x, x, x, key_padding_mask=gradforge.zeros(2, 5, dtype=gradforge.bool))
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        mha(x, x, x, is_causal=True)
    with pytest.raises(RuntimeError, match=r"key's sequence and batch dims \(4, 2\) do not "
                                           r"match value's \(5, 2\)"):
        mha(x, x, gradforge.randn(5, 2, 8))

"""scaled_dot_product_attention and its safe softmax: PyTorch oracle, finite differences
(first and second order), dropout, and bad input."""
import math

import numpy as np
import pytest
from oracle import DEVICES, check_grad, compare, mask

import gradforge
from gradforge.ops.attention import SafeSoftmax, safe_softmax


def sdpa(lib):
    if lib is gradforge:
        from gradforge.ops.attention import scaled_dot_product_attention
        return scaled_dot_product_attention
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


def test_safe_softmax_finite_differences():
    m = gradforge.tensor(_rows_masked(3, 4))
    check_grad(lambda lib, x: safe_softmax(lib.where(m, x, -math.inf), -1), [(2, 3, 4)])
    check_grad(lambda lib, x: SafeSoftmax.apply(x, 0), [(3, 2)])


@pytest.mark.parametrize("kwargs", [{}, {"is_causal": True}, {"scale": 0.7}])
def test_sdpa_finite_differences(kwargs):
    check_grad(lambda lib, q, k, v: sdpa(lib)(q, k, v, **kwargs),
               [(2, 3, 2), (2, 3, 2), (2, 3, 3)])


def test_sdpa_finite_differences_additive_mask():
    check_grad(lambda lib, q, k, v, m: sdpa(lib)(q, k, v, attn_mask=m),
               [(1, 3, 2), (1, 4, 2), (1, 4, 2), (3, 4)])


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

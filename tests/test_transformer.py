"""nn.TransformerEncoderLayer against PyTorch with torch's own weights (state_dict):
post- and pre-norm, activations, masks, batch_first, unbatched input; names and bad input."""
import numpy as np
import pytest
from module_oracle import check_module
from oracle import DEVICES

import gradforge


def _padding(*shape):
    m = np.zeros(shape, dtype=bool)
    m[0, -2:] = True   # the last two keys of sample 0 are padding
    return m


def _causal(n):
    return ~np.tril(np.ones((n, n), dtype=bool))


def _silu(lib):
    return lib.nn.functional.silu


# (constructor kwargs, call, input specs)
CASES = {
    "post_norm_relu": ({}, lambda lib, m, x: m(x), [(5, 2, 8)]),
    "pre_norm_gelu_batch_first": ({"norm_first": True, "activation": "gelu",
                                   "batch_first": True}, lambda lib, m, x: m(x), [(2, 5, 8)]),
    "callable_activation": ({"activation": "silu"}, lambda lib, m, x: m(x), [(4, 2, 8)]),
    "module_activation": ({"activation": "gelu_module"}, lambda lib, m, x: m(x), [(4, 2, 8)]),
    "bool_masks": ({}, lambda lib, m, x, am, kpm: m(x, src_mask=am, src_key_padding_mask=kpm),
                   [(5, 2, 8), _causal(5), _padding(2, 5)]),
    "float_masks": ({"batch_first": True},
                    lambda lib, m, x, am, kpm: m(x, src_mask=am, src_key_padding_mask=kpm),
                    [(2, 5, 8), (5, 5), np.where(_padding(2, 5), -np.inf, 0.0)]),
    "causal": ({"batch_first": True},
               lambda lib, m, x, am: m(x, src_mask=am, is_causal=True),
               [(2, 5, 8), _causal(5)]),
    "no_bias_eps": ({"bias": False, "layer_norm_eps": 1e-3}, lambda lib, m, x: m(x),
                    [(4, 2, 8)]),
    "unbatched": ({"norm_first": True}, lambda lib, m, x: m(x), [(5, 8)]),
    "dropout_in_eval": ({"dropout": 0.3}, lambda lib, m, x: m(x), [(4, 2, 8)]),
}


def _make(lib, kwargs):
    kwargs = dict(kwargs)
    if kwargs.get("activation") == "silu":
        kwargs["activation"] = _silu(lib)
    elif kwargs.get("activation") == "gelu_module":
        kwargs["activation"] = lib.nn.GELU()
    kwargs.setdefault("dropout", 0.0)
    return lib.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, **kwargs)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(CASES))
def test_encoder_layer_matches_torch(name, device):
    kwargs, call, specs = CASES[name]
    check_module(lambda lib: _make(lib, kwargs), call, specs, device=device)


def test_encoder_layer_dropout_in_training():
    gradforge.manual_seed(0)
    layer = gradforge.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.5)
    x = gradforge.randn(4, 2, 8)
    a, b = layer(x), layer(x)
    assert not np.allclose(a.detach().numpy(), b.detach().numpy())
    layer.eval()
    np.testing.assert_array_equal(layer(x).detach().numpy(), layer(x).detach().numpy())


def test_encoder_layer_submodule_names_follow_torch():
    torch = pytest.importorskip("torch")
    mine = gradforge.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16)
    theirs = torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16)
    assert list(mine.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in mine.named_children()] == [n for n, _ in theirs.named_children()]


def test_encoder_layer_bad_inputs():
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        gradforge.nn.TransformerEncoderLayer(8, 2, activation="tanh")
    layer = gradforge.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16)
    with pytest.raises(RuntimeError, match=r"expected query with 8 features.*\(5, 2, 6\)"):
        layer(gradforge.randn(5, 2, 6))
    with pytest.raises(RuntimeError, match=r"2D attn_mask is \(4, 4\), but should be \(5, 5\)"):
        layer(gradforge.randn(5, 2, 8), src_mask=gradforge.zeros(4, 4))

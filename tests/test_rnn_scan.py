"""The recurrence Functions (ops/rnn.py) on their own: torch's single-layer recurrences as the
oracle, finite differences of every packed output (first and second order), long sequences
and bad input."""
import numpy as np
import pytest
from oracle import DEVICES

import gradforge
from gradforge.ops.rnn import GRUScan, LSTMScan, RNNScan, gru_scan, lstm_scan, rnn_scan

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def _torch_layer(torch, kind, weights):
    n_in, hidden = weights["weight_ih_l0"].shape[1], weights["weight_hh_l0"].shape[1]
    if kind == "lstm":
        layer = torch.nn.LSTM(n_in, hidden)
    elif kind == "gru":
        layer = torch.nn.GRU(n_in, hidden)
    else:
        layer = torch.nn.RNN(n_in, hidden, nonlinearity=kind.removeprefix("rnn_"))
    layer = layer.double()
    layer.load_state_dict({k: torch.tensor(v) for k, v in weights.items()})
    return layer


def _scan(kind, x, h0, c0, w, reverse):
    """One layer through the scan ops, with the input projection as one matmul."""
    proj = x @ w["weight_ih_l0"].T + w["bias_ih_l0"]
    if kind == "lstm":
        return lstm_scan(proj + w["bias_hh_l0"], h0, c0, w["weight_hh_l0"], reverse)[0]
    if kind == "gru":
        return gru_scan(proj, h0, w["weight_hh_l0"], w["bias_hh_l0"], reverse)
    return rnn_scan(proj + w["bias_hh_l0"], h0, w["weight_hh_l0"], kind.removeprefix("rnn_"),
                    reverse)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("kind", list(GATES))
def test_scan_matches_torch_layer(kind, reverse, device):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    steps, batch, n_in, hidden = 5, 3, 4, 6
    size = GATES[kind] * hidden
    arrays = {"weight_ih_l0": rng.standard_normal((size, n_in)) * 0.5,
              "weight_hh_l0": rng.standard_normal((size, hidden)) * 0.5,
              "bias_ih_l0": rng.standard_normal(size) * 0.5,
              "bias_hh_l0": rng.standard_normal(size) * 0.5}
    x, h0, c0 = (rng.standard_normal(s) for s in ((steps, batch, n_in), (batch, hidden),
                                                   (batch, hidden)))
    seed = rng.standard_normal((steps, batch, hidden))

    layer = _torch_layer(torch, kind, arrays)
    # torch runs forward in time; the reverse scan is torch on the time-flipped input.
    tx = torch.tensor(x[::-1].copy() if reverse else x, requires_grad=True)
    th0, tc0 = (torch.tensor(a[None], requires_grad=True) for a in (h0, c0))
    out, _ = layer(tx, (th0, tc0) if kind == "lstm" else th0)
    out = out.flip(0) if reverse else out
    (out * torch.tensor(seed)).sum().backward()

    def leaf(a):
        return gradforge.tensor(a, requires_grad=True, device=device)
    w = {k: leaf(a) for k, a in arrays.items()}
    gx, gh0, gc0 = leaf(x), leaf(h0), leaf(c0)
    hs = _scan(kind, gx, gh0, gc0, w, reverse)
    (hs * gradforge.tensor(seed, device=device)).sum().backward()

    def close(mine, theirs, what):
        np.testing.assert_allclose(mine.detach().cpu().numpy(), theirs.detach().numpy(),
                                   atol=1e-10, rtol=1e-9, err_msg=what)
    close(hs, out, "output")
    close(gx.grad, tx.grad.flip(0) if reverse else tx.grad, "input gradient")
    close(gh0.grad, th0.grad[0], "h0 gradient")
    if kind == "lstm":
        close(gc0.grad, tc0.grad[0], "c0 gradient")
    for name, p in w.items():
        close(p.grad, getattr(layer, name).grad, name)


# -- finite-difference cases (run by test_autograd_registry.py) -----------------------------
# Every output is checked, the packed one (gates, cell and hidden states of every step)
# included, so backward is exercised with a gradient on each block, as double backward needs.
GRAD_CASES = {
    "LSTMScan": [(lambda lib, gx, h0, c0, w, rev=rev: LSTMScan.apply(gx, h0, c0, w, rev),
                  [(3, 2, 8), (2, 2), (2, 2), (8, 2)]) for rev in (False, True)],
    "GRUScan": [(lambda lib, gx, h0, w, b, rev=rev: GRUScan.apply(gx, h0, w, b, rev),
                 [(3, 2, 6), (2, 2), (6, 2), (6,)]) for rev in (False, True)]
    + [(lambda lib, gx, h0, w: GRUScan.apply(gx, h0, w, None, False),
        [(2, 2, 6), (2, 2), (6, 2)])],
    "RNNScan": [(lambda lib, gx, h0, w, act=act, rev=rev: RNNScan.apply(gx, h0, w, act, rev),
                 [(3, 2, 2), (2, 2), (2, 2)])
                for act in ("tanh", "relu") for rev in (False, True)],
}


def test_bptt_over_2000_steps():
    gradforge.manual_seed(0)
    steps, hidden = 2000, 3
    gx = (gradforge.randn(steps, 1, 4 * hidden, dtype=gradforge.float64) * 0.5).requires_grad_()
    w = (gradforge.randn(4 * hidden, hidden, dtype=gradforge.float64) * 0.3).requires_grad_()
    h0 = gradforge.zeros(1, hidden, dtype=gradforge.float64, requires_grad=True)
    c0 = gradforge.zeros(1, hidden, dtype=gradforge.float64, requires_grad=True)
    hs, cs = lstm_scan(gx, h0, c0, w)
    loss = hs[-1].sum() + hs[0].sum() + cs[-1].sum()
    loss.backward()
    assert gx.grad.shape == (steps, 1, 4 * hidden)
    assert np.isfinite(w.grad.numpy()).all() and np.abs(h0.grad.numpy()).sum() > 0
    # The first step's gradient includes the direct path from hs[0]; later steps only the
    # long path, which is much smaller than it (vanishing through 2,000 sigmoids).
    grads = np.abs(gx.grad.numpy()).sum(axis=(1, 2))
    assert grads[0] > grads[1000] and grads[-1] > 0


def test_scan_bad_inputs_name_the_shapes():
    gx = gradforge.randn(5, 3, 8)
    h, w = gradforge.randn(3, 2), gradforge.randn(8, 2)
    with pytest.raises(RuntimeError, match=r"state of shape \(3, 2\), got \(4, 2\)"):
        lstm_scan(gx, gradforge.randn(4, 2), h, w)
    with pytest.raises(RuntimeError, match=r"w_hh of shape.*\(5, 3, 8\), got \(8, 3\)"):
        lstm_scan(gx, h, h, gradforge.randn(8, 3))
    with pytest.raises(RuntimeError, match=r"steps >= 1.*got \(0, 3, 8\)"):
        lstm_scan(gradforge.randn(0, 3, 8), h, h, w)
    with pytest.raises(RuntimeError, match="float32, got float64"):
        rnn_scan(gradforge.randn(5, 3, 2), h.double(), gradforge.randn(2, 2))
    with pytest.raises(RuntimeError, match=r"b_hh of shape \(6,\), got \(5,\)"):
        gru_scan(gradforge.randn(5, 3, 6), h, gradforge.randn(6, 2), gradforge.randn(5))
    with pytest.raises(ValueError, match="Unknown nonlinearity 'gelu'"):
        rnn_scan(gradforge.randn(5, 3, 2), h, gradforge.randn(2, 2), "gelu")

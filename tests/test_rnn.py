"""nn.RNN, nn.LSTM, nn.GRU and their cells against PyTorch with torch's own weights
(state_dict), in many configurations; init, dropout, long sequences, bad input."""
import math
import warnings

import numpy as np
import pytest
from module_oracle import check_module
from oracle import DEVICES

import gradforge
from gradforge import nn

LAYERS = {
    "rnn_tanh": lambda lib, *a, **k: lib.nn.RNN(*a, **k),
    "rnn_relu": lambda lib, *a, **k: lib.nn.RNN(*a, nonlinearity="relu", **k),
    "lstm": lambda lib, *a, **k: lib.nn.LSTM(*a, **k),
    "gru": lambda lib, *a, **k: lib.nn.GRU(*a, **k),
}

# (constructor kwargs, input shape, initial state given)
CONFIGS = {
    "default": ({}, (5, 2, 3), False),
    "two_layers": ({"num_layers": 2}, (4, 3, 3), False),
    "bidirectional": ({"bidirectional": True}, (4, 2, 3), False),
    "batch_first": ({"batch_first": True}, (2, 5, 3), False),
    "initial_state": ({}, (4, 2, 3), True),
    "no_bias": ({"bias": False}, (4, 2, 3), True),
    "unbatched": ({}, (5, 3), False),
    "unbatched_state_bidirectional": ({"bidirectional": True}, (4, 3), True),
    "all": ({"num_layers": 2, "bidirectional": True, "batch_first": True, "dropout": 0.5},
            (2, 4, 3), True),
}


def _state_shape(kwargs, input_shape):
    first = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
    if len(input_shape) == 2:
        return (first, 4)
    return (first, input_shape[0 if kwargs.get("batch_first") else 1], 4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("kind", list(LAYERS))
def test_layer_matches_torch(kind, config, device):
    kwargs, shape, with_state = CONFIGS[config]
    specs = [shape]
    if with_state:
        specs += [_state_shape(kwargs, shape)] * (2 if kind == "lstm" else 1)

    def call(lib, module, x, *state):
        if not state:
            return module(x)
        return module(x, tuple(state) if kind == "lstm" else state[0])

    # Dropout acts only in training; eval mode makes "all" deterministic in both libraries.
    check_module(lambda lib: LAYERS[kind](lib, 3, 4, **kwargs), call, specs, device=device)


CELLS = {
    "rnn_cell": lambda lib, **k: lib.nn.RNNCell(3, 4, **k),
    "rnn_cell_relu": lambda lib, **k: lib.nn.RNNCell(3, 4, nonlinearity="relu", **k),
    "lstm_cell": lambda lib, **k: lib.nn.LSTMCell(3, 4, **k),
    "gru_cell": lambda lib, **k: lib.nn.GRUCell(3, 4, **k),
}


@pytest.mark.parametrize("variant", ["batched", "batched_state", "unbatched_state",
                                     "no_bias"])
@pytest.mark.parametrize("kind", list(CELLS))
def test_cell_matches_torch(kind, variant):
    batched = variant != "unbatched_state"
    x_shape, h_shape = ((2, 3), (2, 4)) if batched else ((3,), (4,))
    with_state = variant != "batched"
    specs = [x_shape] + ([h_shape] * (2 if kind == "lstm_cell" else 1) if with_state else [])

    def call(lib, module, x, *state):
        if not state:
            return module(x)
        return module(x, tuple(state) if kind == "lstm_cell" else state[0])

    kwargs = {"bias": False} if variant == "no_bias" else {}
    check_module(lambda lib: CELLS[kind](lib, **kwargs), call, specs)


def test_cell_steps_equal_the_layer():
    gradforge.manual_seed(0)
    layer, cell = nn.LSTM(3, 4), nn.LSTMCell(3, 4)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in layer.state_dict().items()})
    x = gradforge.randn(6, 2, 3)
    out, (h_n, c_n) = layer(x)
    np.testing.assert_array_equal(h_n[0].detach().numpy(), out[-1].detach().numpy())
    state = None
    for t in range(6):
        state = cell(x[t], state)
        np.testing.assert_allclose(state[0].detach().numpy(), out[t].detach().numpy(),
                                   atol=1e-6)
    np.testing.assert_allclose(state[1].detach().numpy(), c_n[0].detach().numpy(), atol=1e-6)


def test_parameter_names_shapes_and_init_follow_torch():
    torch = pytest.importorskip("torch")
    for make in LAYERS.values():
        kwargs = {"num_layers": 2, "bidirectional": True}
        mine, theirs = make(gradforge, 5, 7, **kwargs), make(torch, 5, 7, **kwargs)
        assert [(n, tuple(p.shape)) for n, p in mine.named_parameters()] == \
            [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]
        bound = 1 / math.sqrt(7)
        values = np.concatenate([p.detach().numpy().ravel() for p in mine.parameters()])
        # uniform(-1/sqrt(hidden), 1/sqrt(hidden)): inside the bound, std bound/sqrt(3)
        assert np.abs(values).max() <= bound
        assert abs(values.std() - bound / math.sqrt(3)) < 0.1 * bound
    assert repr(nn.LSTM(3, 4, num_layers=2, batch_first=True)) == \
        repr(torch.nn.LSTM(3, 4, num_layers=2, batch_first=True))
    assert repr(nn.RNN(3, 4, nonlinearity="relu")) == repr(torch.nn.RNN(3, 4,
                                                                          nonlinearity="relu"))
    assert repr(nn.RNNCell(3, 4, nonlinearity="relu")) == \
        repr(torch.nn.RNNCell(3, 4, nonlinearity="relu"))
    assert repr(nn.GRUCell(3, 4, bias=False)) == repr(torch.nn.GRUCell(3, 4, bias=False))


def test_state_dict_round_trip_into_torch():
    torch = pytest.importorskip("torch")
    mine = nn.GRU(3, 4, num_layers=2, bidirectional=True)
    theirs = torch.nn.GRU(3, 4, num_layers=2, bidirectional=True)
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in mine.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    np.testing.assert_allclose(mine(gradforge.tensor(x))[0].detach().numpy(),
                               theirs(torch.tensor(x))[0].detach().numpy(), atol=1e-5)


def test_dropout_between_layers_in_training_only():
    gradforge.manual_seed(0)
    lstm = nn.LSTM(3, 8, num_layers=2, dropout=0.5)
    x = gradforge.randn(4, 2, 3)
    gradforge.manual_seed(1)
    a = lstm(x)[0]
    gradforge.manual_seed(2)
    b = lstm(x)[0]
    gradforge.manual_seed(1)
    again = lstm(x)[0]
    assert not np.allclose(a.detach().numpy(), b.detach().numpy())
    np.testing.assert_array_equal(a.detach().numpy(), again.detach().numpy())
    lstm.eval()
    np.testing.assert_array_equal(lstm(x)[0].detach().numpy(), lstm(x)[0].detach().numpy())
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        nn.GRU(3, 4, dropout=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nn.GRU(3, 4, num_layers=2, dropout=0.2)


def test_module_finite_differences():
    gradforge.manual_seed(0)
    lstm = nn.LSTM(2, 2, num_layers=2, bidirectional=True).double()
    x = gradforge.randn(3, 1, 2, dtype=gradforge.float64, requires_grad=True)
    h0 = gradforge.randn(4, 1, 2, dtype=gradforge.float64, requires_grad=True)
    c0 = gradforge.randn(4, 1, 2, dtype=gradforge.float64, requires_grad=True)
    assert gradforge.autograd.gradcheck(lambda x, h, c: lstm(x, (h, c))[0], (x, h0, c0))


def _graph_size(t) -> int:
    seen, stack = set(), [t.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen or not hasattr(node, "next_edges"):
            continue
        seen.add(node)
        stack.extend(e[0] for e in node.next_edges if e is not None)
    return len(seen)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_graph_does_not_grow_with_sequence_length(kind):
    # One scan node per layer and direction, whatever the length: memory is the packed
    # per-step states only, linear in the length, and backward never recurses per step.
    module = LAYERS[kind](gradforge, 3, 4, num_layers=2)
    short = module(gradforge.randn(5, 2, 3))[0]
    long = module(gradforge.randn(500, 2, 3))[0]
    assert _graph_size(short) == _graph_size(long)


def test_bptt_through_2000_steps():
    gradforge.manual_seed(0)
    lstm = nn.LSTM(2, 3)
    x = gradforge.randn(2000, 1, 2, requires_grad=True)
    _, (h_n, _) = lstm(x)
    h_n.sum().backward()
    grads = np.abs(x.grad.numpy()).sum(axis=(1, 2))
    assert np.isfinite(grads).all() and grads[-1] > 0
    assert all(np.isfinite(p.grad.numpy()).all() for p in lstm.parameters())


def test_bad_inputs_name_the_sizes():
    lstm = nn.LSTM(3, 4, num_layers=2)
    with pytest.raises(RuntimeError, match="input_size. Expected 3, got 5"):
        lstm(gradforge.randn(6, 2, 5))
    with pytest.raises(ValueError, match=r"2D or 3D, got 4D tensor of shape \(1, 6, 2, 3\)"):
        lstm(gradforge.randn(1, 6, 2, 3))
    h = gradforge.zeros(1, 2, 4)
    with pytest.raises(RuntimeError, match=r"Expected hidden\[0\] size \(2, 2, 4\), got "
                                           r"\[1, 2, 4\]"):
        lstm(gradforge.randn(6, 2, 3), (h, gradforge.zeros(2, 2, 4)))
    with pytest.raises(RuntimeError, match=r"Expected hidden\[1\] size \(2, 2, 4\), got "
                                           r"\[2, 3, 4\]"):
        lstm(gradforge.randn(6, 2, 3), (gradforge.zeros(2, 2, 4), gradforge.zeros(2, 3, 4)))
    gru = nn.GRU(3, 4, batch_first=True)
    with pytest.raises(RuntimeError, match=r"Expected hidden size \(1, 6, 4\), got \[1, 2, 4\]"):
        gru(gradforge.randn(6, 2, 3), gradforge.zeros(1, 2, 4))
    with pytest.raises(RuntimeError, match="For unbatched 2-D input, hidden should also be 2-D "
                                           "but got 3-D"):
        gru(gradforge.randn(6, 3), gradforge.zeros(1, 1, 4))
    with pytest.raises(ValueError, match="Unknown nonlinearity 'sigmoid'"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        nn.LSTM(3, 4, dropout=1.5)
    cell = nn.GRUCell(3, 4)
    with pytest.raises(RuntimeError, match="inconsistent input_size: got 2 expected 3"):
        cell(gradforge.randn(5, 2))
    with pytest.raises(RuntimeError, match="hidden0 has inconsistent hidden_size: got 3, "
                                           "expected 4"):
        cell(gradforge.randn(5, 3), gradforge.zeros(5, 3))
    with pytest.raises(RuntimeError, match="Input batch size 5 doesn't match hidden0 batch "
                                           "size 2"):
        cell(gradforge.randn(5, 3), gradforge.zeros(2, 4))

"""Recurrent layers: ``RNN``, ``LSTM``, ``GRU`` and their single-step cells.

Parameter names, shapes, gate order and initialisation are PyTorch's, so a torch
``state_dict`` loads unchanged. Each layer and direction computes its input projections for
all time steps in one matmul and runs the recurrence with a scan op (``ops/rnn.py``): one
matmul with ``weight_hh`` per step, the gate math fused, backpropagation through time
without recursion and with memory linear in the sequence length.
"""
from __future__ import annotations

import math
import warnings

from ...ops.creation import empty, zeros
from ...ops.movement import cat, stack, transpose, unsqueeze
from ...ops.rnn import gru_scan, lstm_scan, rnn_scan
from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..parameter import Parameter
from .module import Module

__all__ = ["GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNBase", "RNNCell", "RNNCellBase"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _layer(mode: str, x: Tensor, h0: Tensor, c0: Tensor | None, w_ih: Tensor, w_hh: Tensor,
           b_ih: Tensor | None, b_hh: Tensor | None,
           reverse: bool) -> tuple[Tensor, Tensor | None]:
    """One layer and direction over x (steps, batch, in): the states h (and c) of every step.

    The input projections of all steps are one matmul. Both biases join it, except the GRU's
    b_hh, which stays in the recurrence because its n gate multiplies ``W_hn h + b_hn`` by r.
    """
    if mode != "GRU" and b_ih is not None:
        b_ih, b_hh = b_ih + b_hh, None
    gx = F.linear(x, w_ih, b_ih)
    if mode == "GRU":
        return gru_scan(gx, h0, w_hh, b_hh, reverse), None
    if mode == "LSTM":
        return lstm_scan(gx, h0, c0, w_hh, reverse)
    return rnn_scan(gx, h0, w_hh, "tanh" if mode == "RNN_TANH" else "relu", reverse), None


def _uniform_init(module: Module) -> None:
    """torch's init for recurrent layers: every weight and bias uniform in +-1/sqrt(hidden)."""
    bound = 1.0 / math.sqrt(module.hidden_size) if module.hidden_size > 0 else 0.0
    for weight in module.parameters():
        init.uniform_(weight, -bound, bound)


class RNNBase(Module):
    """Base of ``RNN``, ``LSTM`` and ``GRU``: parameters, checks and the layer loop.

    Args:
        mode: ``"LSTM"``, ``"GRU"``, ``"RNN_TANH"`` or ``"RNN_RELU"``.
        input_size: features of the input x.
        hidden_size: features of the hidden state h.
        num_layers: stacked recurrent layers (default 1).
        bias: use ``bias_ih`` and ``bias_hh`` (default True).
        batch_first: input and output are (batch, seq, feature) instead of (seq, batch, ...).
        dropout: dropout probability on the outputs of every layer but the last.
        bidirectional: also run each layer from the last step to the first.
        proj_size: must be 0 (LSTM projections are not implemented).
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None, dtype=None):
        super().__init__()
        if mode not in _GATES:
            raise ValueError(f"Unrecognized RNN mode: {mode}")
        if isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the "
                             "probability of an element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so "
                          "non-zero dropout expects num_layers greater than 1, but got "
                          f"dropout={dropout} and num_layers={num_layers}", stacklevel=2)
        if not isinstance(hidden_size, int) or hidden_size <= 0:
            raise ValueError(f"hidden_size must be a positive integer, got {hidden_size!r}")
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"num_layers must be a positive integer, got {num_layers!r}")
        if proj_size:
            raise NotImplementedError("LSTM with proj_size > 0 is not supported by gradforge")
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional, self.proj_size = float(dropout), bidirectional, 0
        gate_size = _GATES[mode] * hidden_size
        directions = 2 if bidirectional else 1
        self._flat_weights_names = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = {"weight_ih": (gate_size, layer_input),
                          "weight_hh": (gate_size, hidden_size)}
                if bias:
                    shapes.update(bias_ih=(gate_size,), bias_hh=(gate_size,))
                for name, shape in shapes.items():
                    setattr(self, name + suffix,
                            Parameter(empty(shape, device=device, dtype=dtype)))
                    self._flat_weights_names.append(name + suffix)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _uniform_init(self)

    def flatten_parameters(self) -> None:
        """Nothing to do: torch packs weights for cuDNN here; gradforge uses them in place."""

    @property
    def _flat_weights(self) -> list:
        return [getattr(self, name) for name in self._flat_weights_names]

    @property
    def all_weights(self) -> list:
        """The parameters grouped per layer and direction, as torch lists them."""
        per = 4 if self.bias else 2
        flat = self._flat_weights
        return [flat[i:i + per] for i in range(0, len(flat), per)]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # -- checks ------------------------------------------------------------------------------
    def _check_input(self, input: Tensor) -> None:
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: input must be a Tensor, not {type(input).__name__}")
        if input.ndim not in (2, 3):
            raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.ndim}D tensor "
                             f"of shape {tuple(input.shape)} instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected "
                               f"{self.input_size}, got {input.shape[-1]} (input of shape "
                               f"{tuple(input.shape)})")
        if input.shape[0 if input.ndim == 2 or not self.batch_first else 1] == 0:
            raise RuntimeError(f"{name}: expected a non-empty sequence, got input of shape "
                               f"{tuple(input.shape)}")

    def _initial_state(self, hx: Tensor | None, which: str, batch: int, batched: bool,
                       like: Tensor) -> Tensor:
        """An initial state as (layers * directions, batch, hidden), zeros when not given."""
        directions = 2 if self.bidirectional else 1
        expected = (self.num_layers * directions, batch, self.hidden_size)
        if hx is None:
            return zeros(expected, dtype=like.dtype, device=like.device)
        if not isinstance(hx, Tensor):
            raise TypeError(f"{type(self).__name__}: expected {which} to be a Tensor, got "
                            f"{type(hx).__name__}")
        if hx.ndim != (3 if batched else 2):
            kind = "batched 3-D" if batched else "unbatched 2-D"
            raise RuntimeError(f"For {kind} input, {which} should also be "
                               f"{3 if batched else 2}-D but got {hx.ndim}-D tensor of shape "
                               f"{tuple(hx.shape)}")
        state = hx if batched else unsqueeze(hx, 1)
        if tuple(state.shape) != expected:
            shown = expected if batched else (expected[0], expected[2])
            raise RuntimeError(f"Expected {which} size {shown}, got {list(hx.shape)}")
        return state

    # -- forward -----------------------------------------------------------------------------
    def forward(self, input: Tensor, hx=None):
        """Run the stacked recurrence over the whole sequence.

        Returns ``(output, h_n)`` (``(output, (h_n, c_n))`` for the LSTM).
        """
        self._check_input(input)
        batched = input.ndim == 3
        x = input if batched else unsqueeze(input, 1)
        if batched and self.batch_first:
            x = transpose(x, 0, 1)
        batch = x.shape[1]
        if self.mode == "LSTM":
            if hx is not None and not (isinstance(hx, (tuple, list)) and len(hx) == 2):
                raise TypeError("LSTM: hx must be a tuple (h_0, c_0)")
            h_given, c_given = hx if hx is not None else (None, None)
            h0 = self._initial_state(h_given, "hidden[0]", batch, batched, x)
            c0 = self._initial_state(c_given, "hidden[1]", batch, batched, x)
        else:
            if isinstance(hx, (tuple, list)):
                raise TypeError(f"{type(self).__name__}: hx must be a Tensor, not a tuple")
            h0 = self._initial_state(hx, "hidden", batch, batched, x)
            c0 = None
        output, h_n, c_n = self._run_layers(x, h0, c0)
        if batched and self.batch_first:
            output = transpose(output, 0, 1)
        if not batched:
            output, h_n = output[:, 0], h_n[:, 0]
            c_n = c_n[:, 0] if c_n is not None else None
        return (output, (h_n, c_n)) if self.mode == "LSTM" else (output, h_n)

    def _run_layers(self, x: Tensor, h0: Tensor, c0: Tensor | None):
        directions = 2 if self.bidirectional else 1
        final_h, final_c = [], []
        weights = self._flat_weights
        per = 4 if self.bias else 2
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                k = layer * directions + direction
                w_ih, w_hh, b_ih, b_hh = weights[k * per:(k + 1) * per] + [None] * (4 - per)
                reverse = direction == 1
                hs, cs = _layer(self.mode, x, h0[k], None if c0 is None else c0[k], w_ih, w_hh,
                                b_ih, b_hh, reverse)
                last = 0 if reverse else -1  # the last step processed
                outputs.append(hs)
                final_h.append(hs[last])
                if cs is not None:
                    final_c.append(cs[last])
            x = outputs[0] if directions == 1 else cat(outputs, -1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        return x, stack(final_h), stack(final_c) if final_c else None


class RNN(RNNBase):
    """Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act tanh or relu.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional:
            as in ``RNNBase``; positional order as in torch.
        nonlinearity: ``"tanh"`` (default) or ``"relu"``.

    Shape:
        - input: (L, N, H_in), (N, L, H_in) with ``batch_first``, or unbatched (L, H_in).
        - h_0: (D * num_layers, N, H_out) or (D * num_layers, H_out); zeros if omitted.
        - output: (L, N, D * H_out); h_n: like h_0. D = 2 if bidirectional else 1.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or "
                             "'relu'.")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory: gates i, f, g, o (torch's order) over c and h.

    i, f, o = sigmoid(...), g = tanh(...), c_t = f*c_{t-1} + i*g, h_t = o*tanh(c_t).

    Shape:
        - input: (L, N, H_in), (N, L, H_in) with ``batch_first``, or unbatched (L, H_in).
        - (h_0, c_0): each (D * num_layers, N, H_out); zeros if omitted.
        - output: (L, N, D * H_out); (h_n, c_n) like (h_0, c_0).
    """

    def __init__(self, *args, **kwargs):
        super().__init__("LSTM", *args, **kwargs)


class GRU(RNNBase):
    """Gated recurrent unit: r, z = sigmoid(...), n = tanh(W_in x + b_in + r*(W_hn h + b_hn)),
    h_t = (1 - z)*n + z*h_{t-1}.

    Shape:
        - input: (L, N, H_in), (N, L, H_in) with ``batch_first``, or unbatched (L, H_in).
        - h_0: (D * num_layers, N, H_out); zeros if omitted.
        - output: (L, N, D * H_out); h_n like h_0.
    """

    def __init__(self, *args, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__("GRU", *args, **kwargs)


class RNNCellBase(Module):
    """Base of the single-step cells: ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int,
                 device=None, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.weight_ih = Parameter(empty((num_chunks * hidden_size, input_size), device=device,
                                         dtype=dtype))
        self.weight_hh = Parameter(empty((num_chunks * hidden_size, hidden_size),
                                         device=device, dtype=dtype))
        if bias:
            self.bias_ih = Parameter(empty(num_chunks * hidden_size, device=device, dtype=dtype))
            self.bias_hh = Parameter(empty(num_chunks * hidden_size, device=device, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _uniform_init(self)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        nonlinearity = getattr(self, "nonlinearity", "tanh")
        return s + f", nonlinearity={nonlinearity}" if nonlinearity != "tanh" else s

    def _step(self, mode: str, input: Tensor, hx, n_states: int):
        """One step of ``mode``; returns the new states, unbatched if the input was."""
        name = type(self).__name__
        if not isinstance(input, Tensor) or input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got "
                             f"{getattr(input, 'ndim', type(input).__name__)}D instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {input.shape[-1]} "
                               f"expected {self.input_size}")
        batched = input.ndim == 2
        x = input if batched else unsqueeze(input, 0)
        batch = x.shape[0]
        states = (hx,) if n_states == 1 else (hx if hx is not None else (None, None))
        prepared = []
        for k, s in enumerate(states):
            if s is None:
                s = zeros(batch, self.hidden_size, dtype=x.dtype, device=x.device)
            elif s.ndim != input.ndim:
                raise ValueError(f"{name}: Expected hidden to be {input.ndim}D for a "
                                 f"{input.ndim}D input, got {s.ndim}D of shape "
                                 f"{tuple(s.shape)}")
            elif not batched:
                s = unsqueeze(s, 0)
            if s.shape[0] != batch:
                raise RuntimeError(f"Input batch size {batch} doesn't match hidden{k} batch "
                                   f"size {s.shape[0]}")
            if s.shape[1] != self.hidden_size:
                raise RuntimeError(f"hidden{k} has inconsistent hidden_size: got {s.shape[1]}, "
                                   f"expected {self.hidden_size}")
            prepared.append(s)
        c0 = prepared[1] if n_states == 2 else None
        hs, cs = _layer(mode, unsqueeze(x, 0), prepared[0], c0, self.weight_ih, self.weight_hh,
                        self.bias_ih, self.bias_hh, False)
        out = (hs[0],) if cs is None else (hs[0], cs[0])
        return out if batched else tuple(o[0] for o in out)


class RNNCell(RNNCellBase):
    """One Elman RNN step: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh).

    Shape:
        - input: (N, H_in) or (H_in); hidden: (N, H_out) or (H_out), zeros if omitted.
        - output: like hidden.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        mode = "RNN_TANH" if self.nonlinearity == "tanh" else "RNN_RELU"
        return self._step(mode, input, hx, 1)[0]


class LSTMCell(RNNCellBase):
    """One LSTM step; returns (h', c').

    Shape:
        - input: (N, H_in) or (H_in); (h, c): each (N, H_out) or (H_out), zeros if omitted.
        - output: (h', c') like (h, c).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input: Tensor, hx=None) -> tuple[Tensor, Tensor]:
        return self._step("LSTM", input, hx, 2)


class GRUCell(RNNCellBase):
    """One GRU step (torch's r, z, n gates).

    Shape:
        - input: (N, H_in) or (H_in); hidden: (N, H_out) or (H_out), zeros if omitted.
        - output: like hidden.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        return self._step("GRU", input, hx, 1)[0]

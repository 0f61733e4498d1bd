"""Sequence-model workloads (issue 7): a 2-layer LSTM and a TransformerEncoderLayer training
step, written once against the torch API like the rows of workloads.py, which lists them.

Both are plain SGD steps on a mean-squared output (no classifier head), so the time is the
recurrent or attention layer itself: forward, backward through every parameter, update.
"""
from __future__ import annotations

import numpy as np
from workloads import Workload


def _sgd_step(make_model, x_shape):
    """One SGD step of ``make_model(lib)`` on a fixed random float32 input."""
    def build(lib, device, rng):
        lib.manual_seed(0)
        model = make_model(lib).to(device)
        optimizer = lib.optim.SGD(model.parameters(), lr=0.01)
        x = lib.tensor(rng.standard_normal(x_shape, dtype=np.float32), device=device)

        def step():
            optimizer.zero_grad()
            out = model(x)
            out = out[0] if isinstance(out, tuple) else out  # (output, state) from the LSTM
            (out * out).mean().backward()
            optimizer.step()
        return step
    return build


def lstm2(lib):
    return lib.nn.LSTM(256, 256, num_layers=2)


def encoder_layer(lib):
    return lib.nn.TransformerEncoderLayer(256, 4, batch_first=True)


def _lstm_flops(steps, batch, size, layers) -> float:
    # Per layer: input and recurrent projections (2 GEMMs of 4*size outputs) forward, and
    # twice that backward (input and weight gradients).
    return 3 * layers * 2 * 2.0 * steps * batch * size * 4 * size


def _encoder_flops(batch, seq, d, ff) -> float:
    tokens = batch * seq
    linears = 2.0 * tokens * (4 * d * d + 2 * d * ff)      # q, k, v, out; feed-forward
    attention = 2 * 2.0 * batch * seq * seq * d             # scores and weighted values
    return 3 * (linears + attention)


def seq_workloads() -> list[Workload]:
    return [
        Workload("lstm2", "LSTM 2 layers, hidden 256, seq 64, batch 32, SGD step",
                 _sgd_step(lstm2, (64, 32, 256)), reps=7, flops=_lstm_flops(64, 32, 256, 2),
                 needs=("nn.LSTM",)),
        Workload("encoder_layer", "TransformerEncoderLayer d256, 4 heads, ff 2048, seq 128, "
                 "batch 32, SGD step", _sgd_step(encoder_layer, (32, 128, 256)), reps=5,
                 flops=_encoder_flops(32, 128, 256, 2048),
                 needs=("nn.TransformerEncoderLayer",)),
    ]

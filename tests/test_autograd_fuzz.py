"""Random chains of ops against torch: values, gradients and a second derivative.

Each seeded case builds a short chain of unary and binary ops on float64 inputs, then
compares the output, the gradients of both inputs and the gradient of ``sum(grad_x)``
(through ``create_graph``). Chains that torch itself refuses (shape mismatches) are skipped.
"""
import random

import numpy as np
import pytest

import gradforge

torch = pytest.importorskip("torch")

UNARY = [
    lambda lib, x: x.exp() * 0.1, lambda lib, x: x.tanh(), lambda lib, x: x.sigmoid(),
    lambda lib, x: (x.abs() + 0.5).log(), lambda lib, x: x.relu(), lambda lib, x: x * x,
    lambda lib, x: -x, lambda lib, x: x.sin(), lambda lib, x: (x.abs() + 0.1).sqrt(),
    lambda lib, x: x.clamp(-0.5, 0.5), lambda lib, x: x.softmax(-1), lambda lib, x: x.erf(),
    lambda lib, x: x.unsqueeze(0).squeeze(0), lambda lib, x: x ** 2,
    lambda lib, x: 2 ** x.clamp(-3, 3), lambda lib, x: lib.where(x > 0, x, x * 0.1),
    lambda lib, x: (x + 0.3) % 0.7, lambda lib, x: x.expand(2, *x.shape).sum(0),
    lambda lib, x: x.reshape(-1).reshape(x.shape), lambda lib, x: x.flatten(),
    lambda lib, x: x.permute(*reversed(range(x.ndim))),
    lambda lib, x: x.masked_fill(x > 0.5, 0.0), lambda lib, x: x[x > 0].sum() + x.sum(),
    lambda lib, x: (x * x + 1).rsqrt(),
]
REDUCING = [  # need at least one dimension
    lambda lib, x: x.log_softmax(0), lambda lib, x: x.cumsum(0),
    lambda lib, x: x[..., ::2], lambda lib, x: x.mean(-1, keepdim=True),
    lambda lib, x: x.max(-1, keepdim=True).values, lambda lib, x: x.norm(dim=-1) + 1,
    lambda lib, x: x.amax(0), lambda lib, x: x.logsumexp(-1), lambda lib, x: x.prod(-1),
    lambda lib, x: x[lib.tensor([0, 0, -1])], lambda lib, x: x.sort(-1).values,
    lambda lib, x: x.topk(1).values, lambda lib, x: x.min(0).values,
    lambda lib, x: x.repeat(*([2] * x.ndim)), lambda lib, x: lib.stack(x.split(1), 0).sum(0),
    lambda lib, x: x.gather(-1, lib.zeros(x.shape, dtype=lib.int64)),
    lambda lib, x: lib.einsum("...i,...i->...", x, x),
    lambda lib, x: x.index_select(0, lib.tensor([0, 0])),
]
BINARY = [
    lambda lib, x, y: x + y, lambda lib, x, y: x * y, lambda lib, x, y: x - y,
    lambda lib, x, y: x / (y.abs() + 0.5), lambda lib, x, y: lib.maximum(x, y),
    lambda lib, x, y: lib.minimum(x, y), lambda lib, x, y: lib.cat([x, y], -1),
    lambda lib, x, y: x @ y.t(),
]


def chain(seed):
    """The ops of one case: a list of (kind, index) drawn with ``seed``."""
    rng = random.Random(seed)
    kinds = [("binary", len(BINARY)), ("unary", len(UNARY)), ("reducing", len(REDUCING))]
    return [(kind, rng.randrange(n)) for kind, n in
            (rng.choices(kinds, weights=[3, 5, 4])[0] for _ in range(rng.randint(1, 5)))]


def run(lib, ops, x_np, y_np, create_graph=True):
    x = lib.tensor(x_np, requires_grad=create_graph)
    y = lib.tensor(y_np, requires_grad=create_graph)
    z = x
    for kind, i in ops:
        if kind == "binary":
            z = BINARY[i](lib, z, y)
        elif kind == "unary" or z.ndim:
            z = (UNARY if kind == "unary" else REDUCING)[i](lib, z)
    return x, y, z


@pytest.mark.parametrize("seed", range(150))
def test_random_chain_matches_torch(seed):
    shape = random.Random(-seed).choice([(3,), (2, 3), (3, 3), (2, 1, 3)])
    rng = np.random.default_rng(seed)
    x_np, y_np = rng.standard_normal(shape), rng.standard_normal(shape)
    ops = chain(seed)
    try:
        run(torch, ops, x_np, y_np, create_graph=False)
    except (RuntimeError, IndexError):
        pytest.skip("torch refuses this chain (shapes)")
    results = []
    for lib in (torch, gradforge):
        x, y, z = run(lib, ops, x_np, y_np)
        loss = (z * z).sum()
        gx, gy = lib.autograd.grad(loss, [x, y], allow_unused=True, create_graph=True)
        (hx,) = lib.autograd.grad(gx.sum(), x, allow_unused=True) if gx.requires_grad else (None,)
        results.append([None if t is None else t.detach().numpy() for t in (z, gx, gy, hx)])
    # Round-off scales with the magnitudes involved (second derivatives may cancel).
    scale = max(float(np.abs(r).max()) for r in results[0] if r is not None and r.size)
    for name, t, g in zip(("output", "grad x", "grad y", "second derivative"), *results):
        if t is None or g is None:
            assert t is None or not np.any(t), name   # torch's None means "all zero"
            assert g is None or not np.any(g), name
            continue
        np.testing.assert_allclose(g, t, rtol=1e-6, atol=1e-10 * max(scale, 1.0),
                                   err_msg=f"{name} for chain {ops}")

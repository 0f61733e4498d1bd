"""The torch oracle for whole modules: the same weights (through ``state_dict``), the same
inputs, then forward outputs, every parameter gradient and every input gradient compared.

``check_module(make, call, specs)`` builds ``make(lib)`` in torch and gradforge, loads
torch's ``state_dict`` into gradforge's module unchanged (strict), runs
``call(lib, module, *inputs)`` (any nesting of tuples of tensors, or None, as output) in
float64, and backpropagates the same random weighting of all outputs through both.
"""
from __future__ import annotations

import numpy as np
import pytest
from oracle import make_inputs

import gradforge


def flatten(out) -> list:
    """The tensors of a nested tuple/list output, in order (None entries dropped)."""
    if out is None:
        return []
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in flatten(o)]
    return [out]


def load_torch_weights(g_module, t_module) -> None:
    """Copy torch's state_dict into the gradforge module, keys unchanged, strictly."""
    state = {k: gradforge.tensor(v.detach().cpu().numpy()) for k, v in
             t_module.state_dict().items()}
    result = g_module.load_state_dict(state)
    assert not result.missing_keys and not result.unexpected_keys, result


def check_module(make, call, specs, *, seed=0, train=False, atol=1e-9, rtol=1e-7,
                 device="cpu"):
    """Compare ``call(lib, make(lib), *inputs)`` between torch and gradforge (float64)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    t_mod, g_mod = make(torch).double(), make(gradforge).double()
    t_names = [n for n, _ in t_mod.named_parameters()]
    assert [n for n, _ in g_mod.named_parameters()] == t_names
    load_torch_weights(g_mod, t_mod)
    g_mod.to(device)
    t_mod.train(train)
    g_mod.train(train)

    arrays = make_inputs(specs, seed, np.float64)
    wants = [a.dtype.kind == "f" for a in arrays]
    t_in = [torch.tensor(a, requires_grad=w) for a, w in zip(arrays, wants)]
    g_in = [gradforge.tensor(a, requires_grad=w, device=device) for a, w in zip(arrays, wants)]
    t_out, g_out = flatten(call(torch, t_mod, *t_in)), flatten(call(gradforge, g_mod, *g_in))
    assert len(t_out) == len(g_out)
    for k, (t, g) in enumerate(zip(t_out, g_out)):
        assert tuple(g.shape) == tuple(t.shape), (k, tuple(g.shape), tuple(t.shape))
        np.testing.assert_allclose(g.detach().cpu().numpy(), t.detach().numpy(), atol=atol,
                                   rtol=rtol, err_msg=f"output {k}")

    rng = np.random.default_rng(seed + 1)
    weights = [rng.standard_normal(tuple(t.shape)) for t in t_out]
    sum((t * torch.tensor(w)).sum() for t, w in zip(t_out, weights)).backward()
    sum((g * gradforge.tensor(w, device=device)).sum() for g, w in zip(g_out, weights)).backward()
    for (name, t_p), (_, g_p) in zip(t_mod.named_parameters(), g_mod.named_parameters()):
        assert g_p.grad is not None, f"{name} got no gradient"
        np.testing.assert_allclose(g_p.grad.cpu().numpy(), t_p.grad.numpy(), atol=atol,
                                   rtol=rtol, err_msg=f"gradient of {name}")
    for i, (t, g) in enumerate(zip(t_in, g_in)):
        if wants[i]:
            assert g.grad is not None, f"input {i} got no gradient"
            np.testing.assert_allclose(g.grad.cpu().numpy(), t.grad.numpy(), atol=atol,
                                       rtol=rtol, err_msg=f"gradient of input {i}")
    return t_mod, g_mod

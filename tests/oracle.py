"""The two test oracles: PyTorch (same lambda, both libraries) and float64 finite differences.

``compare(fn, inputs)`` applies ``fn(lib, *tensors)`` to torch and to gradforge and checks
the forward value, shape, dtype and the gradient of every input that requires grad.
``check_grad(fn, inputs)`` runs ``gradforge.autograd.gradcheck`` (central differences in
float64); ``check_grad(..., second_order=True)`` also runs ``gradgradcheck``.
"""
from __future__ import annotations

import numpy as np
import pytest

import gradforge

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def _to_list(x):
    return list(x) if isinstance(x, (tuple, list)) else [x]


def make_inputs(specs, seed=0, dtype=np.float64):
    """Host arrays from specs: a shape tuple (random normal) or an explicit array."""
    rng = np.random.default_rng(seed)
    out = []
    for s in specs:
        if isinstance(s, tuple):
            out.append(rng.standard_normal(s).astype(dtype))
        else:
            out.append(np.asarray(s))
    return out


def compare(fn, specs, *, seed=0, dtype=np.float64, grad=True, atol=1e-7, rtol=1e-6,
            device="cpu", grad_inputs=None, torch_fn=None):
    """Check ``fn(lib, *inputs)`` against PyTorch: values, shapes, dtypes and input grads."""
    torch = pytest.importorskip("torch")
    arrays = make_inputs(specs, seed, dtype)
    wants = [grad and a.dtype.kind == "f" and (grad_inputs is None or i in grad_inputs)
             for i, a in enumerate(arrays)]
    t_in = [torch.tensor(a, requires_grad=w) for a, w in zip(arrays, wants)]
    g_in = [gradforge.tensor(a, requires_grad=w, device=device) for a, w in zip(arrays, wants)]
    t_out = _to_list((torch_fn or fn)(torch, *t_in))
    g_out = _to_list(fn(gradforge, *g_in))
    assert len(t_out) == len(g_out)
    for t, g in zip(t_out, g_out):
        if not isinstance(t, torch.Tensor):
            assert t == g
            continue
        assert tuple(g.shape) == tuple(t.shape), (g.shape, t.shape)
        assert g.dtype.name == str(t.dtype).removeprefix("torch."), (g.dtype, t.dtype)
        np.testing.assert_allclose(g.detach().cpu().numpy(), t.detach().numpy(), atol=atol,
                                   rtol=rtol)
    if not any(wants):
        return
    diff = [(t, g) for t, g in zip(t_out, g_out)
            if isinstance(t, torch.Tensor) and t.requires_grad]
    if not diff:
        return
    rng = np.random.default_rng(seed + 1)
    seeds = [rng.standard_normal(tuple(t.shape)) for t, _ in diff]
    t_loss = sum((t * torch.tensor(s, dtype=t.dtype)).sum() for (t, _), s in zip(diff, seeds))
    g_loss = sum((g * gradforge.tensor(s, dtype=g.dtype, device=device)).sum()
                 for (_, g), s in zip(diff, seeds))
    t_loss.backward()
    g_loss.backward()
    for i, (t, g) in enumerate(zip(t_in, g_in)):
        if not wants[i]:
            continue
        if t.grad is None:
            assert g.grad is None or np.allclose(g.grad.cpu().numpy(), 0)
            continue
        assert g.grad is not None, f"input {i} got no gradient"
        np.testing.assert_allclose(g.grad.cpu().numpy(), t.grad.numpy(), atol=atol, rtol=rtol,
                                   err_msg=f"gradient of input {i}")


def check_grad(fn, specs, *, seed=0, second_order=True, device="cpu", grad_inputs=None,
               atol=1e-5, rtol=1e-3):
    """Finite-difference check (float64) of ``fn(gradforge, *inputs)``, first and second order."""
    arrays = make_inputs(specs, seed, np.float64)
    inputs = [gradforge.tensor(a, device=device,
                               requires_grad=a.dtype.kind == "f" and
                               (grad_inputs is None or i in grad_inputs))
              for i, a in enumerate(arrays)]

    def f(*xs):
        return fn(gradforge, *xs)

    assert gradforge.autograd.gradcheck(f, inputs, atol=atol, rtol=rtol)
    if second_order:
        assert gradforge.autograd.gradgradcheck(f, inputs, atol=atol, rtol=rtol)

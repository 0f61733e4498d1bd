"""The two test oracles: PyTorch (same lambda, both libraries) and float64 finite differences.

``compare(fn, specs)`` applies ``fn(lib, *tensors)`` to torch and to gradforge and checks
the forward value, shape, dtype and the gradient of every input that requires grad.
``check_grad(fn, specs)`` runs ``gradforge.autograd.gradcheck`` (central differences in
float64); with ``second_order=True`` (the default) it also runs ``gradgradcheck``.

An input spec is a shape tuple (standard normal in the test's float dtype), an array (used
as is), or one of the helpers below for values a test needs: ``uniform`` (e.g. positive
inputs for log), ``integers`` (indices, int operands) and ``mask`` (bool operands).
"""
from __future__ import annotations

import numpy as np
import pytest

import gradforge

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


class Spec:
    """A seeded random input: ``draw(rng, float_dtype)`` makes its array."""

    def __init__(self, shape, draw):
        self.shape, self._draw = tuple(shape), draw

    def draw(self, rng, dtype):
        return self._draw(rng, self.shape, dtype)

    def __repr__(self) -> str:
        return f"Spec{self.shape}"


def uniform(*shape, low: float = 0.5, high: float = 2.0, dtype=None) -> Spec:
    """Uniform floats in [low, high) (positive by default: log, sqrt, pow bases)."""
    return Spec(shape, lambda rng, s, dt: rng.uniform(low, high, s).astype(dtype or dt))


def normal(*shape, dtype) -> Spec:
    """Standard normal floats of a fixed dtype (float32 beside float64 operands ...)."""
    return Spec(shape, lambda rng, s, dt: rng.standard_normal(s).astype(dtype))


def integers(*shape, low: int = 0, high: int = 5, dtype=np.int64) -> Spec:
    """Integers in [low, high): indices, and integer operands for promotion cases."""
    return Spec(shape, lambda rng, s, dt: rng.integers(low, high, s).astype(dtype))


def mask(*shape) -> Spec:
    """Random booleans."""
    return Spec(shape, lambda rng, s, dt: rng.random(s) < 0.5)


def distinct(*shape) -> Spec:
    """Floats with no ties (for max/min/sort, whose index outputs differ only on ties)."""
    def draw(rng, s, dt):
        n = int(np.prod(s))
        return (rng.permutation(n).reshape(s) * 0.37 - n * 0.1).astype(dt)
    return Spec(shape, draw)


def _to_list(x):
    return list(x) if isinstance(x, (tuple, list)) else [x]


def make_inputs(specs, seed=0, dtype=np.float64):
    """Host arrays from specs (see the module docstring)."""
    rng = np.random.default_rng(seed)
    out = []
    for s in specs:
        if isinstance(s, tuple):
            out.append(rng.standard_normal(s).astype(dtype))
        elif isinstance(s, Spec):
            out.append(s.draw(rng, dtype))
        else:
            out.append(np.asarray(s))
    return out


def _dtype_name(t) -> str:
    return str(t.dtype).removeprefix("torch.")


def compare(fn, specs, *, seed=0, dtype=np.float64, grad=True, atol=1e-7, rtol=1e-6,
            device="cpu", grad_inputs=None, torch_fn=None):
    """Check ``fn(lib, *inputs)`` against PyTorch: values, shapes, dtypes and input grads.

    Args:
        fn: ``fn(lib, *tensors)`` where ``lib`` is ``torch`` or ``gradforge``.
        specs: one input spec per tensor (see the module docstring).
        grad: also compare the gradients of every floating input (``grad_inputs`` limits
            them to those positions).
        torch_fn: a different callable for torch, where the spelling must differ.
    """
    torch = pytest.importorskip("torch")
    arrays = make_inputs(specs, seed, dtype)
    wants = [grad and a.dtype.kind == "f" and (grad_inputs is None or i in grad_inputs)
             for i, a in enumerate(arrays)]
    t_in = [torch.tensor(a, requires_grad=w) for a, w in zip(arrays, wants)]
    g_in = [gradforge.tensor(a, requires_grad=w, device=device) for a, w in zip(arrays, wants)]
    t_out = _to_list((torch_fn or fn)(torch, *t_in))
    g_out = _to_list(fn(gradforge, *g_in))
    assert len(t_out) == len(g_out)
    for k, (t, g) in enumerate(zip(t_out, g_out)):
        if not isinstance(t, torch.Tensor):
            assert t == g, f"output {k}: {g!r} != torch's {t!r}"
            continue
        assert isinstance(g, gradforge.Tensor), f"output {k} is a {type(g).__name__}"
        assert tuple(g.shape) == tuple(t.shape), (k, g.shape, t.shape)
        assert g.dtype.name == _dtype_name(t), (k, g.dtype, t.dtype)
        assert g.requires_grad == t.requires_grad, (k, "requires_grad", g.requires_grad)
        np.testing.assert_allclose(g.detach().cpu().numpy(), t.detach().numpy(), atol=atol,
                                   rtol=rtol, err_msg=f"output {k}")
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
        assert g.grad.dtype.name == _dtype_name(t.grad), (i, g.grad.dtype, t.grad.dtype)
        np.testing.assert_allclose(g.grad.cpu().numpy(), t.grad.numpy(), atol=atol, rtol=rtol,
                                   err_msg=f"gradient of input {i}")


def grad_inputs_of(specs, seed=0, device="cpu", grad_inputs=None):
    """float64 gradforge tensors for ``specs``; the floating ones require grad."""
    arrays = make_inputs(specs, seed, np.float64)
    return [gradforge.tensor(a, device=device,
                             requires_grad=a.dtype.kind == "f" and
                             (grad_inputs is None or i in grad_inputs))
            for i, a in enumerate(arrays)]


def check_grad(fn, specs, *, seed=0, second_order=True, device="cpu", grad_inputs=None,
               atol=1e-5, rtol=1e-3, eps=1e-6):
    """Finite-difference check (float64) of ``fn(gradforge, *inputs)``, first and second order."""
    inputs = grad_inputs_of(specs, seed, device, grad_inputs)

    def f(*xs):
        return fn(gradforge, *xs)

    assert gradforge.autograd.gradcheck(f, inputs, eps=eps, atol=atol, rtol=rtol)
    if second_order:
        assert gradforge.autograd.gradgradcheck(f, inputs, eps=eps, atol=atol, rtol=rtol)

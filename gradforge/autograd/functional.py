"""``autograd.functional``: vector-Jacobian and Jacobian-vector products of a function."""
from __future__ import annotations

from . import function as _function
from .engine import grad as _grad


def _tuple(x):
    return x if isinstance(x, tuple) else tuple(x) if isinstance(x, list) else (x,)


def _prepared(inputs, create_graph):
    """Inputs that require grad: the caller's tensors under create_graph, else fresh leaves."""
    return tuple(x if create_graph and x.requires_grad else x.detach().requires_grad_(True)
                 for x in inputs)


def _check_strict(outs) -> None:
    """``strict=True``: every output must depend on the inputs."""
    for i, o in enumerate(outs):
        if not o.requires_grad:
            raise RuntimeError(f"Output {i} of the user-provided function does not require "
                               "gradients. The outputs must be computed in a differentiable "
                               "manner from the input when running in strict mode.")


def vjp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(inputs), v^T J)``; ``v`` may be omitted for a scalar output."""
    single = not isinstance(inputs, (tuple, list))
    inputs = _prepared(_tuple(inputs), create_graph)
    outputs = func(*inputs)
    outs = _tuple(outputs)
    if strict:
        _check_strict(outs)
    vs = (None,) * len(outs) if v is None else _tuple(v)
    # Outputs that do not depend on the inputs contribute nothing (torch's strict=False).
    used = [(o, vi) for o, vi in zip(outs, vs) if o.requires_grad]
    grads = _grad([o for o, _ in used], inputs, [vi for _, vi in used],
                  create_graph=create_graph, allow_unused=True) if used else (None,) * len(inputs)
    unused = [k for k, g in enumerate(grads) if g is None]
    if strict and unused:
        raise RuntimeError("The output of the user-provided function is independent of input "
                           f"{unused[0]}. This is not allowed in strict mode.")
    grads = tuple(g if g is not None else x.detach() * 0 for g, x in zip(grads, inputs))
    if not create_graph:
        outputs = tuple(o.detach() for o in outs) if isinstance(outputs, tuple) else \
            outputs.detach()
        grads = tuple(g.detach() for g in grads)
    return outputs, grads[0] if single else grads


def jvp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(inputs), J v)`` by the double-vjp trick (differentiating a vjp in its vector)."""
    T = _function._TENSOR
    inputs = _prepared(_tuple(inputs), True)
    outputs = func(*inputs)
    outs = _tuple(outputs)
    if strict:
        _check_strict(outs)
    if v is None:
        if len(inputs) != 1 or inputs[0]._data.size != 1:
            raise RuntimeError("The vector v can only be None if the input to the user-provided "
                               "function is a single Tensor with a single element.")
        v = (inputs[0].detach() * 0 + 1,)
    vs = _tuple(v)
    # u is a dummy cotangent; vjp(u) is linear in u, and its gradient wrt u along v is J v.
    # Outputs that do not depend on the inputs have a zero J v (torch's strict=False).
    used = [o for o in outs if o.requires_grad]
    us = tuple(T._make(o._device.xp.zeros_like(o._data), o._device, True) for o in used)
    g = _grad(used, inputs, us, create_graph=True, allow_unused=True) if used else ()
    pairs = [(gi, vi) for gi, vi in zip(g, vs) if gi is not None]
    jv = _grad([p[0] for p in pairs], us, [p[1] for p in pairs], create_graph=create_graph,
               allow_unused=True) if pairs else (None,) * len(us)
    by_output = dict(zip(map(id, used), jv))
    jv = tuple(by_output.get(id(o)) for o in outs)
    jv = tuple(j if j is not None else o.detach() * 0 for j, o in zip(jv, outs))
    if not create_graph:
        outputs = tuple(o.detach() for o in outs) if isinstance(outputs, tuple) else \
            outputs.detach()
        jv = tuple(j.detach() for j in jv)
    return outputs, jv[0] if not isinstance(outputs, tuple) else jv

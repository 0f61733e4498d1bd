"""Numerical gradient checks: ``gradcheck`` and ``gradgradcheck`` (float64 central differences).

The analytical Jacobian comes from one backward per output element; the numerical one from
perturbing each input element by +-eps. Tolerances are torch's defaults.
"""
from __future__ import annotations

from . import function as _function
from .engine import grad as _grad


class GradcheckError(RuntimeError):
    """Raised by gradcheck when analytical and numerical gradients disagree."""


def _as_tuple(x):
    return x if isinstance(x, tuple) else tuple(x) if isinstance(x, list) else (x,)


def _flat_outputs(func, inputs):
    T = _function._TENSOR
    return tuple(o for o in _as_tuple(func(*inputs)) if isinstance(o, T))


def _numerical(func, inputs, k, eps):
    """Columns d out / d inputs[k][j], one per input element, as flat host arrays."""
    import numpy as np
    data = inputs[k]._data  # perturbed in place, element by element (any memory layout)
    cols = []
    for j in range(data.size):
        at = np.unravel_index(j, data.shape)
        orig = data[at].item()
        data[at] = orig + eps
        plus = [o._device.backend.to_host(o._data).astype("float64").ravel()
                for o in _flat_outputs(func, inputs)]
        data[at] = orig - eps
        minus = [o._device.backend.to_host(o._data).astype("float64").ravel()
                 for o in _flat_outputs(func, inputs)]
        data[at] = orig
        cols.append([(p - m) / (2 * eps) for p, m in zip(plus, minus)])
    return cols


def gradcheck(func, inputs, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True, nondet_tol: float = 0.0, **_ignored) -> bool:
    """Check the gradients of ``func`` at ``inputs`` against finite differences."""
    import numpy as np
    T = _function._TENSOR
    inputs = _as_tuple(inputs)
    diff_idx = [k for k, x in enumerate(inputs) if isinstance(x, T) and x.requires_grad]
    if not diff_idx:
        raise ValueError("gradcheck expects at least one input tensor to require gradient, but "
                         "none of them have requires_grad=True.")
    for k in diff_idx:
        if inputs[k]._data.dtype != np.float64:
            import warnings
            warnings.warn(f"Input #{k} requires gradient and is not a double precision floating "
                          "point tensor; gradcheck may fail", stacklevel=2)
    outputs = _flat_outputs(func, inputs)
    for k in diff_idx:
        numerical = _numerical(func, inputs, k, eps)
        x = inputs[k]
        for oi, out in enumerate(outputs):
            n_out = out._data.size
            num = np.array([col[oi] for col in numerical]).reshape(x._data.size, n_out)
            ana = np.zeros_like(num)
            if out.requires_grad:
                for m in range(n_out):
                    seed = np.zeros(n_out)
                    seed[m] = 1.0
                    g = T._make(out._device.backend.asarray(
                        seed.reshape(out._data.shape).astype(out._data.dtype)), out._device)
                    (gx,) = _grad(out, x, g, retain_graph=True, allow_unused=True)
                    if gx is not None:
                        ana[:, m] = gx._device.backend.to_host(gx._data).astype("float64").ravel()
            if not np.allclose(ana, num, rtol=rtol, atol=atol):
                worst = np.abs(ana - num).max()
                msg = (f"Jacobian mismatch for output {oi} with respect to input {k},\n"
                       f"numerical:{num}\nanalytical:{ana}\n(max abs difference {worst:.3g})")
                if raise_exception:
                    raise GradcheckError(msg)
                return False
    return True


def gradgradcheck(func, inputs, grad_outputs=None, *, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, raise_exception: bool = True, **_ignored) -> bool:
    """Check second derivatives: gradcheck of the map (inputs, v) -> vjp(func, inputs, v)."""
    import numpy as np
    T = _function._TENSOR
    inputs = _as_tuple(inputs)
    outputs = [o for o in _flat_outputs(func, inputs) if o.requires_grad]
    if grad_outputs is None:
        rng = np.random.default_rng(0)
        grad_outputs = tuple(
            T._make(o._device.backend.asarray(rng.standard_normal(o._data.shape)
                                              .astype(o._data.dtype)), o._device, True)
            for o in outputs)
    grad_outputs = _as_tuple(grad_outputs)
    n_in = len(inputs)
    diff_idx = [k for k, x in enumerate(inputs) if isinstance(x, T) and x.requires_grad]

    def first_order(*args):
        xs, vs = args[:n_in], args[n_in:]
        outs = [o for o in _flat_outputs(func, xs) if o.requires_grad]
        grads = _grad(outs, [xs[k] for k in diff_idx], vs, create_graph=True,
                      allow_unused=True)
        return tuple(g for g in grads if g is not None)

    return gradcheck(first_order, inputs + grad_outputs, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception)

"""``repr`` of a tensor in PyTorch's format: ``tensor([1., 2.], requires_grad=True)``."""
from __future__ import annotations

import numpy as np

from ..backend.dtypes import get_default_dtype, int64, bool_


def tensor_repr(t) -> str:
    data = t._device.backend.to_host(t._data)
    prefix = "tensor("
    if data.dtype.kind == "f":
        finite = data[np.isfinite(data)]
        integral = finite.size == 0 or bool(np.all(finite == np.round(finite)))
        big = finite.size and (np.abs(finite).max() >= 1e8 or
                               (np.abs(finite[finite != 0]).min(initial=1) < 1e-4))
        if integral and not big:
            fmt = {"float_kind": lambda v: f"{v:.0f}." if np.isfinite(v) else str(v)}
        elif big:
            fmt = {"float_kind": lambda v: f"{v:.4e}"}
        else:
            fmt = {"float_kind": lambda v: f"{v:.4f}"}
        body = np.array2string(data, separator=", ", prefix=prefix, formatter=fmt,
                               threshold=1000, edgeitems=3, max_line_width=80)
    else:
        body = np.array2string(data, separator=", ", prefix=prefix, threshold=1000,
                               edgeitems=3, max_line_width=80)
    extras = []
    if t._device.type != "cpu":
        extras.append(f"device='{t._device}'")
    dt = t.dtype
    if dt not in (get_default_dtype(), int64, bool_) or data.size == 0:
        if not (data.size == 0 and dt is get_default_dtype()):
            extras.append(f"dtype=gradforge.{dt.name}")
    if t.grad_fn is not None:
        extras.append(f"grad_fn=<{t.grad_fn.name()}>")
    elif t.requires_grad:
        extras.append("requires_grad=True")
    return prefix + body + "".join(", " + e for e in extras) + ")"

"""``repr`` of a tensor in PyTorch's format: ``tensor([1., 2.], requires_grad=True)``.

The rules are torch's (``torch/_tensor_str.py``, default print options): one number format
for the whole tensor, chosen from its non-zero finite values (integral floats print as
``1.``, a wide range or tiny or huge values switch to ``1.0000e+05``, else four decimals),
elements right-aligned to a common width, lines wrapped at 80 columns, and tensors of more
than 1,000 elements summarised with their first and last 3 entries per dimension.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend.dtypes import bool_, get_default_dtype, int64

_PRECISION, _THRESHOLD, _EDGEITEMS, _LINEWIDTH = 4, 1000, 3, 80


class _Formatter:
    """Chooses the number format and width from the values that will be printed."""

    def __init__(self, values: np.ndarray):
        self.floating = values.dtype.kind == "f"
        self.int_mode, self.sci_mode, self.width = True, False, 1
        flat = values.reshape(-1)
        if not self.floating:
            self.width = max((len(str(v)) for v in flat.tolist()), default=1)
            return
        finite = flat[np.isfinite(flat) & (flat != 0)].astype(np.float64)
        if finite.size == 0:
            return
        absolute = np.abs(finite)
        lo, hi = absolute.min(), absolute.max()
        self.int_mode = bool(np.all(finite == np.ceil(finite)))
        if self.int_mode:
            self.sci_mode = hi / lo > 1000.0 or hi > 1.0e8
        else:
            self.sci_mode = hi / lo > 1000.0 or hi > 1.0e8 or lo < 1.0e-4
        for v in finite.tolist():
            if self.sci_mode:
                n = len(f"{v:.{_PRECISION}e}")
            elif self.int_mode:
                n = len(f"{v:.0f}") + 1
            else:
                n = len(f"{v:.{_PRECISION}f}")
            self.width = max(self.width, n)

    def format(self, value) -> str:
        if not self.floating:
            text = str(value)
        elif self.sci_mode:
            text = f"{value:{self.width}.{_PRECISION}e}"
        elif self.int_mode:
            text = f"{value:.0f}" + ("" if math.isinf(value) or math.isnan(value) else ".")
        else:
            text = f"{value:.{_PRECISION}f}"
        return " " * (self.width - len(text)) + text


def _summarized(data: np.ndarray) -> np.ndarray:
    """The elements that a summarised print shows (first and last edge items per dim)."""
    if data.ndim == 0:
        return data
    if data.shape[0] > 2 * _EDGEITEMS:
        data = np.concatenate([data[:_EDGEITEMS], data[-_EDGEITEMS:]])
    if data.ndim == 1:
        return data
    return np.stack([_summarized(row) for row in data])


def _vector(data, indent: int, summarize: bool, fmt: _Formatter) -> str:
    per_line = max(1, (_LINEWIDTH - indent) // (fmt.width + 2))
    values = data.tolist()
    if summarize and len(values) > 2 * _EDGEITEMS:
        items = ([fmt.format(v) for v in values[:_EDGEITEMS]] + [" ..."]
                 + [fmt.format(v) for v in values[-_EDGEITEMS:]])
    else:
        items = [fmt.format(v) for v in values]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _nested(data, indent: int, summarize: bool, fmt: _Formatter) -> str:
    if data.ndim == 0:
        return fmt.format(data.item())
    if data.ndim == 1:
        return _vector(data, indent, summarize, fmt)
    n = data.shape[0]
    if summarize and n > 2 * _EDGEITEMS:
        rows = ([_nested(data[i], indent + 1, summarize, fmt) for i in range(_EDGEITEMS)]
                + ["..."]
                + [_nested(data[i], indent + 1, summarize, fmt) for i in range(n - _EDGEITEMS, n)])
    else:
        rows = [_nested(data[i], indent + 1, summarize, fmt) for i in range(n)]
    return "[" + ("," + "\n" * (data.ndim - 1) + " " * (indent + 1)).join(rows) + "]"


def _with_suffixes(text: str, suffixes: list, indent: int) -> str:
    parts = [text]
    last_line = len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if last_line + len(suffix) + 2 > _LINEWIDTH:
            parts.append(",\n" + " " * indent + suffix)
            last_line = indent + len(suffix)
        else:
            parts.append(", " + suffix)
            last_line += len(suffix) + 2
    return "".join(parts) + ")"


def tensor_repr(t) -> str:
    """The repr of tensor ``t``, as torch prints it."""
    data = t._device.backend.to_host(t._data)
    prefix = "tensor("
    indent = len(prefix)
    suffixes = []
    if t._device.type != "cpu":
        suffixes.append(f"device='{t._device}'")
    dt = t.dtype
    if data.size == 0:
        if data.ndim != 1:
            suffixes.append(f"size={tuple(data.shape)}")
        if dt is not get_default_dtype():
            suffixes.append(f"dtype=gradforge.{dt.name}")
        body = "[]"
    else:
        if dt not in (get_default_dtype(), int64, bool_):
            suffixes.append(f"dtype=gradforge.{dt.name}")
        summarize = data.size > _THRESHOLD
        fmt = _Formatter(_summarized(data) if summarize else data)
        body = _nested(data, indent, summarize, fmt)
    if t.grad_fn is not None:
        suffixes.append(f"grad_fn=<{t.grad_fn.name()}>")
    elif t.requires_grad:
        suffixes.append("requires_grad=True")
    return _with_suffixes(prefix + body, suffixes, indent)

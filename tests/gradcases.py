"""The gradient-case registry: a float64 finite-difference case for every differentiable
``Function`` in gradforge, first and second order.

To register cases, a test module defines a module-level table ``GRAD_CASES``::

    GRAD_CASES = {
        "Exp": [(lambda lib, x: x.exp(), [(2, 3)])],
        "MaxPool2d": [case(lambda lib, x: lib.nn.functional.max_pool2d(x, 2),
                           [distinct(1, 1, 4, 4)], atol=1e-4)],
    }

A key names a Function class: its class name, or ``"module:Class"`` (e.g.
``"gradforge.ops.conv:Conv2d"``) where two classes share a name. A value is a list of cases,
each a ``(fn, specs)`` pair or a ``case(...)`` with options. ``fn(lib, *inputs)`` must use
the Function (checked), and ``specs`` are oracle input specs; floating inputs get float64
data and require grad. ``tests/test_autograd_registry.py`` runs every case (gradcheck and
gradgradcheck) and fails when a differentiable Function has none. A forward-only op sets
``differentiable = False`` on its class instead.
"""
from __future__ import annotations

import importlib
import pkgutil
import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import gradforge
from gradforge.autograd import Function

TESTS = Path(__file__).resolve().parent


@dataclass
class GradCase:
    """One finite-difference check of ``fn(lib, *inputs)``."""

    fn: object
    specs: list
    atol: float = 1e-5
    rtol: float = 1e-3
    eps: float = 1e-6
    grad_inputs: tuple | None = None
    first_order_only: str = ""        # why the second order is not checked (rare)
    needs_cuda: bool = False
    # filled in by collect():
    key: object = None
    module: str = ""
    marks: list = field(default_factory=list)


def case(fn, specs, *, atol: float = 1e-5, rtol: float = 1e-3, eps: float = 1e-6,
         grad_inputs=None, first_order_only: str = "", needs_cuda: bool = False) -> GradCase:
    """A case with options: tolerances and finite-difference step (e.g. for ops that compute
    in lower precision), which inputs to differentiate, CUDA only, or first order only (with
    the reason)."""
    return GradCase(fn, list(specs), atol, rtol, eps, grad_inputs, first_order_only,
                    needs_cuda)


def _as_case(entry) -> GradCase:
    if isinstance(entry, GradCase):
        return entry
    fn, specs = entry
    return case(fn, specs)


def import_gradforge() -> list[str]:
    """Import every module of the package, so that all Function subclasses exist; returns
    the modules that failed to import, with their error."""
    failures = []
    for info in pkgutil.walk_packages(gradforge.__path__, "gradforge."):
        try:
            importlib.import_module(info.name)
        except Exception as e:  # noqa: BLE001  reported by the coverage test
            failures.append(f"{info.name}: {type(e).__name__}: {e}")
    return failures


def gradforge_functions() -> list[type]:
    """Every Function subclass defined in gradforge (recursively), in a stable order."""
    found, stack = set(), [Function]
    while stack:
        for sub in stack.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                stack.append(sub)
    ours = [c for c in found if c.__module__.split(".")[0] == "gradforge"]
    return sorted(ours, key=qualified)


def needs_cases(cls: type) -> bool:
    """Differentiable and concrete: forward-only ops say so with ``differentiable = False``,
    and an abstract base (no forward of its own) cannot be applied."""
    return cls.differentiable and cls.forward is not Function.forward


def qualified(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def resolve(key, classes: list[type]) -> type:
    """The Function class a GRAD_CASES key names (a class, a name or "module:Class")."""
    if isinstance(key, type):
        return key
    if ":" in key:
        matches = [c for c in classes if qualified(c).endswith(key)]
    else:
        matches = [c for c in classes if c.__name__ == key]
    if len(matches) != 1:
        names = ", ".join(qualified(c) for c in matches) or "no Function of that name"
        raise LookupError(f"GRAD_CASES key {key!r} must name exactly one gradforge Function "
                          f"({names}); use 'module:Class'")
    return matches[0]


def case_modules() -> list[str]:
    """The test modules that declare a GRAD_CASES table (at the start of a line)."""
    table = re.compile(r"^GRAD_CASES\b", re.MULTILINE)
    return sorted(p.stem for p in TESTS.glob("test_*.py") if table.search(p.read_text()))


def collect():
    """``(cases, errors)``: every registered case (with ``key`` resolved to a class) and the
    problems met while collecting (modules that fail to import, unknown keys)."""
    errors = import_gradforge()
    classes = gradforge_functions()
    cases = []
    for name in case_modules():
        try:
            table = importlib.import_module(name).GRAD_CASES
        except Exception:  # noqa: BLE001  reported by the coverage test
            errors.append(f"tests/{name}.py: {traceback.format_exc(limit=1)}")
            continue
        for key, entries in table.items():
            try:
                cls = resolve(key, classes)
            except LookupError as e:
                errors.append(f"tests/{name}.py: {e}")
                continue
            for entry in entries:
                c = _as_case(entry)
                c.key, c.module = cls, name
                cases.append(c)
    return cases, errors


def graph_functions(outputs) -> set[type]:
    """The Function classes in the graph behind ``outputs``."""
    nodes = {o.grad_fn for o in outputs if isinstance(o, gradforge.Tensor) and o.grad_fn}
    stack, seen = list(nodes), set(nodes)
    while stack:
        for edge in stack.pop().next_edges:
            if edge is not None and isinstance(edge[0], Function) and edge[0] not in seen:
                seen.add(edge[0])
                stack.append(edge[0])
    return {type(n) for n in seen}

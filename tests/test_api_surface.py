"""The drop-in target: every name of ``shared/api/torch-surface.txt`` exists in gradforge.

Each line is ``owner: attribute`` or ``owner: name(arg, ...)``: the attribute is reached
attribute by attribute from the owner (a module or class path), and the listed arguments must
be accepted by keyword (a parameter of that name, or ``**kwargs``). Instance attributes
(``nn.Module: training``) are looked up on an instance. The list lives beside the repository
(``../shared``, as in CI); without it the test skips and says where it looked.
"""
from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

import gradforge

SURFACE = Path(__file__).resolve().parents[2] / "shared" / "api" / "torch-surface.txt"
_LINE = re.compile(r"^([\w.]+):\s*([\w.]+)(?:\((.*)\))?\s*$")


def _entries() -> list:
    if not SURFACE.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no {SURFACE}"))]
    entries = []
    for number, line in enumerate(SURFACE.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        assert match, f"torch-surface.txt:{number}: cannot parse {line!r}"
        owner, name, args = match.groups()
        args = tuple(a.strip() for a in args.split(",") if a.strip()) if args else ()
        entries.append(pytest.param((owner, name, args), id=f"{owner}:{name}"))
    return entries


def _resolve(path: str):
    parts = path.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], 1):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            obj = importlib.import_module(".".join(parts[:i + 1]))
    return obj


def _instance(cls):
    """An instance for instance attributes: a module, or an optimizer over one parameter."""
    if issubclass(cls, gradforge.nn.Module):
        return cls()
    if issubclass(cls, gradforge.optim.Optimizer):
        return gradforge.optim.SGD([gradforge.zeros(1, requires_grad=True)], lr=0.1)
    return None


@pytest.mark.parametrize("entry", _entries())
def test_torch_name_exists_with_its_keyword_arguments(entry):
    owner_path, name, args = entry
    owner = _resolve(owner_path)
    obj = owner
    for part in name.split("."):
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        instance = _instance(obj) if inspect.isclass(obj) else None
        assert instance is not None and hasattr(instance, part), \
            f"{owner_path}.{name}: gradforge has no {part!r}"
        obj = getattr(instance, part)
    if not args:
        return
    assert callable(obj), f"{owner_path}.{name} is not callable"
    target = obj.__init__ if inspect.isclass(obj) else obj
    parameters = inspect.signature(target).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    keyword = {n for n, p in parameters.items()
               if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                             inspect.Parameter.KEYWORD_ONLY)}
    missing = [a for a in args if a not in keyword]
    assert not missing, f"{owner_path}.{name} does not take {missing} by keyword"

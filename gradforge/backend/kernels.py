"""Where the CUDA kernel sources are: the one lookup rule shared by the loader and the tests.

An installed wheel carries them as ``gradforge/_kernels/*.cu`` (copied by setup.py); a source
checkout or an editable install reads them from the repository's top-level ``kernels/``.
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent


def kernel_dir() -> Path:
    """The folder holding the ``.cu`` files."""
    for candidate in (_PACKAGE / "_kernels", _PACKAGE.parent / "kernels"):
        if candidate.is_dir() and any(candidate.glob("*.cu")):
            return candidate
    raise FileNotFoundError(
        f"gradforge's CUDA kernel sources were not found in {_PACKAGE / '_kernels'} or "
        f"{_PACKAGE.parent / 'kernels'}; reinstall the package")


def kernel_source(filename: str) -> str:
    """The text of one kernel file, e.g. ``kernel_source("im2col.cu")``."""
    path = kernel_dir() / filename
    if not path.is_file():
        raise FileNotFoundError(f"no CUDA kernel file {filename!r} in {path.parent}")
    return path.read_text()

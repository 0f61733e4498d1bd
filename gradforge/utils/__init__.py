"""``gradforge.utils``: helpers that sit on top of tensors (the data-loading pipeline)."""
from . import data

__all__ = ["data"]

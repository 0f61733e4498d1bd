"""Grad mode: the one global flag that says whether ops record the graph.

``no_grad``, ``enable_grad``, ``set_grad_enabled`` and ``inference_mode`` work as context
managers and as decorators, like PyTorch's.
"""
from __future__ import annotations

import functools

__all__ = ["enable_grad", "inference_mode", "is_grad_enabled", "no_grad", "set_grad_enabled"]


class _State:
    __slots__ = ("enabled",)

    def __init__(self):
        self.enabled = True


STATE = _State()


def is_grad_enabled() -> bool:
    """True when new ops record the graph for backward."""
    return STATE.enabled


class _GradModeContext:
    """Base of the grad-mode switches: a context manager that is also a decorator."""

    _target = True

    def __enter__(self):
        self._prev = STATE.enabled
        STATE.enabled = self._target
        return self

    def __exit__(self, *exc):
        STATE.enabled = self._prev
        return False

    def __call__(self, fn):
        target = self._target

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            prev = STATE.enabled
            STATE.enabled = target
            try:
                return fn(*args, **kwargs)
            finally:
                STATE.enabled = prev
        return wrapper


class no_grad(_GradModeContext):
    """Disable graph recording inside the block (evaluation, optimizer updates)."""

    _target = False


class enable_grad(_GradModeContext):
    """Enable graph recording inside the block, even within ``no_grad``."""

    _target = True


class set_grad_enabled(_GradModeContext):
    """Set grad mode to ``mode``; as a function call it takes effect immediately, as in torch."""

    def __init__(self, mode: bool):
        self._prev = STATE.enabled
        self._target = bool(mode)
        STATE.enabled = self._target

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        STATE.enabled = self._prev
        return False

    def __call__(self, fn):
        # Used as a decorator, the mode applies inside ``fn`` only: undo the switch made now.
        STATE.enabled = self._prev
        return super().__call__(fn)


class inference_mode(_GradModeContext):
    """Like ``no_grad`` (gradforge has no separate inference tensors).

    ``inference_mode(False)`` enables grad instead, as in torch.
    """

    def __init__(self, mode: bool = True):
        self._target = not mode

"""Grad mode: the one global flag that says whether ops record the graph.

``no_grad``, ``enable_grad``, ``set_grad_enabled`` and ``inference_mode`` work as context
managers and as decorators, like PyTorch's.
"""
from __future__ import annotations

import functools
import inspect

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
        if inspect.isgeneratorfunction(fn):
            return _generator(fn, target)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            prev = STATE.enabled
            STATE.enabled = target
            try:
                return fn(*args, **kwargs)
            finally:
                STATE.enabled = prev
        return wrapper


def _generator(fn, target: bool):
    """Decorate a generator function: the mode holds while it runs, not between its yields
    (as torch)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        gen = fn(*args, **kwargs)
        step, value = gen.send, None
        while True:
            prev = STATE.enabled
            STATE.enabled = target
            try:
                value = step(value)
            except StopIteration as stop:
                return stop.value
            finally:
                STATE.enabled = prev
            try:
                value = yield value
                step = gen.send
            except GeneratorExit:
                gen.close()
                raise
            except BaseException as exc:
                step, value = gen.throw, exc
    return wrapper


class _NoParamDecorator(_GradModeContext):
    """A switch that also decorates without parentheses (``@no_grad`` as ``@no_grad()``)."""

    def __new__(cls, orig_func=None):
        if orig_func is None:
            return super().__new__(cls)
        return cls()(orig_func)


class no_grad(_NoParamDecorator):
    """Disable graph recording inside the block (evaluation, optimizer updates)."""

    _target = False


class enable_grad(_NoParamDecorator):
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

    ``inference_mode(False)`` enables grad instead, as in torch; ``@inference_mode`` without
    parentheses decorates as ``@inference_mode()``.
    """

    def __new__(cls, mode=True):
        if isinstance(mode, bool):
            return super().__new__(cls)
        return cls()(mode)

    def __init__(self, mode: bool = True):
        self._target = not mode

"""``Function``: one differentiable op, and the node that records it in the graph.

Every op in gradforge and every user-defined ``autograd.Function`` is a subclass with two
static methods side by side, as in PyTorch:

- ``forward(ctx, *args)`` runs with grad mode off. Built-in ops read their inputs' arrays
  (``x._data``) and return an array; user functions may use
  tensor ops and return tensors. ``ctx.save_for_backward`` keeps what backward needs.
- ``backward(ctx, *grad_outputs)`` is written with tensor ops, so that the same formula
  differentiates again under ``create_graph=True``. It returns one gradient (or None) per
  positional argument of ``forward``.

``apply`` creates the node (``ctx``), runs ``forward``, wraps the result and links the node to
the nodes of its inputs. The node is the ``grad_fn`` of its outputs.
"""
from __future__ import annotations

import traceback

from .grad_mode import STATE

# The Tensor class, registered by gradforge.tensor when it is imported. autograd sits below
# tensor in the import order, so it is handed the class instead of importing it.
_TENSOR: type = None  # type: ignore[assignment]

_anomaly = {"enabled": False}


def register_tensor_class(cls: type) -> None:
    global _TENSOR
    _TENSOR = cls


class SavedTensor:
    """A tensor saved for backward, with the version it had when saved.

    Inputs are kept as the tensor object itself. An output of the same node is kept as its
    array and rebuilt at unpacking, so the graph holds no reference cycle (node -> output ->
    node) and memory is freed by reference counting alone.
    """

    __slots__ = ("tensor", "array", "vc", "version", "device")

    def __init__(self, tensor, output_of=None):
        self.vc = tensor._vc
        self.version = tensor._vc[0]
        if output_of is None:
            self.tensor, self.array, self.device = tensor, None, None
        else:
            self.tensor, self.array, self.device = None, tensor._data, tensor._device

    def unpack(self, node):
        if self.vc[0] != self.version:
            t = self.tensor
            shape = list(t.shape if t is not None else self.array.shape)
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: [{type(node).__name__} saved a tensor of shape {shape}] is "
                f"at version {self.vc[0]}; expected version {self.version} instead. Hint: the "
                "operation that failed to compute its gradient is "
                f"{type(node).__name__}.backward; avoid the in-place change or clone first.")
        if self.tensor is not None:
            return self.tensor
        return _TENSOR._make(self.array, self.device, True, node, 0, self.vc)


class Function:
    """Base class of differentiable ops (``autograd.Function`` in PyTorch).

    Subclass it with static ``forward(ctx, *args)`` and ``backward(ctx, *grad_outputs)``
    and call ``MyFunction.apply(*args)``.
    """

    #: the output is a view of the first argument and shares its version counter.
    is_view = False
    #: append the output to ``saved_tensors`` (for derivatives cheaper from the result).
    saves_output = False
    #: False for forward-only ops (comparisons, argmax ...): outputs never require grad, and
    #: the test suite's gradient-coverage check skips the class.
    differentiable = True

    def __init__(self):
        self._saved = ()
        self._released = False
        self._materialize = True
        self._non_differentiable = ()
        self.next_edges = ()
        self.needs_input_grad = ()
        self.device = None

    # -- the context API used inside forward/backward ---------------------------------------
    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("Function subclasses must implement a static forward()")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError(
            f"{type(ctx).__name__} does not implement backward; it is not differentiable")

    @property
    def xp(self):
        """The array module of this op's device (numpy or cupy)."""
        return self.device.xp

    def save_for_backward(self, *tensors) -> None:
        """Keep tensors for backward; an in-place change to any of them is caught there."""
        self._saved = tuple(None if t is None else SavedTensor(t) for t in tensors)

    @property
    def saved_tensors(self) -> tuple:
        if self._released:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access saved "
                "tensors after they have already been freed). Saved intermediate values of the "
                "graph are freed when you call .backward() or autograd.grad(). Specify "
                "retain_graph=True if you need to backward through the graph a second time or "
                "if you need to access saved tensors after calling backward.")
        return tuple(None if s is None else s.unpack(self) for s in self._saved)

    def mark_non_differentiable(self, *outputs) -> None:
        self._non_differentiable = tuple(id(o) for o in outputs)

    def mark_dirty(self, *tensors) -> None:
        """Accepted for compatibility; in-place changes are tracked by version counters."""

    def set_materialize_grads(self, value: bool) -> None:
        self._materialize = bool(value)

    def release(self) -> None:
        """Free what forward saved (after a backward without ``retain_graph``)."""
        self._saved = ()
        self._released = True

    def name(self) -> str:
        return type(self).__name__ + "Backward0"

    def __repr__(self) -> str:
        return f"<{self.name()}>"

    # -- building the graph ----------------------------------------------------------------
    @classmethod
    def apply(cls, *args, **kwargs):
        T = _TENSOR
        ctx = cls()
        tensors = [a for a in args if isinstance(a, T)]
        if tensors:
            dev = tensors[0]._device
            for t in tensors:
                if t._device is not dev:
                    args, dev = _unify_devices(cls, args, tensors)
                    break
        else:
            from ..backend import CPU as dev
        ctx.device = dev
        grad_on = STATE.enabled
        requires = grad_on and cls.differentiable and any(t.requires_grad for t in tensors)
        if requires:
            ctx.needs_input_grad = tuple(isinstance(a, T) and a.requires_grad for a in args)
            if _anomaly["enabled"]:
                ctx._forward_trace = "".join(traceback.format_stack()[:-1])
        STATE.enabled = False
        try:
            raw = cls.forward(ctx, *args, **kwargs)
        finally:
            STATE.enabled = grad_on
        # NOTE: forward may set ctx.device (a device transfer creates its output elsewhere).
        return _wrap_outputs(ctx, raw, args, ctx.device, requires)


def _wrap_outputs(ctx, raw, args, dev, requires):
    """Turn forward's arrays (or tensors) into output tensors whose ``grad_fn`` is ``ctx``."""
    T = _TENSOR
    multi = isinstance(raw, tuple)
    outs = raw if multi else (raw,)
    vc = args[0]._vc if ctx.is_view else None
    results, out_index = [], {}
    for i, o in enumerate(outs):
        if isinstance(o, T):
            out_index[id(o)] = i
            arr = o._data
        else:
            arr = o
        # Only floating outputs carry gradients (indices, masks and counts do not).
        diff = requires and arr.dtype.kind == "f" and id(o) not in ctx._non_differentiable
        results.append(T._make(arr, dev, diff, ctx if diff else None, i, vc))
    if requires:
        ctx.next_edges = tuple(
            (a.grad_fn or a, a._output_nr, a._data.shape)
            if isinstance(a, T) and a.requires_grad else None for a in args)
        ctx.n_outputs = len(outs)
        if multi:
            ctx.output_meta = tuple((t._data.shape, t._data.dtype) for t in results)
        if out_index:
            # A user function saved its own output: keep it as an array, not a cycle.
            ctx._saved = tuple(
                SavedTensor(results[out_index[id(s.tensor)]], output_of=ctx)
                if s is not None and id(s.tensor) in out_index else s for s in ctx._saved)
        if ctx.saves_output:
            ctx._saved += (SavedTensor(results[0], output_of=ctx),)
    return tuple(results) if multi else results[0]


def _unify_devices(cls, args, tensors):
    """Allow zero-dim CPU tensors beside CUDA tensors (as torch does); refuse other mixes."""
    T = _TENSOR
    main = [t for t in tensors if not (t._device.type == "cpu" and t._data.ndim == 0)]
    devices = []
    for t in main or tensors:
        if t._device not in devices:
            devices.append(t._device)
    if len(devices) > 1:
        raise RuntimeError(
            "Expected all tensors to be on the same device, but found at least two devices, "
            f"{devices[0]} and {devices[1]}! (in {cls.__name__})")
    dev = devices[0]
    return tuple(a.to(dev) if isinstance(a, T) and a._device is not dev else a
                 for a in args), dev


def set_detect_anomaly(mode: bool) -> None:
    """Record each op's forward stack so a NaN in backward names the op that made it."""
    _anomaly["enabled"] = bool(mode)


def is_anomaly_enabled() -> bool:
    return _anomaly["enabled"]


class detect_anomaly:
    """Context manager (and decorator) enabling anomaly detection inside the block."""

    def __init__(self, check_nan: bool = True):
        self.check_nan = check_nan

    def __enter__(self):
        self._prev = _anomaly["enabled"]
        _anomaly["enabled"] = self.check_nan
        return self

    def __exit__(self, *exc):
        _anomaly["enabled"] = self._prev
        return False

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*a, **k):
            with detect_anomaly(self.check_nan):
                return fn(*a, **k)
        return wrapper

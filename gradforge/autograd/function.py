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

    __slots__ = ("array", "device", "output_nr", "tensor", "vc", "version")

    def __init__(self, tensor, output_nr=None):
        self.vc = tensor._vc
        self.version = tensor._vc[0]
        self.output_nr = output_nr
        if output_nr is None:
            self.tensor, self.array, self.device = tensor, None, None
        else:
            self.tensor, self.array, self.device = None, tensor._data, tensor._device

    def unpack(self, node):
        if self.vc[0] != self.version:
            shape = list(self.tensor.shape if self.tensor is not None else self.array.shape)
            what = "an input" if self.tensor is not None else "its output"
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: [{type(node).__name__} saved {what} of shape {shape}] is "
                f"at version {self.vc[0]}; expected version {self.version} instead. Hint: the "
                "operation that failed to compute its gradient is "
                f"{type(node).__name__}.backward; avoid the in-place change or clone first.")
        if self.tensor is not None:
            return self.tensor
        return _TENSOR._make(self.array, self.device, True, node, self.output_nr, self.vc)


class Function:
    """Base class of differentiable ops (``autograd.Function`` in PyTorch).

    Subclass it with static ``forward(ctx, *args)`` and ``backward(ctx, *grad_outputs)``
    and call ``MyFunction.apply(*args)``. The instance is both the ``ctx`` of those methods
    and the graph node (the ``grad_fn`` of the outputs).
    """

    #: the output is a view of the first argument and shares its version counter.
    is_view = False
    #: append the output to ``saved_tensors`` (for derivatives cheaper from the result).
    saves_output = False
    #: False for forward-only ops (comparisons, argmax ...): outputs never require grad, and
    #: the test suite's gradient-coverage check skips the class.
    differentiable = True

    # Per-node state. Class-level defaults keep node creation cheap: ``apply`` sets only
    # what differs, and only when the graph is recorded.
    device = None
    needs_input_grad: tuple = ()
    next_edges: tuple = ()   # per input: (node or leaf, output_nr, shape, dtype) or None
    n_outputs = 1
    output_meta: tuple = ()
    _saved: tuple = ()
    _released = False
    _materialize = True
    _non_differentiable: tuple = ()
    _tensor_hooks = None   # {output_nr: [hook, ...]} from Tensor.register_hook
    _retained = None       # {output_nr: weakref to the tensor} from Tensor.retain_grad
    _forward_trace = ""

    # -- the context API used inside forward/backward ---------------------------------------
    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("Function subclasses must implement a static forward()")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError(
            f"{type(ctx).__name__} does not implement backward; it is not differentiable")

    #: the array module of this op's device (numpy or cupy), set by ``apply``.
    xp = None

    def save_for_backward(self, *values) -> None:
        """Keep what backward needs: tensors (an in-place change to any of them is caught at
        backward), None, or plain Python values such as the scalar operand of ``x * 2``."""
        # Kept raw here; apply() records tensor versions only if the graph is recorded.
        self._saved = values

    @property
    def saved_tensors(self) -> tuple:
        if self._released:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access saved "
                "tensors after they have already been freed). Saved intermediate values of the "
                "graph are freed when you call .backward() or autograd.grad(). Specify "
                "retain_graph=True if you need to backward through the graph a second time or "
                "if you need to access saved tensors after calling backward.")
        return tuple(s.unpack(self) if type(s) is SavedTensor else s for s in self._saved)

    def mark_non_differentiable(self, *outputs) -> None:
        """Outputs (returned by forward) that never require grad, e.g. indices."""
        self._non_differentiable = tuple(id(o) for o in outputs)

    def mark_dirty(self, *tensors) -> None:
        """Accepted for compatibility; in-place changes are tracked by version counters."""

    def set_materialize_grads(self, value: bool) -> None:
        """Whether missing output gradients reach backward as zeros (default) or None."""
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
        """Run ``forward`` on ``args`` and, if any input requires grad, record the node."""
        T = _TENSOR
        dev = None
        record = False
        for a in args:
            if isinstance(a, T):
                if dev is None:
                    dev = a._device
                elif a._device is not dev:
                    args, dev = _unify_devices(cls, args)
                if a.requires_grad:
                    record = True
        if dev is None:
            dev = _cpu()
        elif dev.index is not None:
            # CuPy works on the current GPU: the op runs with its operands' device made
            # current (torch's device guard). Inside, apply finds it current and goes on.
            guard = dev.backend.activate()
            if guard is not None:
                with guard:
                    return cls.apply(*args, **kwargs)
        ctx = object.__new__(cls)
        ctx.device, ctx.xp = dev, dev.xp
        if not (record and STATE.enabled and cls.differentiable):
            if STATE.enabled:
                # User functions may call tensor ops in forward: they must not record.
                STATE.enabled = False
                try:
                    raw = cls.forward(ctx, *args, **kwargs)
                finally:
                    STATE.enabled = True
            else:
                raw = cls.forward(ctx, *args, **kwargs)
            return _wrap_constant(ctx, raw, args)
        ctx.needs_input_grad = tuple([isinstance(a, T) and a.requires_grad for a in args])
        if _anomaly["enabled"]:
            ctx._forward_trace = "".join(traceback.format_stack()[:-1])
        STATE.enabled = False
        try:
            raw = cls.forward(ctx, *args, **kwargs)
        finally:
            STATE.enabled = True
        # NOTE: forward may set ctx.device (a device transfer creates its output elsewhere).
        return _wrap_outputs(ctx, raw, args)


def _cpu():
    from ..backend import CPU
    return CPU


def _as_array(o, dev):
    """An output of forward as an array of ``dev``: tensors unwrapped, and NumPy scalars
    (which full reductions and 0-d ufuncs return) made 0-d arrays again."""
    if isinstance(o, _TENSOR):
        return o._data
    xp = dev.xp
    return o if type(o) is xp.ndarray else xp.asarray(o)


def _wrap_constant(ctx, raw, args):
    """Outputs of a forward that records nothing."""
    T = _TENSOR
    dev = ctx.device
    if type(raw) is dev.xp.ndarray and not ctx.is_view:
        return T._make(raw, dev)   # the common case
    if type(raw) is tuple:
        return tuple(T._make(_as_array(o, dev), dev) for o in raw)
    if ctx.is_view:
        out = T._make(_as_array(raw, dev), dev, vc=args[0]._vc)
        _record_view(ctx, out, args)
        return out
    return T._make(_as_array(raw, dev), dev)


def _wrap_outputs(ctx, raw, args):
    """Turn forward's arrays (or tensors) into output tensors whose ``grad_fn`` is ``ctx``."""
    T = _TENSOR
    dev = ctx.device
    vc = args[0]._vc if ctx.is_view else None
    ctx.next_edges = tuple([(a.grad_fn or a, a._output_nr, a._data.shape, a._data.dtype)
                            if isinstance(a, T) and a.requires_grad else None for a in args])
    if type(raw) is dev.xp.ndarray:
        # The common case: one array from a built-in op.
        diff = raw.dtype.kind == "f"
        out = T._make(raw, dev, diff, ctx if diff else None, 0, vc)
        saved = ctx._saved
        if saved:
            ctx._saved = tuple([SavedTensor(t) if isinstance(t, T) else t for t in saved])
        if ctx.saves_output:
            ctx._saved += (SavedTensor(out, 0),)
        if vc is not None:
            _record_view(ctx, out, args)
        return out
    multi = type(raw) is tuple
    outs = raw if multi else (raw,)
    results = []
    user_outputs = {}   # id of a tensor returned by a user forward -> output index
    non_diff = ctx._non_differentiable
    for i, o in enumerate(outs):
        if isinstance(o, T):
            user_outputs[id(o)] = i
        arr = _as_array(o, dev)
        # Only floating outputs carry gradients (indices, masks and counts do not).
        diff = arr.dtype.kind == "f" and not (non_diff and id(o) in non_diff)
        results.append(T._make(arr, dev, diff, ctx if diff else None, i, vc))
    # A user function may save its own outputs: keep them as arrays, not as a cycle.
    ctx._saved = tuple([
        (SavedTensor(results[user_outputs[id(t)]], user_outputs[id(t)])
         if id(t) in user_outputs else SavedTensor(t)) if isinstance(t, T) else t
        for t in ctx._saved])
    if ctx.saves_output:
        ctx._saved += (SavedTensor(results[0], 0),)
    if vc is not None:
        _record_view(ctx, results[0], args)
    if multi:
        ctx.n_outputs = len(outs)
        ctx.output_meta = tuple((t._data.shape, t._data.dtype) for t in results)
        return tuple(results)
    return results[0]


def _record_view(ctx, view, args):
    """Remember how ``view`` was taken from its base (the first non-view tensor), so that an
    in-place change of the view can be replayed onto the base in the graph (``ops.inplace``).
    """
    src = args[0]
    step = ((type(ctx), args[1:]),)
    if src._base is None:
        view._base, view._view_chain = src, step
    else:
        view._base, view._view_chain = src._base, src._view_chain + step


def _unify_devices(cls, args):
    """Allow zero-dim CPU tensors beside CUDA tensors (as torch does); refuse other mixes."""
    T = _TENSOR
    tensors = [a for a in args if isinstance(a, T)]
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


class set_detect_anomaly:
    """Record each op's forward stack so a NaN in backward names the op that made it.

    Takes effect when called; used as a context manager, the previous mode comes back at the
    end of the block (as torch).
    """

    def __init__(self, mode: bool, check_nan: bool = True):
        self._prev = _anomaly["enabled"]
        _anomaly["enabled"] = bool(mode) and check_nan

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _anomaly["enabled"] = self._prev
        return False


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

"""The backward pass: an iterative walk of the graph in dependency order.

No recursion (a 100,000-node chain is fine): first an explicit-stack DFS counts, for every
node, how many edges lead into it; then nodes run once all their gradients have arrived.
Gradients of leaves are accumulated into ``.grad`` (``backward``) or captured and returned
(``grad``). Saved tensors are freed after use unless ``retain_graph``.
"""
from __future__ import annotations

import contextlib
import sys

import numpy as np

from ..backend.device import on_device
from ..backend.dtypes import from_numpy_dtype
from . import function as _function
from .function import Function
from .grad_mode import STATE


def _roots(outputs, grad_outputs, create_graph):
    """Pair each output with its incoming gradient (ones for a scalar output)."""
    T = _function._TENSOR
    pairs = []
    for i, out in enumerate(outputs):
        g = grad_outputs[i] if grad_outputs is not None else None
        if not out.requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have "
                               "a grad_fn")
        if g is None:
            if out._data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs "
                                   f"(got an output of shape {tuple(out.shape)})")
            with on_device(out._device):
                g = T._make(out._device.xp.ones_like(out._data), out._device)
        elif not isinstance(g, T):
            g = T._make(out._device.backend.asarray(g, dtype=out._data.dtype), out._device)
        if g._data.shape != out._data.shape:
            raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of "
                               f"{tuple(g.shape)} and output[{i}] has a shape of "
                               f"{tuple(out.shape)}.")
        if not create_graph:
            g = g.detach()
        pairs.append((out, g))
    return pairs


def _dependencies(nodes) -> dict:
    """Number of graph edges that point at each node reachable from ``nodes``."""
    deps = {}
    stack = list(nodes)
    seen = set(stack)
    while stack:
        for edge in stack.pop().next_edges:
            if edge is None:
                continue
            nxt = edge[0]
            if isinstance(nxt, Function):
                if nxt in seen:
                    deps[nxt] += 1
                else:
                    deps[nxt] = 1
                    seen.add(nxt)
                    stack.append(nxt)
    return deps


class _Walk:
    """What one backward call delivers, and where: ``.grad`` of leaves or captured results."""

    __slots__ = (
        "accumulate",
        "capture_leaf",
        "capture_node",
        "create_graph",
        "hooked",
        "only_inputs",
        "results",
    )

    def __init__(self, inputs, accumulate, create_graph):
        self.accumulate, self.create_graph = accumulate, create_graph
        # Captured gradients: leaves by identity, non-leaves by (node, output index).
        self.capture_leaf, self.capture_node = {}, {}
        # Leaves with hooks: {id: (leaf, gradient summed so far)}, delivered by ``flush``.
        self.hooked = {}
        self.only_inputs = inputs is not None
        self.results = [None] * (len(inputs) if inputs is not None else 0)
        for k, t in enumerate(inputs or ()):
            if not t.requires_grad:
                raise RuntimeError(f"One of the differentiated Tensors (input {k}) does not "
                                   "require grad")
            if t.grad_fn is None:
                self.capture_leaf.setdefault(id(t), []).append(k)
            else:
                self.capture_node.setdefault((t.grad_fn, t._output_nr), []).append(k)

    def leaf(self, leaf, g, unshared: bool = False) -> None:
        """A gradient arrived at a leaf: capture and/or accumulate it.

        ``unshared``: nothing but the caller holds ``g`` or its array, so ``.grad`` may take
        the array itself.
        """
        if leaf._hooks:
            # NOTE: as torch's AccumulateGrad, a leaf's hooks run once, on the sum of the
            # gradients from all its uses: they are held until the walk ends (``flush``).
            prev = self.hooked.get(id(leaf))
            self.hooked[id(leaf)] = (leaf, g if prev is None else prev[1] + g)
            return
        self.deliver(leaf, g, unshared)

    def flush(self) -> None:
        """Run the hooks of the leaves that have them, then deliver their gradients."""
        for leaf, g in self.hooked.values():
            with on_device(g._device):   # as the node that computed g ran on its GPU
                self.deliver(leaf, _run_hooks(leaf._hooks, g))

    def deliver(self, leaf, g, unshared: bool = False) -> None:
        captured = self.capture_leaf.get(id(leaf)) if self.capture_leaf else None
        if captured:
            for k in captured:
                prev = self.results[k]
                self.results[k] = g if prev is None else prev + g
        if not self.accumulate or (self.only_inputs and not captured):
            return
        if leaf._grad is None:
            if self.create_graph:
                leaf._grad = g
            elif unshared and not captured:
                # A gradient only this walk holds (a fresh GEMM result, say): kept without
                # the copy, which cost a quarter of an MLP training step.
                leaf._grad = _function._TENSOR._make(g._data, g._device)
            else:
                # NOTE: the gradient may alias another tensor's (Add passes it through), so
                # the first accumulation stores a copy that optimizers may update in place.
                leaf._grad = g.detach().clone()
        elif self.create_graph:
            leaf._grad = leaf._grad + g
        else:
            grad = leaf._grad
            if grad._device.index is None:
                grad._data += g._data
            else:
                # The walk is on the current node's GPU; a leaf reached through a device
                # transfer lives on another one.
                with on_device(grad._device):
                    grad._data += g._data
            grad._vc[0] += 1

    def node_outputs(self, node, grads) -> None:
        """Hooks, retain_grad and captures on the gradients of ``node``'s outputs."""
        hooks, retained = node._tensor_hooks, node._retained
        for nr, g in enumerate(grads):
            if g is None:
                continue
            if hooks and nr in hooks:
                g = grads[nr] = _run_hooks(hooks[nr], g)
            if retained and nr in retained:
                t = retained[nr]()
                if t is not None:
                    gg = g if self.create_graph else g.detach()
                    t._grad = gg if t._grad is None else t._grad + gg
            if self.capture_node:
                for k in self.capture_node.get((node, nr), ()):
                    prev = self.results[k]
                    self.results[k] = g if prev is None else prev + g


def _run_hooks(hooks, g):
    """Apply tensor hooks in order; one may return a replacement of the same shape."""
    for hook in hooks:
        new = hook(g)
        if new is None:
            continue
        if not isinstance(new, _function._TENSOR):
            raise TypeError(f"expected Variable, but hook returned '{type(new).__name__}'")
        if new._data.shape != g._data.shape:
            raise RuntimeError(f"hook '{getattr(hook, '__name__', hook)}' has changed the size "
                               f"of value (from {list(g.shape)} to {list(new.shape)})")
        g = new
    return g


def run_backward(outputs, grad_outputs=None, retain_graph=None, create_graph=False,
                 inputs=None, accumulate=True, allow_unused=False):
    """Backpropagate from ``outputs``.

    With ``accumulate`` (``Tensor.backward``) leaf gradients are added to ``.grad``
    (only for ``inputs`` when given); without it (``autograd.grad``) the gradients of
    ``inputs`` are returned and no ``.grad`` is touched.
    """
    if retain_graph is None:
        retain_graph = create_graph
    pairs = _roots(outputs, grad_outputs, create_graph)
    walk = _Walk(inputs, accumulate, create_graph)

    buffers = {}       # node -> list of the gradients of its outputs received so far
    roots = []
    for out, g in pairs:
        node = out.grad_fn
        if node is None:
            walk.leaf(out, g)
            continue
        if node not in buffers:
            buffers[node] = [None] * node.n_outputs
            roots.append(node)
        _add(buffers[node], out._output_nr, g)

    deps = _dependencies(roots)
    ready = [n for n in roots if n not in deps]
    slow_nodes = bool(walk.capture_node)
    anomaly = _function._anomaly["enabled"]
    prev_mode = STATE.enabled
    STATE.enabled = create_graph
    # NOTE: backward formulas compute values they then mask out (log(0) where the base is
    # 0, ...); as torch, they do so silently. detect_anomaly is the tool to find NaNs.
    try:
        with np.errstate(divide="ignore", invalid="ignore"), contextlib.ExitStack() as devices:
            while ready:
                node = ready.pop()
                if node.device.index is not None:
                    # A node's backward (raw array code and zero gradients included) runs on
                    # its GPU, as in torch. The walk stays there until a node elsewhere, and
                    # the caller's device comes back when the stack unwinds at the end.
                    guard = node.device.backend.activate()
                    if guard is not None:
                        devices.enter_context(guard)
                grads = buffers.pop(node)
                if slow_nodes or node._tensor_hooks or node._retained:
                    walk.node_outputs(node, grads)
                if node.n_outputs == 1:
                    grad_inputs = type(node).backward(node, grads[0])
                else:
                    grad_inputs = _backward_multi(node, grads)
                if type(grad_inputs) is not tuple:
                    grad_inputs = (grad_inputs,)
                edges = node.next_edges
                if len(grad_inputs) != len(edges) and (
                        len(grad_inputs) < len(edges) or
                        any(g is not None for g in grad_inputs[len(edges):])):
                    # Extra gradients are allowed only as None (torch's rule).
                    raise RuntimeError(
                        f"function {node.name()} returned an incorrect number of gradients "
                        f"(expected {len(edges)}, got {len(grad_inputs)})")
                if not retain_graph:
                    node.release()
                _send(node, edges, grad_inputs, buffers, deps, ready, walk, anomaly)
            walk.flush()
    finally:
        STATE.enabled = prev_mode

    if walk.only_inputs and accumulate:
        # backward(inputs=...) also fills the .grad of the non-leaf tensors named.
        for t, g in zip(inputs, walk.results):
            if t.grad_fn is not None and g is not None:
                g = g if create_graph else g.detach()
                t._grad = g if t._grad is None else t._grad + g
        return None
    if walk.only_inputs:
        for k, r in enumerate(walk.results):
            if r is None and not allow_unused:
                raise RuntimeError(
                    f"One of the differentiated Tensors (input {k}) appears to not have been "
                    "used in the graph. Set allow_unused=True if this is the desired behavior.")
        return tuple(walk.results)
    return None


def _send(node, edges, grad_inputs, buffers, deps, ready, walk, anomaly) -> None:
    """Deliver the gradients ``node`` computed along its edges: into the buffers of the nodes
    they lead to (which become ready when their last edge has arrived) or to leaves."""
    T = _function._TENSOR
    for k, edge in enumerate(edges):
        if edge is None:
            continue
        target, nr, shape, dtype = edge
        g = grad_inputs[k]
        if g is not None and (type(g) is not T or g._data.shape != shape or anomaly):
            _check_grad(node, k, g, shape)
        if g is not None and g._data.dtype is not dtype and g._data.dtype != dtype:
            # As torch: a gradient takes its input's dtype (a user backward may return another).
            # (NumPy's built-in dtypes are singletons: ``is`` settles the common case.)
            g = g.to(from_numpy_dtype(dtype))
        if isinstance(target, Function):
            if g is not None:
                buf = buffers.get(target)
                if buf is None:
                    buf = buffers[target] = [None] * target.n_outputs
                old = buf[nr]
                buf[nr] = g if old is None else old + g
            left = deps[target] - 1
            deps[target] = left
            if left == 0:
                if target in buffers:
                    ready.append(target)
                else:
                    _skip(target, deps, ready, buffers)
        elif g is not None:
            unshared = _unshared(g)   # before the call below holds another reference to g
            walk.leaf(target, g, unshared)


def _unshared(g) -> bool:
    """Whether the gradient ``g`` that ``_send`` delivers is referenced from nowhere else.

    As torch's AccumulateGrad, which steals a gradient whose use count says it is not shared.
    CPython's counts, exact here: ``g`` is held by the backward's result tuple, ``_send``'s
    local, this argument and getrefcount's own (4; more when the backward passed an incoming
    gradient through, returned it twice or keeps it); its array by ``g``, ``data`` and
    getrefcount's argument (3; more when another tensor or a view shares it). Any other count
    means a copy.
    """
    data = g._data
    return (sys.getrefcount(g) == 4 and data.base is None and sys.getrefcount(data) == 3
            and g.grad_fn is None)


def _add(buffer, index, grad) -> None:
    old = buffer[index]
    buffer[index] = grad if old is None else old + grad


def _check_grad(node, k, g, shape) -> None:
    """A gradient returned by ``node.backward`` must be a tensor of its input's shape."""
    if not isinstance(g, _function._TENSOR):
        raise TypeError(f"function {node.name()} returned a gradient of type "
                        f"{type(g).__name__} at index {k}; expected a Tensor")
    if g._data.shape != shape:
        raise RuntimeError(f"Function {node.name()} returned an invalid gradient at index {k} - "
                           f"got {list(g._data.shape)} but expected shape {list(shape)}")
    if _function._anomaly["enabled"]:
        _check_nan(node, k, g)


def _backward_multi(node, grads):
    """Backward of a node with several outputs; missing gradients become zeros (torch's
    materialize_grads) unless the node opted out."""
    if node._materialize and any(g is None for g in grads):
        T = _function._TENSOR
        xp = node.device.xp
        grads = [g if g is not None else T._make(xp.zeros(shape, dtype), node.device)
                 for g, (shape, dtype) in zip(grads, node.output_meta)]
    return type(node).backward(node, *grads)


def _skip(node, deps, ready, buffers) -> None:
    """A node that received no gradient at all: release its dependants' counters too."""
    stack = [node]
    while stack:
        for edge in stack.pop().next_edges:
            if edge is not None and isinstance(edge[0], Function):
                t = edge[0]
                deps[t] -= 1
                if deps[t] == 0:
                    if t in buffers:
                        ready.append(t)
                    else:
                        stack.append(t)


def _check_nan(node, k, g) -> None:
    if g._data.dtype.kind != "f":
        return
    with on_device(g._device):
        found = bool(g._device.xp.isnan(g._data).any())
    if found:
        raise RuntimeError(
            f"Function '{node.name()}' returned nan values in its {k}th output.\n"
            f"Traceback of the forward call that caused the error:\n{node._forward_trace}")


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=None, materialize_grads=False):
    """Gradients of ``outputs`` with respect to ``inputs``, returned (``.grad`` untouched).

    Args:
        outputs: a tensor or a sequence of tensors to differentiate.
        inputs: a tensor or a sequence of tensors that require grad.
        grad_outputs: the vector of the vector-Jacobian product, one per output (None for
            scalar outputs means 1).
        retain_graph: keep the graph for another backward (default: ``create_graph``).
        create_graph: record the backward pass, for higher-order derivatives.
        allow_unused: return None for an input the outputs do not depend on, instead of
            raising.
        materialize_grads: return zeros instead of None for unused inputs.
    """
    T = _function._TENSOR
    outputs = (outputs,) if isinstance(outputs, T) else tuple(outputs)
    inputs = (inputs,) if isinstance(inputs, T) else tuple(inputs)
    if grad_outputs is not None:
        grad_outputs = (grad_outputs,) if isinstance(grad_outputs, T) else tuple(grad_outputs)
    if allow_unused is None:
        allow_unused = materialize_grads
    elif materialize_grads and not allow_unused:
        raise ValueError("Expected allow_unused to be True or not passed when "
                         f"materialize_grads=True, but got: allow_unused={allow_unused}.")
    result = run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs,
                          accumulate=False, allow_unused=allow_unused)
    if materialize_grads:
        result = tuple(r if r is not None else t.detach() * 0 for r, t in zip(result, inputs))
    return result


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False,
             inputs=None) -> None:
    """Accumulate gradients of ``tensors`` into the ``.grad`` of the leaves (or of ``inputs``)."""
    T = _function._TENSOR
    tensors = (tensors,) if isinstance(tensors, T) else tuple(tensors)
    if grad_tensors is not None:
        grad_tensors = (grad_tensors,) if isinstance(grad_tensors, T) else tuple(grad_tensors)
    if inputs is not None:
        inputs = (inputs,) if isinstance(inputs, T) else tuple(inputs)
        if not inputs:
            raise RuntimeError("`inputs` argument to `backward()` cannot be empty.")
    run_backward(tensors, grad_tensors, retain_graph, create_graph, inputs, accumulate=True)

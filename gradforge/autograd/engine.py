"""The backward pass: an iterative walk of the graph in dependency order.

No recursion (a 100,000-node chain is fine): first an explicit-stack DFS counts, for every
node, how many edges lead into it; then nodes run once all their gradients have arrived.
Gradients of leaves are accumulated into ``.grad`` (``backward``) or captured and returned
(``grad``). Saved tensors are freed after use unless ``retain_graph``.
"""
from __future__ import annotations


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
            raise RuntimeError(
                "element {} of tensors does not require grad and does not have a grad_fn"
                .format(i))
        if g is None:
            if out._data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs "
                                   f"(got an output of shape {tuple(out.shape)})")
            g = T._make(out._device.xp.ones_like(out._data), out._device)
        elif not isinstance(g, T):
            g = T._make(out._device.backend.asarray(g, dtype=out._data.dtype), out._device)
        if tuple(g.shape) != tuple(out.shape):
            raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of "
                               f"{tuple(g.shape)} and output[{i}] has a shape of "
                               f"{tuple(out.shape)}.")
        if not create_graph:
            g = g.detach()
        pairs.append((out, g))
    return pairs


def _dependencies(nodes):
    """Number of graph edges that point at each node reachable from ``nodes``."""
    deps = {}
    stack = list(nodes)
    seen = set(stack)
    while stack:
        node = stack.pop()
        for edge in node.next_edges:
            if edge is None:
                continue
            nxt = edge[0]
            if isinstance(nxt, Function):
                deps[nxt] = deps.get(nxt, 0) + 1
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
    return deps


def _accumulate(buffer, index, grad):
    old = buffer[index]
    buffer[index] = grad if old is None else old + grad


def run_backward(outputs, grad_outputs=None, retain_graph=None, create_graph=False,
                 inputs=None, accumulate=True, allow_unused=False):
    """Backpropagate from ``outputs``.

    With ``accumulate`` (``Tensor.backward``) leaf gradients are added to ``.grad``
    (only for ``inputs`` when given); without it (``autograd.grad``) the gradients of
    ``inputs`` are returned and no ``.grad`` is touched.
    """
    T = _function._TENSOR
    if retain_graph is None:
        retain_graph = create_graph
    pairs = _roots(outputs, grad_outputs, create_graph)

    # Where gradients are captured: leaves by identity, non-leaves by (node, output index).
    capture_leaf, capture_node = {}, {}
    if inputs is not None:
        for k, t in enumerate(inputs):
            if not t.requires_grad:
                raise RuntimeError(f"One of the differentiated Tensors (input {k}) does not "
                                   "require grad")
            if t.grad_fn is None:
                capture_leaf.setdefault(id(t), []).append(k)
            else:
                capture_node.setdefault((t.grad_fn, t._output_nr), []).append(k)
    results = [None] * (len(inputs) if inputs is not None else 0)

    buffers = {}
    root_nodes = []
    for out, g in pairs:
        if out.grad_fn is None:
            _deliver_leaf(out, g, capture_leaf, results, accumulate, create_graph, inputs)
            continue
        node = out.grad_fn
        if node not in buffers:
            buffers[node] = [None] * node.n_outputs
            root_nodes.append(node)
        _accumulate(buffers[node], out._output_nr, g)

    deps = _dependencies(root_nodes)
    ready = [n for n in root_nodes if deps.get(n, 0) == 0]
    prev_mode = STATE.enabled
    STATE.enabled = create_graph
    try:
        while ready:
            node = ready.pop()
            grads = buffers.pop(node)
            for nr, g in enumerate(grads):
                if g is None:
                    continue
                hooks = getattr(node, "_tensor_hooks", None)
                if hooks and nr in hooks:
                    for hook in hooks[nr]:
                        new = hook(g)
                        if new is not None:
                            g = new
                    grads[nr] = g
                retained = getattr(node, "_retained", None)
                if retained and nr in retained:
                    t = retained[nr]()
                    if t is not None:
                        gg = g if create_graph else g.detach()
                        t.grad = gg if t.grad is None else t.grad + gg
                if capture_node and (node, nr) in capture_node:
                    for k in capture_node[(node, nr)]:
                        results[k] = g
            grads = _materialize(node, grads)
            if grads is None:
                grad_inputs = (None,) * len(node.next_edges)
            else:
                grad_inputs = type(node).backward(node, *grads)
                if not isinstance(grad_inputs, tuple):
                    grad_inputs = (grad_inputs,)
            if len(grad_inputs) < len(node.next_edges):
                raise RuntimeError(
                    f"function {node.name()} returned an incorrect number of gradients "
                    f"(expected {len(node.next_edges)}, got {len(grad_inputs)})")
            if not retain_graph:
                node.release()
            for k, (edge, g) in enumerate(zip(node.next_edges, grad_inputs)):
                if edge is None:
                    continue
                target, nr, shape = edge
                if g is not None:
                    if not isinstance(g, T):
                        raise TypeError(f"function {node.name()} returned a gradient of type "
                                        f"{type(g).__name__} at index {k}; expected a Tensor")
                    if g._data.shape != shape:
                        raise RuntimeError(
                            f"Function {node.name()} returned an invalid gradient at index {k}"
                            f" - got {list(g._data.shape)} but expected shape {list(shape)}")
                    if _function._anomaly["enabled"]:
                        _check_nan(node, k, g)
                if isinstance(target, Function):
                    if g is not None:
                        buf = buffers.get(target)
                        if buf is None:
                            buf = buffers[target] = [None] * target.n_outputs
                        _accumulate(buf, nr, g)
                    deps[target] -= 1
                    if deps[target] == 0:
                        if target in buffers:
                            ready.append(target)
                        else:
                            _skip(target, deps, ready, buffers)
                elif g is not None:
                    _deliver_leaf(target, g, capture_leaf, results, accumulate, create_graph,
                                  inputs)
    finally:
        STATE.enabled = prev_mode

    if inputs is not None and not accumulate:
        for k, r in enumerate(results):
            if r is None and not allow_unused:
                raise RuntimeError(
                    f"One of the differentiated Tensors (input {k}) appears to not have been "
                    "used in the graph. Set allow_unused=True if this is the desired behavior.")
        return tuple(results)
    return None


def _skip(node, deps, ready, buffers):
    """A node that received no gradient at all: release its dependants' counters too."""
    stack = [node]
    while stack:
        n = stack.pop()
        for edge in n.next_edges:
            if edge is not None and isinstance(edge[0], Function):
                t = edge[0]
                deps[t] -= 1
                if deps[t] == 0:
                    if t in buffers:
                        ready.append(t)
                    else:
                        stack.append(t)


def _materialize(node, grads):
    """Replace missing output gradients with zeros (torch's materialize_grads)."""
    if all(g is None for g in grads):
        return None
    if any(g is None for g in grads):
        if not node._materialize:
            return grads
        T = _function._TENSOR
        xp = node.device.xp
        grads = [g if g is not None else T._make(xp.zeros(shape, dtype), node.device)
                 for g, (shape, dtype) in zip(grads, node.output_meta)]
    return grads


def _deliver_leaf(leaf, g, capture_leaf, results, accumulate, create_graph, inputs):
    for hook in leaf._hooks or ():
        new = hook(g)
        if new is not None:
            g = new
    if capture_leaf and id(leaf) in capture_leaf:
        for k in capture_leaf[id(leaf)]:
            results[k] = g if results[k] is None else results[k] + g
        if not accumulate:
            return
    if not accumulate or (inputs is not None and id(leaf) not in capture_leaf):
        return
    if leaf.grad is None:
        # NOTE: the gradient may alias another tensor's (Add passes it through), so the
        # first accumulation stores a copy that optimizers may update in place.
        leaf.grad = g if create_graph else g.detach().clone()
    elif create_graph:
        leaf.grad = leaf.grad + g
    else:
        leaf.grad._data += g._data
        leaf.grad._vc[0] += 1


def _check_nan(node, k, g):
    xp = node.device.xp
    if g._data.dtype.kind == "f" and bool(xp.isnan(g._data).any()):
        trace = getattr(node, "_forward_trace", "")
        raise RuntimeError(
            f"Function '{node.name()}' returned nan values in its {k}th output.\n"
            f"Traceback of the forward call that caused the error:\n{trace}")


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=None, materialize_grads=False):
    """Gradients of ``outputs`` with respect to ``inputs``, returned (``.grad`` untouched)."""
    T = _function._TENSOR
    outputs = (outputs,) if isinstance(outputs, T) else tuple(outputs)
    single = isinstance(inputs, T)
    inputs = (inputs,) if single else tuple(inputs)
    if grad_outputs is not None:
        grad_outputs = (grad_outputs,) if isinstance(grad_outputs, T) else tuple(grad_outputs)
    if allow_unused is None:
        allow_unused = materialize_grads
    result = run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs,
                          accumulate=False, allow_unused=allow_unused)
    if materialize_grads:
        result = tuple(r if r is not None else t.detach() * 0 for r, t in zip(result, inputs))
    return result


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate gradients of ``tensors`` into the ``.grad`` of the leaves (or of ``inputs``)."""
    T = _function._TENSOR
    tensors = (tensors,) if isinstance(tensors, T) else tuple(tensors)
    if grad_tensors is not None:
        grad_tensors = (grad_tensors,) if isinstance(grad_tensors, T) else tuple(grad_tensors)
    if inputs is not None:
        inputs = (inputs,) if isinstance(inputs, T) else tuple(inputs)
    run_backward(tensors, grad_tensors, retain_graph, create_graph, inputs, accumulate=True)



"""The backward engine: backward() arguments, .grad accumulation, retain_grad, autograd.grad
with higher-order gradients, the iterative walk, freed graphs and reference counting."""
import gc
import weakref

import numpy as np
import pytest

import gradforge
from gradforge import autograd


def leaf(*values):
    return gradforge.tensor(list(values), dtype=gradforge.float64, requires_grad=True)


def test_backward_with_gradient_for_a_non_scalar_output():
    x = leaf(1.0, 2.0, 3.0)
    y = x * x
    y.backward(gradient=gradforge.tensor([1.0, 0.5, 0.0], dtype=gradforge.float64))
    assert x.grad.tolist() == [2.0, 2.0, 0.0]


def test_non_scalar_backward_without_gradient_raises():
    y = leaf(1.0, 2.0) * 2
    with pytest.raises(RuntimeError, match=r"implicitly created only for scalar outputs.*\(2,\)"):
        y.backward()


def test_gradient_of_wrong_shape_names_both_shapes():
    y = leaf(1.0, 2.0) * 2
    with pytest.raises(RuntimeError, match=r"\(3,\).*\(2,\)"):
        y.backward(gradforge.ones(3, dtype=gradforge.float64))


def test_backward_of_a_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        gradforge.ones(2).sum().backward()


def test_grad_accumulates_across_backward_calls():
    x = leaf(1.0, 2.0)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    assert x.grad.tolist() == [5.0, 7.0]
    grad_before = x.grad
    (x * 1).sum().backward()
    assert x.grad is grad_before and x.grad.tolist() == [6.0, 8.0]


def test_first_grad_is_a_private_copy():
    # Add passes its gradient through: .grad must not alias the caller's gradient tensor.
    x = leaf(1.0, 2.0)
    g = gradforge.tensor([1.0, 1.0], dtype=gradforge.float64)
    (x + 1).backward(g)
    x.grad.add_(1.0)
    assert g.tolist() == [1.0, 1.0]


def test_second_backward_through_a_freed_graph_raises_naming_retain_graph():
    x = leaf(1.0, 2.0)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = leaf(1.0, 2.0)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.clone()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first.numpy())


def test_saved_tensors_are_freed_after_backward():
    x = leaf(1.0, 2.0)
    y = x.exp()
    z = (y * x).sum()
    node = z.grad_fn.next_edges[0][0]          # the Mul node
    assert node._saved
    z.backward()
    assert node._saved == ()


def test_grad_fn_and_is_leaf():
    x = leaf(1.0)
    c = gradforge.ones(1)
    y = x * 2
    assert x.is_leaf and c.is_leaf and not y.is_leaf
    assert x.grad_fn is None and y.grad_fn.name() == "MulBackward0"
    assert (y + 1).grad_fn.name() == "AddBackward0"
    assert (c * 2).grad_fn is None and not (c * 2).requires_grad
    assert y.detach().is_leaf and not y.detach().requires_grad


def test_retain_grad_keeps_the_gradient_of_a_non_leaf():
    x = leaf(1.0, 2.0)
    y = x * 3
    y.retain_grad()
    z = y * y
    assert y.retains_grad and not z.retains_grad
    z.sum().backward()
    assert y.grad.tolist() == [6.0, 12.0]
    with pytest.warns(UserWarning, match="not a leaf Tensor"):   # as torch
        assert z.grad is None
    assert x.grad.tolist() == [18.0, 36.0]


def test_assigning_a_mismatched_grad_raises():
    x = leaf(1.0, 2.0)
    with pytest.raises(RuntimeError, match=r"size \[3\].*size \[2\]"):
        x.grad = gradforge.ones(3, dtype=gradforge.float64)
    with pytest.raises(RuntimeError, match="float32.*float64"):
        x.grad = gradforge.ones(2)
    with pytest.raises(TypeError, match="float"):
        x.grad = 1.0
    x.grad = gradforge.ones(2, dtype=gradforge.float64)
    (x * 3).sum().backward()
    assert x.grad.tolist() == [4.0, 4.0]


def test_retain_grad_on_a_leaf_is_a_no_op():
    x = leaf(1.0)
    x.retain_grad()
    (x * 2).sum().backward()
    assert x.grad.tolist() == [2.0]


def test_backward_with_inputs_only_fills_those():
    x, w = leaf(1.0, 2.0), leaf(3.0, 4.0)
    (x * w).sum().backward(inputs=[w])
    assert x.grad is None and w.grad.tolist() == [1.0, 2.0]


def test_backward_with_a_non_leaf_input_fills_its_grad():
    x = leaf(1.0, 2.0)
    y = x * 2
    (y * y).sum().backward(inputs=[y])
    assert y.grad.tolist() == [4.0, 8.0] and x.grad is None


def test_multiple_roots_with_autograd_backward():
    x = leaf(1.0, 2.0)
    autograd.backward([x * 2, x * x], [gradforge.ones(2, dtype=gradforge.float64),
                                         gradforge.ones(2, dtype=gradforge.float64)])
    assert x.grad.tolist() == [4.0, 6.0]


def test_autograd_grad_returns_gradients_without_touching_dot_grad():
    x, w = leaf(1.0, 2.0), leaf(3.0, 4.0)
    gx, gw = autograd.grad((x * w).sum(), [x, w])
    assert gx.tolist() == [3.0, 4.0] and gw.tolist() == [1.0, 2.0]
    assert x.grad is None and w.grad is None


def test_autograd_grad_with_grad_outputs():
    x = leaf(1.0, 2.0)
    (g,) = autograd.grad(x * x, x, grad_outputs=gradforge.tensor([1.0, -1.0],
                                                                 dtype=gradforge.float64))
    assert g.tolist() == [2.0, -4.0]


def test_autograd_grad_of_an_intermediate_tensor():
    x = leaf(1.0, 2.0)
    y = x * 2
    z = (y * y).sum()
    (gy,) = autograd.grad(z, y)
    assert gy.tolist() == [4.0, 8.0]


def test_allow_unused():
    x, unused = leaf(1.0), leaf(2.0)
    y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="allow_unused=True"):
        autograd.grad(y, [x, unused], retain_graph=True)
    gx, gu = autograd.grad(y, [x, unused], allow_unused=True)
    assert gx.tolist() == [2.0] and gu is None


def test_second_derivative_of_cube():
    x = leaf(-1.0, 0.5, 2.0)
    (g,) = autograd.grad((x ** 3).sum(), x, create_graph=True)
    assert g.requires_grad
    np.testing.assert_allclose(g.detach().numpy(), 3 * x.detach().numpy() ** 2)
    (h,) = autograd.grad(g.sum(), x, create_graph=True)
    np.testing.assert_allclose(h.detach().numpy(), 6 * x.detach().numpy())
    (t,) = autograd.grad(h.sum(), x)
    np.testing.assert_allclose(t.numpy(), [6.0, 6.0, 6.0])


def test_second_derivative_of_tanh():
    x = leaf(-1.0, 0.3, 2.0)
    (g,) = autograd.grad(x.tanh().sum(), x, create_graph=True)
    (h,) = autograd.grad(g.sum(), x)
    t = np.tanh(x.detach().numpy())
    np.testing.assert_allclose(h.numpy(), -2 * t * (1 - t * t))


def test_hessian_vector_product_through_matmul():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    a_np, x_np, v_np = rng.standard_normal((3, 3)), rng.standard_normal(3), rng.standard_normal(3)
    results = []
    for lib in (torch, gradforge):
        a = lib.tensor(a_np)
        x = lib.tensor(x_np, requires_grad=True)
        f = ((a @ x).tanh() ** 2).sum()
        (g,) = lib.autograd.grad(f, x, create_graph=True)
        (hv,) = lib.autograd.grad(g, x, grad_outputs=lib.tensor(v_np))
        results.append(hv.detach().numpy())
    np.testing.assert_allclose(results[1], results[0], rtol=1e-10)


def test_backward_create_graph_makes_grad_differentiable():
    x = leaf(2.0)
    (x ** 3).sum().backward(create_graph=True)
    assert x.grad.requires_grad and x.grad.tolist() == [12.0]
    (gg,) = autograd.grad(x.grad.sum(), x)
    assert gg.tolist() == [12.0]


def test_long_chain_backpropagates_iteratively():
    x = leaf(0.5)
    y = x
    for _ in range(100_000):
        y = y + 1.0
    y.sum().backward()
    assert x.grad.tolist() == [1.0]
    del y  # the chain is freed without recursion too


def test_diamond_graph_accumulates_both_paths():
    x = leaf(2.0)
    a = x * 3
    b = a.exp()
    c = a * a
    (b + c).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3 * np.exp(6.0) + 2 * 6.0 * 3])


def test_branch_without_gradient_is_skipped():
    x = leaf(1.0, 2.0)
    values, _ = x.max(0)
    (values * 2).backward()
    assert x.grad.tolist() == [0.0, 2.0]


def test_graph_is_freed_by_reference_counting_alone():
    gc.collect()
    gc.disable()
    try:
        x = leaf(1.0, 2.0)
        h = (x * 2).tanh()
        h.retain_grad()
        loss = (h.exp() * h).sum()
        refs = [weakref.ref(t) for t in (h,)] + [weakref.ref(loss.grad_fn),
                                                  weakref.ref(h.grad_fn)]
        loss.backward()
        del loss, h
        assert all(r() is None for r in refs)
        # The same without running backward.
        y = (x.sigmoid() * x).sum()
        refs = [weakref.ref(y.grad_fn), weakref.ref(y.grad_fn.next_edges[0][0])]
        del y
        assert all(r() is None for r in refs)
    finally:
        gc.enable()


def test_gradient_dtype_follows_the_input():
    x = gradforge.tensor([1.0, 2.0], requires_grad=True)
    (x.double() * 2).sum().backward()
    assert x.grad.dtype is gradforge.float32 and x.grad.tolist() == [2.0, 2.0]


def test_backward_with_empty_inputs_raises():
    x = leaf(1.0, 2.0)
    with pytest.raises(RuntimeError, match="cannot be empty"):
        (x * x).sum().backward(inputs=[])


def test_materialize_grads_refuses_allow_unused_false():
    x, unused = leaf(1.0), leaf(2.0)
    with pytest.raises(ValueError, match="allow_unused"):
        autograd.grad((x * x).sum(), [x, unused], allow_unused=False, materialize_grads=True)
    assert autograd.grad((x * x).sum(), [x, unused], materialize_grads=True)[1].tolist() == [0.0]

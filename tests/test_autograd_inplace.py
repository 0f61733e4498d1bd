"""In-place ops under autograd (version counters shared with views, the "modified by an
inplace operation" error, leaves) and the grad-mode switches."""
import numpy as np
import pytest
from oracle import compare

import gradforge


def leaf(*values):
    return gradforge.tensor(list(values), dtype=gradforge.float64, requires_grad=True)


INPLACE_OPS = {
    "add_": lambda t: t.add_(2.0),
    "add_alpha": lambda t: t.add_(t.detach(), alpha=0.5),
    "sub_": lambda t: t.sub_(1),
    "mul_": lambda t: t.mul_(3.0),
    "div_": lambda t: t.div_(2.0),
    "pow_": lambda t: t.pow_(2),
    "zero_": lambda t: t.zero_(),
    "fill_": lambda t: t.fill_(4.0),
    "copy_": lambda t: t.copy_(gradforge.ones(3, dtype=gradforge.float64)),
    "clamp_": lambda t: t.clamp_(0.0, 1.0),
    "masked_fill_": lambda t: t.masked_fill_(gradforge.tensor([True, False, True]), 0.0),
    "setitem": lambda t: t.__setitem__(0, 5.0),
    "uniform_": lambda t: t.uniform_(),
    "normal_": lambda t: t.normal_(),
    "iadd": lambda t: t.__iadd__(1.0),
    "isub": lambda t: t.__isub__(1.0),
    "imul": lambda t: t.__imul__(2.0),
    "itruediv": lambda t: t.__itruediv__(2.0),
    "relu_": lambda t: t.relu_(),
    "exp_": lambda t: t.exp_(),
}


@pytest.mark.parametrize("op", INPLACE_OPS.values(), ids=INPLACE_OPS.keys())
def test_inplace_op_bumps_the_version_shared_with_views(op):
    x = gradforge.tensor([0.5, -1.0, 2.0], dtype=gradforge.float64)
    view = x[1:]
    before = x._version
    out = op(x)
    assert out is None or out is x
    assert x._version == view._version == before + 1


@pytest.mark.parametrize("op", INPLACE_OPS.values(), ids=INPLACE_OPS.keys())
def test_inplace_on_a_leaf_requiring_grad_raises_outside_no_grad(op):
    x = leaf(0.5, -1.0, 2.0)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        op(x)
    with gradforge.no_grad():
        op(x)
    assert x.requires_grad and x.is_leaf and x._version == 1


def test_modified_saved_tensor_raises_naming_the_op_and_versions():
    x = leaf(1.0, 2.0)
    y = x * 1
    z = y.exp() * y           # Mul saves y
    y.add_(1.0)
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation.*Mul.*version 1; "
                                           r"expected version 0"):
        z.sum().backward()


def test_modified_saved_output_is_caught_too():
    x = leaf(1.0, 2.0)
    y = x.exp()               # Exp saves its output
    y.mul_(2)
    with pytest.raises(RuntimeError, match=r"Exp.*version 1; expected version 0"):
        y.sum().backward()


def test_modifying_a_view_of_a_saved_tensor_is_caught():
    x = leaf(1.0, 2.0, 3.0)
    y = x * 1
    z = (y.sigmoid() * y).sum()
    y[1:].zero_()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.backward()


def test_inplace_on_a_tensor_not_saved_keeps_gradients_right():
    # Add saves nothing: changing its input afterwards is harmless, as in torch.
    x = leaf(1.0, 2.0)
    y = x * 2
    z = y + 1
    y.mul_(3)
    (z.sum() + y.sum()).backward()
    assert x.grad.tolist() == [8.0, 8.0]


def test_mul_and_div_save_only_the_operands_a_gradient_needs():
    """y * 2 and y / 2 need not y but the constant: changing y afterwards is no error (torch);
    y * w with w requiring grad needs y for w's gradient, so it still is."""
    x = leaf(1.0, 2.0)
    y = x * 1
    z = y * 2 + y / 4 + 3 * y
    y.add_(1.0)
    z.sum().backward()
    assert x.grad.tolist() == [5.25, 5.25]
    w = leaf(3.0, 4.0)
    y = x * 1
    z = y * w
    y.add_(1.0)
    with pytest.raises(RuntimeError, match=r"Mul.*version 1; expected version 0"):
        z.sum().backward()


def test_bitwise_augmented_assignment_is_in_place():
    """``&=``, ``|=``, ``^=`` change the tensor itself (an alias sees it), keep its dtype and
    refuse a result that does not fit it, as torch."""
    torch = pytest.importorskip("torch")
    for lib in (torch, gradforge):
        mask = lib.tensor([True, False, True])
        alias = mask
        mask &= lib.tensor([True, True, False])
        ints = lib.tensor([5, 3])
        int_alias = ints
        ints |= 2
        ints ^= lib.tensor([1, 1])
        assert alias.tolist() == [True, False, False] and mask is alias
        assert int_alias.tolist() == [6, 2] and str(ints.dtype).endswith("int64")
        with pytest.raises(RuntimeError, match="can't be cast"):
            mask |= lib.tensor([3, 1, 0])


def rebase_chain(lib, x, w):
    y = x * 1
    y.mul_(w)
    y.add_(x)
    y.clamp_(-1.0, 1.0)
    y.sub_(w, alpha=2)
    y[0] = w[1] * 3
    y.masked_fill_(y > 0.5, 0.25)
    return y.exp_() * 1


def inplace_on_a_view(lib, x, w):
    y = x * 1
    y[:, 1:].mul_(w)
    y[0].add_(1.0)
    return y * y


def augmented_index_assignment(lib, x, w):
    y = x * 1
    y[:, 0] += w[0]
    y[1] *= 2
    return y


def inplace_on_reshaped_view(lib, x, w):
    y = x * 1
    y.view(-1)[::2].mul_(3)
    y.t()[0].add_(w[:2].sum())
    return y.sum(0)


def fill_with_tensor_value(lib, x, w):
    y = x * 1
    y[1].fill_(w[0])
    y[0].copy_(w * 2)
    y.t()[1:].zero_()
    return y


@pytest.mark.parametrize("fn", [rebase_chain, inplace_on_a_view, augmented_index_assignment,
                                inplace_on_reshaped_view, fill_with_tensor_value])
def test_inplace_ops_under_autograd_match_torch(fn):
    compare(fn, [(2, 3), (2, 2) if fn is inplace_on_a_view else (3,)])


def test_inplace_on_a_view_of_a_leaf_raises():
    x = leaf(1.0, 2.0)
    with pytest.raises(RuntimeError, match="view of a leaf Variable"):
        x[0].mul_(2)


def test_inplace_into_a_constant_with_a_grad_value_joins_the_graph():
    w = leaf(2.0)
    buf = gradforge.zeros(3, dtype=gradforge.float64)
    buf[1:].add_(w)
    assert buf.requires_grad and not buf.is_leaf
    buf.sum().backward()
    assert w.grad.tolist() == [2.0]


def test_inplace_dtype_rules():
    x = gradforge.tensor([1, 2])
    with pytest.raises(RuntimeError, match="result type gradforge.float32 can't be cast to the "
                                           "desired output type gradforge.int64"):
        x.add_(1.5)
    with pytest.raises(RuntimeError, match="can't be cast"):
        x.div_(2)
    # Float-valued unary ops and float bounds: NumPy would truncate into the int storage.
    for op in (x.exp_, x.sqrt_, x.sigmoid_, lambda: x.clamp_(0.5, 2.5)):
        with pytest.raises(RuntimeError, match="float32 can't be cast to the desired output "
                                               "type gradforge.int64"):
            op()
    assert x.tolist() == [1, 2]
    z = gradforge.tensor([1.0, 3.0])
    alias = z
    z **= 2  # in place, as torch: the alias sees it
    assert alias is z and alias.tolist() == [1.0, 9.0]
    y = gradforge.tensor([1.0, 2.0])
    y.add_(gradforge.tensor([1, 1]))
    assert y.dtype is gradforge.float32 and y.tolist() == [2.0, 3.0]
    with pytest.raises(RuntimeError, match=r"output with shape \[2\] doesn't match the "
                                           r"broadcast shape \[2, 2\]"):
        y.add_(gradforge.ones(2, 2))


# -- grad mode -------------------------------------------------------------------------------
def test_no_grad_context_and_decorator():
    x = leaf(1.0)
    with gradforge.no_grad():
        assert not gradforge.is_grad_enabled()
        y = x * 2
        with gradforge.enable_grad():
            assert gradforge.is_grad_enabled()
            z = x * 2
    assert gradforge.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None and z.requires_grad

    @gradforge.no_grad()
    def f(t):
        assert not gradforge.is_grad_enabled()
        return t * 2

    assert not f(x).requires_grad and gradforge.is_grad_enabled()


def test_enable_grad_as_decorator_inside_no_grad():
    @gradforge.enable_grad()
    def f(t):
        return t * 2

    x = leaf(1.0)
    with gradforge.no_grad():
        assert f(x).requires_grad
        assert not gradforge.is_grad_enabled()


def test_set_grad_enabled_as_function_context_and_decorator():
    x = leaf(1.0)
    try:
        gradforge.set_grad_enabled(False)
        assert not (x * 2).requires_grad
    finally:
        gradforge.set_grad_enabled(True)
    with gradforge.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert gradforge.is_grad_enabled()

    @gradforge.set_grad_enabled(False)
    def f(t):
        return t * 2

    assert not f(x).requires_grad and gradforge.is_grad_enabled()


def test_inference_mode():
    x = leaf(1.0)
    with gradforge.inference_mode():
        assert not (x * 2).requires_grad
    with gradforge.inference_mode(False):
        assert (x * 2).requires_grad

    @gradforge.inference_mode()
    def f(t):
        return t * 2

    assert not f(x).requires_grad and gradforge.is_grad_enabled()


def test_grad_mode_decorators_without_parentheses():
    x = leaf(1.0)

    @gradforge.no_grad
    def f(t):
        return t * 2

    @gradforge.inference_mode
    def g(t):
        return t * 2

    @gradforge.enable_grad
    def h(t):
        return t * 2

    assert not f(x).requires_grad and not g(x).requires_grad
    with gradforge.no_grad():
        assert h(x).requires_grad
    assert gradforge.is_grad_enabled()


def test_grad_mode_decorating_a_generator_holds_inside_each_step():
    @gradforge.no_grad()
    def steps(t):
        for _ in range(2):
            received = yield (t * 2).requires_grad
            assert received == "go" and not gradforge.is_grad_enabled()
        return "done"

    gen = steps(leaf(1.0))
    assert next(gen) is False and gradforge.is_grad_enabled()   # restored between steps
    assert gen.send("go") is False and gradforge.is_grad_enabled()
    with pytest.raises(StopIteration, match="done"):
        gen.send("go")


def test_grad_mode_is_restored_after_an_exception():
    with pytest.raises(ValueError), gradforge.no_grad():
        raise ValueError
    assert gradforge.is_grad_enabled()


def test_no_grad_inplace_update_like_an_optimizer():
    w = leaf(1.0, 2.0)
    (w * w).sum().backward()
    with gradforge.no_grad():
        w -= 0.1 * w.grad
    assert w.is_leaf and w.requires_grad
    np.testing.assert_allclose(w.detach().numpy(), [0.8, 1.6])


GRAD_CASES = {
    "ViewWrite": [(inplace_on_a_view, [(2, 3), (2, 2)]),
                  (augmented_index_assignment, [(2, 3), (3,)]),
                  (inplace_on_reshaped_view, [(2, 3), (3,)])],
}

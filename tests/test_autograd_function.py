"""User-facing autograd API: custom ``autograd.Function``, hooks, anomaly detection,
gradcheck/gradgradcheck and ``autograd.functional`` (vjp, jvp) against torch."""
import numpy as np
import pytest

import gradforge
from gradforge import autograd


def leaf(*values):
    return gradforge.tensor(list(values), dtype=gradforge.float64, requires_grad=True)


# -- custom Function -------------------------------------------------------------------------
class Cube(autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return x * x * x * scale

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * 3 * x * x * ctx.scale, None


class SplitSign(autograd.Function):
    """Two outputs (positive part, negative part) and a non-differentiable mask."""

    @staticmethod
    def forward(ctx, x):
        positive = x.relu()
        negative = x - positive
        mask = x > 0
        ctx.save_for_backward(mask)
        ctx.mark_non_differentiable(mask)
        return positive, negative, mask

    @staticmethod
    def backward(ctx, grad_positive, grad_negative, grad_mask):
        (mask,) = ctx.saved_tensors
        return gradforge.where(mask, grad_positive, grad_negative)


class Needs(autograd.Function):
    seen = None

    @staticmethod
    def forward(ctx, a, b):
        Needs.seen = ctx.needs_input_grad
        return a * b

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, grad_output


class SavesOutput(autograd.Function):
    @staticmethod
    def forward(ctx, x):
        out = x.exp()
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        return grad_output * out


def test_custom_function_forward_backward_and_second_order():
    x = leaf(1.0, -2.0)
    y = Cube.apply(x, 2.0)
    assert y.tolist() == [2.0, -16.0] and y.grad_fn.name() == "CubeBackward0"
    (g,) = autograd.grad(y.sum(), x, create_graph=True)
    assert g.tolist() == [6.0, 24.0]
    (h,) = autograd.grad(g.sum(), x)
    assert h.tolist() == [12.0, -24.0]
    assert autograd.gradcheck(lambda t: Cube.apply(t, 0.5), (leaf(0.3, -0.7),))


def test_custom_function_forward_runs_without_recording():
    class Probe(autograd.Function):
        @staticmethod
        def forward(ctx, x):
            assert not gradforge.is_grad_enabled()
            return x * 2

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output * 2

    y = Probe.apply(leaf(1.0))
    assert y.grad_fn.name() == "ProbeBackward0" and gradforge.is_grad_enabled()


def test_custom_function_with_several_outputs_and_a_non_differentiable_one():
    x = leaf(1.5, -2.0, 3.0)
    positive, negative, mask = SplitSign.apply(x)
    assert positive.requires_grad and negative.requires_grad and not mask.requires_grad
    assert mask.tolist() == [True, False, True]
    (positive * 2 + negative * 3).sum().backward()
    assert x.grad.tolist() == [2.0, 3.0, 2.0]


def test_missing_output_gradients_are_materialized_as_zeros():
    x = leaf(1.5, -2.0)
    positive, _, _ = SplitSign.apply(x)
    positive.sum().backward()
    assert x.grad.tolist() == [1.0, 0.0]


def test_needs_input_grad():
    a, b = leaf(1.0), gradforge.tensor([2.0], dtype=gradforge.float64)
    Needs.apply(a, b)
    assert Needs.seen == (True, False)
    Needs.apply(b, a)
    assert Needs.seen == (False, True)


def test_saving_an_output_does_not_create_a_cycle_and_is_version_checked():
    x = leaf(0.5, 1.0)
    y = SavesOutput.apply(x)
    y.sum().backward(retain_graph=True)
    np.testing.assert_allclose(x.grad.numpy(), np.exp([0.5, 1.0]))
    y.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_backward_returning_the_wrong_shape_or_count_raises():
    class WrongShape(autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output.sum()

    class TooFew(autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, grad_output):
            return (grad_output,)

    with pytest.raises(RuntimeError, match=r"WrongShapeBackward0.*got \[\] but expected shape "
                                           r"\[2\]"):
        WrongShape.apply(leaf(1.0, 2.0)).sum().backward()
    with pytest.raises(RuntimeError, match="incorrect number of gradients"):
        TooFew.apply(leaf(1.0), leaf(2.0)).sum().backward()


def test_backward_may_return_extra_nones_but_no_extra_gradients():
    class Extra(autograd.Function):
        @staticmethod
        def forward(ctx, x, extra):
            ctx.extra = extra
            return x * 2

        @staticmethod
        def backward(ctx, grad_output):
            return (grad_output * 2, None, ctx.extra)

    x = leaf(1.0)
    Extra.apply(x, None).sum().backward()
    assert x.grad.tolist() == [2.0]
    with pytest.raises(RuntimeError, match=r"incorrect number of gradients \(expected 2, got 3"):
        Extra.apply(x, x).sum().backward()


def test_gradient_returned_in_another_dtype_takes_the_input_dtype():
    class ToFloat32(autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output.float() * 2

    x = leaf(1.0, 2.0)
    ToFloat32.apply(x).sum().backward()   # as torch: .grad keeps float64
    assert x.grad.dtype is gradforge.float64 and x.grad.tolist() == [2.0, 2.0]


# -- hooks ---------------------------------------------------------------------------------------
def test_hook_on_a_leaf_sees_and_replaces_the_gradient():
    x = leaf(1.0, 2.0)
    seen = []
    handle = x.register_hook(lambda g: seen.append(g.tolist()) or g * 10)
    (x * 3).sum().backward()
    assert seen == [[3.0, 3.0]] and x.grad.tolist() == [30.0, 30.0]
    handle.remove()
    x.grad = None
    (x * 3).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0] and len(seen) == 1


def test_hook_on_a_non_leaf_changes_what_flows_upstream():
    x = leaf(1.0, 2.0)
    y = x * 2
    y.register_hook(lambda g: g * 0.5)
    seen = []
    y.register_hook(lambda g: seen.append(g.tolist()))
    (y * y).sum().backward()
    assert seen == [[2.0, 4.0]]             # hooks run in order, on the replaced gradient
    assert x.grad.tolist() == [4.0, 8.0]


def test_hook_with_autograd_grad():
    x = leaf(1.0)
    x.register_hook(lambda g: g + 1)
    (g,) = autograd.grad((x * 2).sum(), x)
    assert g.tolist() == [3.0]


def test_leaf_hook_runs_once_on_the_summed_gradient():
    # x is used three times: torch's AccumulateGrad sums first, then runs the hook once, so
    # a non-linear hook (clamping here) sees the total, not each part.
    torch = pytest.importorskip("torch")
    grads, calls = [], []
    for lib in (torch, gradforge):
        x = lib.tensor([1.0, -2.0], dtype=lib.float64, requires_grad=True)
        x.register_hook(lambda g, lib=lib: calls.append(lib) or g.clamp(-4.0, 4.0))
        (x * x + x * 3 + x.exp()).sum().backward()
        grads.append(x.grad.tolist())
    assert calls.count(torch) == calls.count(gradforge) == 1
    np.testing.assert_allclose(grads[1], grads[0])


def test_hook_must_return_a_tensor_of_the_same_shape():
    x = leaf(1.0, 2.0)
    x.register_hook(lambda g: g.sum())
    with pytest.raises(RuntimeError, match="changed the size"):
        (x * x).sum().backward()
    y = leaf(1.0, 2.0) * 2
    y.register_hook(lambda g: 2.0)
    with pytest.raises(TypeError, match="hook returned 'float'"):
        (y * y).sum().backward()


def test_hook_needs_requires_grad():
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        gradforge.ones(2).register_hook(lambda g: g)


# -- anomaly detection ---------------------------------------------------------------------------
def sqrt_at_zero(x):
    return x.sqrt()  # d sqrt(0) = inf, times 0 gives nan


def test_detect_anomaly_names_the_op_and_its_forward_traceback():
    x = leaf(0.0, 1.0)
    with autograd.detect_anomaly():
        y = sqrt_at_zero(x) * 0
        with pytest.raises(RuntimeError, match=r"(?s)'SqrtBackward0' returned nan.*sqrt_at_zero"):
            y.sum().backward()
    assert not autograd.is_anomaly_enabled()


def test_without_anomaly_detection_nan_passes_silently():
    x = leaf(0.0, 1.0)
    (sqrt_at_zero(x) * 0).sum().backward()
    assert np.isnan(x.grad.numpy()[0])


def test_set_detect_anomaly():
    autograd.set_detect_anomaly(True)
    try:
        assert autograd.is_anomaly_enabled()
    finally:
        autograd.set_detect_anomaly(False)
    assert not autograd.is_anomaly_enabled()
    x = leaf(0.0, 1.0)
    with autograd.set_detect_anomaly(True):         # also a context manager, as torch
        with pytest.raises(RuntimeError, match="returned nan"):
            (sqrt_at_zero(x) * 0).sum().backward()
    assert not autograd.is_anomaly_enabled()


# -- gradcheck -----------------------------------------------------------------------------------
class WrongBackward(autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * x  # should be 2 * x


class WrongSecondOrder(autograd.Function):
    """Right first derivative (3x^2), but written without tensor ops, so the second order
    sees a constant."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * gradforge.tensor(3 * x.detach().numpy() ** 2)


def test_gradcheck_passes_correct_gradients():
    x = leaf(0.3, -1.2, 2.0)
    assert autograd.gradcheck(lambda t: (t.tanh() * t).sum(), (x,))
    assert autograd.gradgradcheck(lambda t: t.sin() * t, (x,))


def test_gradcheck_catches_a_wrong_backward():
    x = leaf(0.3, -1.2, 2.0)
    with pytest.raises(autograd.GradcheckError, match="Jacobian mismatch"):
        autograd.gradcheck(WrongBackward.apply, (x,))
    assert not autograd.gradcheck(WrongBackward.apply, (x,), raise_exception=False)


def test_gradgradcheck_catches_a_wrong_second_derivative():
    x = leaf(0.3, -1.2, 2.0)
    assert autograd.gradcheck(WrongSecondOrder.apply, (x,))
    with pytest.raises(autograd.GradcheckError):
        autograd.gradgradcheck(WrongSecondOrder.apply, (x,))


def test_gradcheck_perturbs_non_contiguous_inputs():
    x = gradforge.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True).detach().t()
    x.requires_grad_()
    assert not x.is_contiguous()
    assert autograd.gradcheck(lambda t: (t * t).sum(0), (x,))


def test_gradcheck_with_several_inputs_and_outputs():
    a, b = leaf(0.5, 1.5), leaf(-1.0, 2.0)
    assert autograd.gradcheck(lambda x, y: (x * y, (x / y).exp()), (a, b))


def test_gradcheck_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="at least one input tensor to require gradient"):
        autograd.gradcheck(lambda t: t * 2, (gradforge.ones(2, dtype=gradforge.float64),))


def test_gradcheck_warns_for_float32():
    x = gradforge.tensor([1.0, 2.0], requires_grad=True)
    with pytest.warns(UserWarning, match="double precision"):
        autograd.gradcheck(lambda t: t * 2, (x,), eps=1e-3, atol=1e-2, rtol=1e-2)


# -- autograd.functional --------------------------------------------------------------------
FUNCTIONS = {
    "scalar": (lambda x: (x.exp() * x).sum(), [(3,)]),
    "vector": (lambda x: x.sin() * x, [(3,)]),
    "two_inputs": (lambda x, y: x @ y, [(2, 3), (3,)]),
    "two_outputs": (lambda x: (x * 2, x.tanh().sum()), [(3,)]),
}


@pytest.mark.parametrize("fn, shapes", FUNCTIONS.values(), ids=FUNCTIONS.keys())
@pytest.mark.parametrize("kind", ["vjp", "jvp"])
def test_functional_matches_torch(fn, shapes, kind):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(s) for s in shapes]
    t_in = tuple(torch.tensor(x) for x in xs)
    t_out = fn(*t_in)
    if kind == "vjp":
        outs = t_out if isinstance(t_out, tuple) else (t_out,)
        vs = tuple(rng.standard_normal(tuple(o.shape)) for o in outs)
    else:
        vs = tuple(rng.standard_normal(s) for s in shapes)
    results = []
    for lib in (torch, gradforge):
        inputs = tuple(lib.tensor(x) for x in xs)
        v = tuple(lib.tensor(a) for a in vs)
        if len(inputs) == 1:
            inputs = inputs[0]
        if len(v) == 1:
            v = v[0]
        func = getattr(lib.autograd.functional, kind)
        out, prod = func(fn, inputs, v)
        results.append([np.asarray(t.detach().numpy()) for t in
                        (out if isinstance(out, tuple) else (out,))
                        + (prod if isinstance(prod, tuple) else (prod,))])
    for t, g in zip(*results):
        np.testing.assert_allclose(g, t, rtol=1e-10, atol=1e-12)


def test_functional_create_graph_keeps_the_result_differentiable():
    x = leaf(0.5, -1.0)
    _, g = autograd.functional.vjp(lambda t: (t ** 3).sum(), x, create_graph=True)
    (h,) = autograd.grad(g.sum(), x)
    assert h.tolist() == [3.0, -6.0]


def test_functional_with_outputs_that_do_not_depend_on_the_inputs():
    torch = pytest.importorskip("torch")
    results = []
    for lib in (torch, gradforge):
        x, v = lib.tensor([1.0, 2.0]), lib.tensor([1.0, 3.0])

        def f(t, lib=lib):
            return t * 2, lib.tensor([5.0, 6.0])

        _, vjp = lib.autograd.functional.vjp(f, x, (v, v))
        _, jvp = lib.autograd.functional.jvp(f, x, v)
        _, const = lib.autograd.functional.jvp(lambda t, lib=lib: lib.ones(2), x, v)
        results.append([vjp.tolist(), [j.tolist() for j in jvp], const.tolist()])
        with pytest.raises(RuntimeError, match="does not require gradients"):
            lib.autograd.functional.vjp(f, x, (v, v), strict=True)
        with pytest.raises(RuntimeError, match="independent of input 1"):
            lib.autograd.functional.vjp(lambda a, b: a * 2, (x, x), v, strict=True)
    assert results[1] == results[0]

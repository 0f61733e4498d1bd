"""Every differentiable Function in gradforge has a float64 finite-difference case, first and
second order; the cases live in the ``GRAD_CASES`` tables of the test modules (see
tests/gradcases.py for how to add one)."""
import pytest
from gradcases import collect, gradforge_functions, graph_functions, needs_cases, qualified
from oracle import check_grad, grad_inputs_of

import gradforge

CASES, ERRORS = collect()


def _param(c):
    marks = [pytest.mark.cuda] if c.needs_cuda else []
    same_key = [x for x in CASES if x.key is c.key]
    return pytest.param(c, id=f"{c.key.__name__}-{same_key.index(c)}", marks=marks)


def test_registry_collects_without_errors():
    assert not ERRORS, "\n".join(ERRORS)


def test_every_differentiable_function_has_a_case():
    covered = {c.key for c in CASES}
    missing = [qualified(cls) for cls in gradforge_functions()
               if needs_cases(cls) and cls not in covered]
    assert not missing, (
        f"{len(missing)} differentiable Function(s) without a finite-difference case; add "
        "them to a GRAD_CASES table in their test module (see tests/gradcases.py), or set "
        "differentiable = False on a forward-only op:\n  " + "\n  ".join(missing))


def test_forward_only_ops_are_excluded_by_their_flag():
    from gradforge.ops._util import _NonDiff, nondiff
    excluded = [cls for cls in gradforge_functions() if not needs_cases(cls)]
    assert _NonDiff in excluded and vars(_NonDiff)["differentiable"] is False
    x = gradforge.randn(3, requires_grad=True)
    out = nondiff(lambda xp, a: a * 2, x)
    assert not out.requires_grad and out.grad_fn is None


@pytest.mark.parametrize("c", [_param(c) for c in CASES])
def test_finite_differences(c):
    device = "cuda" if c.needs_cuda else "cpu"
    inputs = grad_inputs_of(c.specs, device=device, grad_inputs=c.grad_inputs)
    outputs = c.fn(gradforge, *inputs)
    outputs = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
    used = graph_functions(outputs)
    if c.key not in used:
        # Some Functions appear only in a backward graph (the adjoint of another op).
        diff = [o for o in outputs if isinstance(o, gradforge.Tensor) and o.requires_grad]
        xs = [x for x in inputs if x.requires_grad]
        grads = gradforge.autograd.grad([o.sum() for o in diff], xs, create_graph=True,
                                        allow_unused=True)
        used |= graph_functions([g for g in grads if g is not None])
    assert c.key in used, (f"the case in tests/{c.module}.py for {qualified(c.key)} does not "
                           f"use it (its graph has {sorted(k.__name__ for k in used)})")
    check_grad(c.fn, c.specs, device=device, grad_inputs=c.grad_inputs, atol=c.atol,
               rtol=c.rtol, eps=c.eps, second_order=not c.first_order_only)

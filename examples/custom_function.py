"""A user-defined autograd Function with its own backward, checked, then differentiated twice.

    python examples/custom_function.py          # about a second, CPU only

What it shows:

1. ``Swish`` (``x * sigmoid(beta * x)``, Ramachandran et al., 2017) written as a subclass
   of ``gradforge.autograd.Function`` with a hand-derived backward, exactly as in PyTorch:
   static ``forward(ctx, ...)`` and ``backward(ctx, grad_output)``, ``ctx.save_for_backward``,
   ``ctx.needs_input_grad``, a gradient for a second tensor input (``beta``) and ``None``
   for a non-tensor one.
2. ``gradcheck`` comparing that backward with central finite differences in float64, and
   catching a deliberately wrong backward.
3. A second derivative with ``create_graph=True``: because the backward is written with
   tensor operations, autograd can differentiate it again; the result is checked against
   the closed form and with ``gradgradcheck``.
"""
from __future__ import annotations

import gradforge as torch
from gradforge.autograd import Function, gradcheck, gradgradcheck


class Swish(Function):
    """swish(x) = x * sigmoid(beta * x); d/dx = s + beta*x*s*(1 - s), d/dbeta = x^2*s*(1 - s)."""

    @staticmethod
    def forward(ctx, x, beta, scale=1.0):
        ctx.save_for_backward(x, beta)
        ctx.scale = scale   # plain Python values go on ctx as attributes
        return scale * x * torch.sigmoid(beta * x)

    @staticmethod
    def backward(ctx, grad_output):
        x, beta = ctx.saved_tensors
        # NOTE: sigmoid(beta*x) is recomputed here rather than saved in forward. forward runs
        # without recording a graph, so a value it computes would be a constant to a second
        # differentiation (the second derivative would silently miss its terms); saved
        # inputs, used with tensor ops, keep the whole formula differentiable.
        s = torch.sigmoid(beta * x)
        ds = s * (1 - s)   # sigmoid'(beta * x)
        g = grad_output * ctx.scale
        grad_x = g * (s + beta * x * ds) if ctx.needs_input_grad[0] else None
        # beta is a single number broadcast over x: its gradient sums over all elements.
        grad_beta = (g * x * x * ds).sum().reshape(beta.shape) if ctx.needs_input_grad[1] \
            else None
        return grad_x, grad_beta, None   # one entry per forward argument


class WrongSwish(Swish):
    """The same forward with a classic mistake in backward: the sigmoid's own derivative."""

    @staticmethod
    def backward(ctx, grad_output):
        x, beta = ctx.saved_tensors
        return grad_output * torch.sigmoid(beta * x), None, None   # no beta*x*s*(1-s) term


def main() -> dict:
    """Run the three checks; returns the numbers they printed."""
    torch.manual_seed(0)
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    beta = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)

    # 1. Use it like any op: it joins the graph, and backward fills .grad.
    y = Swish.apply(x, beta)
    y.sum().backward()
    print("swish(x)            ", [round(v, 4) for v in y.tolist()])
    print("d sum / dx          ", [round(v, 4) for v in x.grad.tolist()])
    print("d sum / d beta      ", round(beta.grad.item(), 4))

    # 2. gradcheck: the analytical Jacobian against central differences (float64).
    ok = gradcheck(lambda a, b: Swish.apply(a, b, 2.0), (x, beta))
    print("gradcheck(Swish)    ", ok)
    wrong = gradcheck(lambda a: WrongSwish.apply(a, beta.detach()), (x,),
                      raise_exception=False)
    print("gradcheck(WrongSwish)", wrong, "(the bug is caught)")

    # 3. Second derivative: differentiate the gradient again (create_graph=True records
    # the backward pass itself as a graph).
    (dx,) = torch.autograd.grad(Swish.apply(x, beta).sum(), x, create_graph=True)
    (d2x,) = torch.autograd.grad(dx.sum(), x)
    with torch.no_grad():
        s = torch.sigmoid(beta * x)
        ds = s * (1 - s)
        exact = 2 * beta * ds + beta * beta * x * ds * (1 - 2 * s)
    error = (d2x - exact).abs().max().item()
    print("d2 swish / dx2      ", [round(v, 4) for v in d2x.tolist()])
    print(f"largest difference from the closed form: {error:.1e}")
    ok2 = gradgradcheck(lambda a, b: Swish.apply(a, b), (x, beta))
    print("gradgradcheck(Swish)", ok2)
    return {"gradcheck": ok, "wrong_gradcheck": wrong, "second_derivative_error": error,
            "gradgradcheck": ok2}


if __name__ == "__main__":
    main()

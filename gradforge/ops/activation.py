"""Activation functions beyond relu/sigmoid/tanh: leaky_relu, elu (selu, celu), gelu, silu,
softplus, hardtanh (relu6).

Forward works on arrays; backward recomputes the local derivative with tensor ops from the
saved input (or output), so second derivatives come for free.
"""
from __future__ import annotations

import math

from ..autograd.function import Function
from ..tensor import Tensor
from ._util import promote
from .elementwise import erf, exp, sigmoid, tanh, where

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715


def _floating(input) -> Tensor:
    """``input`` as a float tensor (int tensors become the default float, as in torch)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"expected a Tensor as input, got {type(input).__name__}")
    (x,), _ = promote(input, floating=True)
    return x


class LeakyRelu(Function):
    """d leaky_relu(a) = g where a > 0, else g*negative_slope."""

    @staticmethod
    def forward(ctx, a, negative_slope):
        ctx.save_for_backward(a)
        ctx.negative_slope = negative_slope
        x = a._data
        return ctx.xp.where(x > 0, x, x * negative_slope)

    @staticmethod
    def backward(ctx, grad_output):
        (a,) = ctx.saved_tensors
        return where(a > 0, grad_output, grad_output * ctx.negative_slope), None


def leaky_relu(input, negative_slope: float = 0.01) -> Tensor:
    """``x`` where positive, ``negative_slope * x`` elsewhere."""
    return LeakyRelu.apply(_floating(input), negative_slope)


class Elu(Function):
    """out = scale*x (x > 0) or scale*alpha*(exp(x*input_scale) - 1);
    d = g*scale (x > 0) or g*input_scale*(out + scale*alpha)."""

    saves_output = True

    @staticmethod
    def forward(ctx, a, alpha, scale, input_scale):
        ctx.save_for_backward(a)
        ctx.alpha, ctx.scale, ctx.input_scale = alpha, scale, input_scale
        x = a._data
        xp = ctx.xp
        # NOTE: expm1 of min(x, 0) only: no overflow warning from the unused branch.
        negative = xp.expm1(xp.minimum(x, 0) * input_scale) * (alpha * scale)
        return xp.where(x > 0, x * scale, negative)

    @staticmethod
    def backward(ctx, grad_output):
        a, out = ctx.saved_tensors
        # The negative branch's slope comes from the output: d/dx = input_scale*(out + s*a).
        negative = grad_output * ((out + ctx.scale * ctx.alpha) * ctx.input_scale)
        return where(a > 0, grad_output * ctx.scale, negative), None, None, None


def elu(input, alpha: float = 1.0) -> Tensor:
    """Exponential linear unit: ``x`` if positive, else ``alpha * (exp(x) - 1)``."""
    return Elu.apply(_floating(input), alpha, 1.0, 1.0)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input) -> Tensor:
    """Scaled ELU with the self-normalising constants of Klambauer et al."""
    return Elu.apply(_floating(input), _SELU_ALPHA, _SELU_SCALE, 1.0)


def celu(input, alpha: float = 1.0) -> Tensor:
    """Continuously differentiable ELU: ``max(0, x) + min(0, alpha*(exp(x/alpha) - 1))``."""
    return Elu.apply(_floating(input), alpha, 1.0, 1.0 / alpha)


class Gelu(Function):
    """gelu(x) = x*Phi(x); d = g*(Phi(x) + x*phi(x)) (exact, with erf)."""

    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        x = a._data
        return x * (0.5 + 0.5 * ctx.device.backend.erf(x * _SQRT_HALF))

    @staticmethod
    def backward(ctx, grad_output):
        (a,) = ctx.saved_tensors
        cdf = 0.5 + 0.5 * erf(a * _SQRT_HALF)
        pdf = exp(a * a * -0.5) * _INV_SQRT_2PI
        return grad_output * (cdf + a * pdf)


class GeluTanh(Function):
    """gelu ~ x/2*(1 + tanh(u)), u = sqrt(2/pi)*(x + 0.044715x^3);
    d = g*(1/2*(1 + t) + x/2*(1 - t^2)*du/dx)."""

    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        x = a._data
        u = (x + _GELU_CUBIC * x * x * x) * _SQRT_2_OVER_PI
        return 0.5 * x * (1 + ctx.xp.tanh(u))

    @staticmethod
    def backward(ctx, grad_output):
        (a,) = ctx.saved_tensors
        a2 = a * a
        t = tanh((a + a2 * a * _GELU_CUBIC) * _SQRT_2_OVER_PI)
        du = (a2 * (3 * _GELU_CUBIC) + 1) * _SQRT_2_OVER_PI
        return grad_output * ((t + 1) * 0.5 + a * 0.5 * (1 - t * t) * du)


def gelu(input, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit; ``approximate='tanh'`` uses the tanh formula."""
    if approximate == "none":
        return Gelu.apply(_floating(input))
    if approximate == "tanh":
        return GeluTanh.apply(_floating(input))
    raise RuntimeError(f"approximate argument must be either none or tanh, got "
                       f"'{approximate}'")


class Silu(Function):
    """silu(x) = x*s, s = sigmoid(x); d = g*s*(1 + x*(1 - s))."""

    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return a._data * sigmoid(a)._data

    @staticmethod
    def backward(ctx, grad_output):
        (a,) = ctx.saved_tensors
        s = sigmoid(a)
        return grad_output * (s * (a * (1 - s) + 1))


def silu(input) -> Tensor:
    """``x * sigmoid(x)`` (also called swish)."""
    return Silu.apply(_floating(input))


class Softplus(Function):
    """softplus(x) = log(1 + exp(beta*x))/beta (x where beta*x > threshold);
    d = g*sigmoid(beta*x) (g above the threshold)."""

    @staticmethod
    def forward(ctx, a, beta, threshold):
        ctx.save_for_backward(a)
        ctx.beta, ctx.threshold = beta, threshold
        xp = ctx.xp
        x = a._data
        bx = x * beta
        # NOTE: log1p(exp(-|bx|)) + max(bx, 0) never overflows, whatever the threshold.
        soft = (xp.log1p(xp.exp(-xp.abs(bx))) + xp.maximum(bx, 0)) / beta
        return xp.where(bx > threshold, x, soft)

    @staticmethod
    def backward(ctx, grad_output):
        (a,) = ctx.saved_tensors
        bx = a * ctx.beta
        return where(bx > ctx.threshold, grad_output, grad_output * sigmoid(bx)), None, None


def softplus(input, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """Smooth approximation of relu: ``log(1 + exp(beta*x)) / beta``, linear above
    ``threshold``."""
    return Softplus.apply(_floating(input), beta, threshold)


class Hardtanh(Function):
    """clamp(x, lo, hi); d = g strictly inside (lo, hi), 0 elsewhere (torch's rule)."""

    @staticmethod
    def forward(ctx, a, min_val, max_val):
        ctx.save_for_backward(a)
        ctx.bounds = (min_val, max_val)
        return ctx.xp.clip(a._data, min_val, max_val)

    @staticmethod
    def backward(ctx, grad_output):
        (a,) = ctx.saved_tensors
        lo, hi = ctx.bounds
        return where((a > lo) & (a < hi), grad_output, 0.0), None, None


def hardtanh(input, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """``clamp(x, min_val, max_val)`` with a zero gradient at and beyond the bounds."""
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val ({min_val}) cannot be greater than max_val "
                         f"({max_val})")
    return Hardtanh.apply(_floating(input), min_val, max_val)


def relu6(input) -> Tensor:
    """``min(max(0, x), 6)``."""
    return hardtanh(input, 0.0, 6.0)

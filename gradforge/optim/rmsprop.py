"""RMSprop, optionally centered and with momentum."""
from __future__ import annotations

from typing import Any

from .optimizer import Optimizer, ParamsT, check_flags, check_lr, regularized_grad, scalar

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop, torch's update rule.

    ``v = alpha * v + (1 - alpha) * g * g``; the denominator is ``sqrt(v) + eps`` or, when
    centered, ``sqrt(v - m * m) + eps`` with ``m`` the running mean of ``g``. Then
    ``p -= lr * g / denominator``, or with momentum ``buf = momentum * buf + g / denominator``
    and ``p -= lr * buf``.

    Args:
        params: tensors or parameter groups to optimize.
        lr: learning rate.
        alpha: smoothing constant of the running averages.
        eps: added to the denominator for numerical stability.
        weight_decay: L2 penalty added to the gradient.
        momentum: momentum factor.
        centered: normalize by the estimated variance of the gradient instead of its
            uncentered second moment.
        capturable, differentiable: must be False.
        foreach: accepted for compatibility.
        maximize: maximize the objective instead of minimizing it.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0, momentum: float = 0,
                 centered: bool = False, capturable: bool = False,
                 foreach: bool | None = None, maximize: bool = False,
                 differentiable: bool = False) -> None:
        check_lr(lr)
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        defaults = {"lr": lr, "momentum": momentum, "alpha": alpha, "eps": eps,
                    "centered": centered, "weight_decay": weight_decay,
                    "capturable": capturable, "foreach": foreach, "maximize": maximize,
                    "differentiable": differentiable}
        check_flags(defaults)
        super().__init__(params, defaults)

    def _update_group(self, group: dict[str, Any]) -> None:
        lr = scalar(group["lr"])
        alpha, eps, weight_decay = group["alpha"], group["eps"], group["weight_decay"]
        momentum, centered, maximize = group["momentum"], group["centered"], group["maximize"]
        # Optional buffers only where their option is on: torch's state keys.
        buffers = ["square_avg"] + ["momentum_buffer"] * (momentum > 0) + ["grad_avg"] * centered
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            p_state = self._lazy_state(p, buffers)
            p_state["step"].add_(1)
            grad = regularized_grad(p, grad, weight_decay, maximize)
            square_avg = p_state["square_avg"]
            square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
            if centered:
                grad_avg = p_state["grad_avg"]
                grad_avg.lerp_(grad, 1 - alpha)
                # torch's square_avg.addcmul(grad_avg, grad_avg, value=-1): the same rounding.
                avg = square_avg.sub(grad_avg * grad_avg).sqrt_()
            else:
                avg = square_avg.sqrt()
            avg.add_(eps)
            # With momentum the normalized gradient is accumulated, then applied.
            if momentum > 0:
                buf = p_state["momentum_buffer"]
                buf.mul_(momentum).addcdiv_(grad, avg)
                p.add_(buf, alpha=-lr)
            else:
                p.addcdiv_(grad, avg, value=-lr)

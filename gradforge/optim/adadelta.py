"""Adadelta: step sizes from running averages of squared gradients and squared updates."""
from __future__ import annotations

from typing import Any

from .optimizer import Optimizer, ParamsT, check_flags, check_lr, regularized_grad, scalar

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    """Adadelta, torch's update rule.

    ``v = rho * v + (1 - rho) * g * g``, ``delta = sqrt(u + eps) / sqrt(v + eps) * g``,
    ``u = rho * u + (1 - rho) * delta * delta`` and ``p -= lr * delta``.

    Args:
        params: tensors or parameter groups to optimize.
        lr: coefficient that scales delta before it is applied to the parameters.
        rho: decay rate of the running averages, in [0, 1].
        eps: added inside the square roots for numerical stability.
        weight_decay: L2 penalty added to the gradient.
        foreach: accepted for compatibility.
        capturable, differentiable: must be False.
        maximize: maximize the objective instead of minimizing it.
    """

    def __init__(self, params: ParamsT, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0, foreach: bool | None = None, *,
                 capturable: bool = False, maximize: bool = False,
                 differentiable: bool = False) -> None:
        check_lr(lr)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = {"lr": lr, "rho": rho, "eps": eps, "weight_decay": weight_decay,
                    "maximize": maximize, "capturable": capturable, "foreach": foreach,
                    "differentiable": differentiable}
        check_flags(defaults)
        super().__init__(params, defaults)

    def _update_group(self, group: dict[str, Any]) -> None:
        lr = scalar(group["lr"])
        rho, eps, weight_decay = group["rho"], group["eps"], group["weight_decay"]
        maximize = group["maximize"]
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            p_state = self._lazy_state(p, ("square_avg", "acc_delta"))
            p_state["step"].add_(1)
            grad = regularized_grad(p, grad, weight_decay, maximize)
            square_avg, acc_delta = p_state["square_avg"], p_state["acc_delta"]
            square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)
            # RMS of past updates over RMS of gradients: a step in the parameter's own units.
            std = square_avg.add(eps).sqrt_()
            delta = acc_delta.add(eps).sqrt_()
            delta.div_(std).mul_(grad)  # in place on the fresh temporary, as torch
            acc_delta.mul_(rho).addcmul_(delta, delta, value=1 - rho)
            p.add_(delta, alpha=-lr)

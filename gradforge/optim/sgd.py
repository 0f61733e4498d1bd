"""Stochastic gradient descent, with momentum, dampening, Nesterov and weight decay."""
from __future__ import annotations

from typing import Any

from .optimizer import Optimizer, ParamsT, check_flags, check_lr, regularized_grad, scalar

__all__ = ["SGD"]


class SGD(Optimizer):
    """Stochastic gradient descent (optionally with momentum), torch's update rule.

    With ``g = grad (+ weight_decay * p)``: ``buf = momentum * buf + (1 - dampening) * g``
    (``buf = g`` on the first step, undamped), then ``p -= lr * (g + momentum * buf)`` with
    Nesterov or ``p -= lr * buf`` without.

    Args:
        params: tensors or parameter groups to optimize.
        lr: learning rate.
        momentum: momentum factor.
        dampening: dampening of the gradient's contribution to the momentum.
        weight_decay: L2 penalty added to the gradient.
        nesterov: use Nesterov momentum (needs ``momentum > 0`` and zero dampening).
        maximize: maximize the objective instead of minimizing it.
        foreach, fused: accepted for compatibility; the update is always torch's
            single-tensor one.
        differentiable: must be False (differentiating through the step is not supported).
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, momentum: float = 0,
                 dampening: float = 0, weight_decay: float = 0, nesterov: bool = False, *,
                 maximize: bool = False, foreach: bool | None = None,
                 differentiable: bool = False, fused: bool | None = None) -> None:
        check_lr(lr)
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening,
                    "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize,
                    "foreach": foreach, "differentiable": differentiable, "fused": fused}
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        check_flags(defaults)
        super().__init__(params, defaults)

    def _update_group(self, group: dict[str, Any]) -> None:
        lr = scalar(group["lr"])
        momentum, dampening = group["momentum"], group["dampening"]
        weight_decay, nesterov, maximize = group["weight_decay"], group["nesterov"], \
            group["maximize"]
        state = self.state
        # torch's single-tensor loop, op for op: a few in-place ops per parameter.
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            grad = regularized_grad(p, grad, weight_decay, maximize)
            if momentum != 0:
                p_state = state[p]
                buf = p_state.get("momentum_buffer")
                if buf is None:
                    # The buffer starts as the gradient itself: no dampening on step one.
                    buf = p_state["momentum_buffer"] = grad.clone()
                else:
                    buf.mul_(momentum).add_(grad, alpha=1 - dampening)
                grad = grad.add(buf, alpha=momentum) if nesterov else buf
            p.add_(grad, alpha=-lr)

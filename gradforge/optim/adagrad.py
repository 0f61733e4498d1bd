"""Adagrad: per-coordinate learning rates from the accumulated squared gradients."""
from __future__ import annotations

from typing import Any

from .. import ops
from .optimizer import Optimizer, ParamsT, check_flags, check_lr, new_step, regularized_grad, scalar

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """Adagrad, torch's update rule.

    ``sum += g * g`` and ``p -= clr * g / (sqrt(sum) + eps)`` with the decayed learning rate
    ``clr = lr / (1 + (t - 1) * lr_decay)`` at step ``t``.

    Args:
        params: tensors or parameter groups to optimize.
        lr: learning rate.
        lr_decay: learning rate decay.
        weight_decay: L2 penalty added to the gradient.
        initial_accumulator_value: starting value of the sums of squared gradients.
        eps: added to the denominator for numerical stability.
        foreach, fused: accepted for compatibility.
        maximize: maximize the objective instead of minimizing it.
        differentiable: must be False.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, lr_decay: float = 0,
                 weight_decay: float = 0, initial_accumulator_value: float = 0,
                 eps: float = 1e-10, foreach: bool | None = None, *, maximize: bool = False,
                 differentiable: bool = False, fused: bool | None = None) -> None:
        check_lr(lr)
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError("Invalid initial_accumulator_value value: "
                             f"{initial_accumulator_value}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        defaults = {"lr": lr, "lr_decay": lr_decay, "eps": eps, "weight_decay": weight_decay,
                    "initial_accumulator_value": initial_accumulator_value,
                    "foreach": foreach, "maximize": maximize,
                    "differentiable": differentiable, "fused": fused}
        check_flags(defaults)
        super().__init__(params, defaults)
        # NOTE: unlike the other optimizers, torch's Adagrad creates its state up front.
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group)

    def _init_state(self, p, group: dict[str, Any]) -> dict[str, Any]:
        p_state = self.state[p]
        p_state["step"] = new_step()
        p_state["sum"] = ops.full_like(p, group["initial_accumulator_value"])
        return p_state

    def _update_group(self, group: dict[str, Any]) -> None:
        lr = scalar(group["lr"])
        lr_decay, eps, weight_decay = group["lr_decay"], group["eps"], group["weight_decay"]
        maximize = group["maximize"]
        state = self.state
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            # A group added after construction starts its state on its first step.
            p_state = state[p] if p in state else self._init_state(p, group)
            step_t = p_state["step"]
            step_t.add_(1)
            step = step_t.item()
            grad = regularized_grad(p, grad, weight_decay, maximize)
            clr = lr / (1 + (step - 1) * lr_decay)
            state_sum = p_state["sum"]
            state_sum.addcmul_(grad, grad, value=1)
            std = state_sum.sqrt().add_(eps)
            p.addcdiv_(grad, std, value=-clr)

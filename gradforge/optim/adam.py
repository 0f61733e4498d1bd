"""Adam and AdamW (Adam with decoupled weight decay)."""
from __future__ import annotations

from typing import Any

from .. import ops
from ..tensor import Tensor
from .optimizer import Optimizer, ParamsT, check_flags, check_lr, regularized_grad, scalar

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam, torch's single-tensor update rule.

    ``m = lerp(m, g, 1 - beta1)``, ``v = beta2 * v + (1 - beta2) * g * g``, then
    ``p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)`` (with the running
    maximum of ``v`` under ``amsgrad``).

    Args:
        params: tensors or parameter groups to optimize.
        lr: learning rate.
        betas: decay rates of the running averages of the gradient and of its square.
        eps: added to the denominator for numerical stability.
        weight_decay: L2 penalty added to the gradient (or, decoupled, applied to the
            parameter as in AdamW).
        amsgrad: normalize by the running maximum of the second moment (AMSGrad).
        foreach, fused: accepted for compatibility; the update is always torch's
            single-tensor one.
        maximize: maximize the objective instead of minimizing it.
        capturable, differentiable: must be False.
        decoupled_weight_decay: decay the parameter directly (AdamW) instead of adding the
            penalty to the gradient.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *,
                 foreach: bool | None = None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None,
                 decoupled_weight_decay: bool = False) -> None:
        check_lr(lr)
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        both_float = isinstance(betas[0], float) and isinstance(betas[1], float)
        both_tensor = isinstance(betas[0], Tensor) and isinstance(betas[1], Tensor)
        if not (both_float or both_tensor):
            raise ValueError("betas must be either both floats or both Tensors")
        if both_tensor:
            for i, beta in enumerate(betas):
                if beta.numel() != 1:
                    raise ValueError(f"Tensor betas[{i}] must be 1-element")
            # NOTE: without `differentiable`, a tensor beta only supplies its value.
            betas = (betas[0].item(), betas[1].item())
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                    "amsgrad": amsgrad, "maximize": maximize, "foreach": foreach,
                    "capturable": capturable, "differentiable": differentiable, "fused": fused,
                    "decoupled_weight_decay": decoupled_weight_decay}
        check_flags(defaults)
        super().__init__(params, defaults)

    def _update_group(self, group: dict[str, Any]) -> None:
        lr = scalar(group["lr"])
        beta1, beta2 = group["betas"]
        eps, weight_decay, amsgrad = group["eps"], group["weight_decay"], group["amsgrad"]
        maximize, decoupled = group["maximize"], group["decoupled_weight_decay"]
        # Optional buffers only where their option is on: torch's state keys.
        buffers = ["exp_avg", "exp_avg_sq"] + ["max_exp_avg_sq"] * amsgrad
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            p_state = self._lazy_state(p, buffers)
            step_t = p_state["step"]
            step_t.add_(1)
            if decoupled and weight_decay != 0:
                p.mul_(1 - lr * weight_decay)
            grad = regularized_grad(p, grad, 0 if decoupled else weight_decay, maximize)
            exp_avg, exp_avg_sq = p_state["exp_avg"], p_state["exp_avg_sq"]
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)

            # The bias corrections are Python floats from the CPU step counter, as in torch.
            step = step_t.item()
            step_size = lr / (1 - beta1 ** step)
            bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
            if amsgrad:
                max_exp_avg_sq = p_state["max_exp_avg_sq"]
                max_exp_avg_sq.copy_(ops.maximum(max_exp_avg_sq, exp_avg_sq))
                denom = max_exp_avg_sq.sqrt()
            else:
                denom = exp_avg_sq.sqrt()
            # In place on the fresh square root: torch's (sqrt(v) / c).add_(eps), one array less.
            denom.div_(bias_correction2_sqrt).add_(eps)
            p.addcdiv_(exp_avg, denom, value=-step_size)


class AdamW(Adam):
    """AdamW: Adam whose weight decay shrinks the parameter (``p *= 1 - lr * weight_decay``)
    instead of entering the gradient's running averages.

    Args:
        params: tensors or parameter groups to optimize.
        lr: learning rate.
        betas: decay rates of the running averages of the gradient and of its square.
        eps: added to the denominator for numerical stability.
        weight_decay: decoupled weight decay coefficient.
        amsgrad: normalize by the running maximum of the second moment (AMSGrad).
        maximize, foreach, capturable, differentiable, fused: as for ``Adam``.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False, foreach: bool | None = None, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize, capturable=capturable,
                         differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict (an Adam one too); the weight decay stays decoupled."""
        super().load_state_dict(state_dict)
        # AdamW always decouples, even when loading an Adam checkpoint (as torch does).
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True

"""``Optimizer``: parameter groups, per-parameter state, and checkpoints in torch's format.

A subclass implements ``_update_group(group)``, the update of one parameter group. ``step``
evaluates the closure with grad enabled and runs the updates under ``no_grad``, where the
in-place tensor ops (``add_``, ``mul_``, ``addcdiv_`` ...) write straight into the arrays of
the parameters and of the state: no graph, no copies of the parameters.

``state_dict()`` has torch's layout: ``{"state": {index: {...}}, "param_groups": [{...,
"params": [index, ...]}]}``, with parameters numbered in group order, so a checkpoint made by
either library loads into the other once its tensors are converted.
"""
from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any

from .. import ops
from ..autograd import enable_grad, no_grad
from ..backend.dtypes import float32, float64, get_default_dtype
from ..tensor import Tensor

__all__ = ["Optimizer"]

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]] | Iterable[tuple[str, Tensor]]


class Optimizer:
    """Base class of all optimizers.

    Args:
        params: an iterable of tensors, of ``(name, tensor)`` pairs, or of dicts (parameter
            groups: ``{"params": [...], "lr": ...}``) whose keys override ``defaults``.
        defaults: the default value of every hyperparameter, used where a group has none.
    """

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            f"Tensors or dicts, but got {type(params).__name__}")
        self.defaults = defaults
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    def __repr__(self) -> str:
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {key}: {group[key]}" for key in sorted(group) if key != "params"]
        return "\n".join(lines) + "\n)"

    # -- parameter groups -------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters, with its own hyperparameters, to ``param_groups``.

        Args:
            param_group: ``{"params": tensors, **hyperparameters}``; missing hyperparameters
                take the optimizer's defaults.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, "
                            "but the ordering of tensors in sets will change between runs. "
                            "Please use a list instead.")
        else:
            params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        tensors = [p[1] if isinstance(p, tuple) else p for p in params]
        if names:
            if len(names) != len(tensors):
                raise ValueError("all optimizer params should be with/without names. Some param "
                                 "names are missing")
            param_group["param_names"] = names
        param_group["params"] = tensors
        for i, p in enumerate(tensors):
            if not isinstance(p, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is "
                                f"{type(p).__name__}")
            if not (p.is_leaf or p.retains_grad):
                raise ValueError(f"can't optimize a non-leaf Tensor (parameter {i}, of shape "
                                 f"{list(p.shape)}, was computed by {p.grad_fn.name()})")
        for name, default in self.defaults.items():
            param_group.setdefault(name, default)

        ids = [id(p) for p in tensors]
        if len(set(ids)) != len(ids):
            # NOTE: torch only warns here (an error is announced for a future release).
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in "
                          "future, this will cause an error; see "
                          "github.com/pytorch/pytorch/issues/40967 for more information",
                          stacklevel=3)
        seen: set[int] = set()
        for group in self.param_groups:
            seen.update(id(p) for p in group["params"])
            if ("param_names" in param_group) != ("param_names" in group):
                which = "with names" if "param_names" in param_group else "without names"
                raise ValueError("all optimizer param groups should be with/without names. "
                                 f"cannot add param group {which} to the optimizer")
        if not seen.isdisjoint(ids):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    # -- the update -------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all optimized tensors.

        Args:
            set_to_none: drop the ``.grad`` tensors (the default) instead of filling them with
                zeros. A parameter whose grad is None is skipped by ``step``.
        """
        for group in self.param_groups:
            for p in group["params"]:
                grad = p.grad
                if grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                    continue
                if grad.grad_fn is not None:
                    grad.detach_()
                else:
                    grad.requires_grad_(False)
                grad.zero_()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step and return the closure's loss (None without one).

        Args:
            closure: re-evaluates the model and returns the loss; called with grad enabled
                before the update (needed by optimizers that evaluate the loss more than once).
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                self._update_group(group)
        return loss

    def _update_group(self, group: dict[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement step() or "
                                  "_update_group(group)")

    def _lazy_state(self, p: Tensor, buffers: Iterable[str]) -> dict[str, Any]:
        """``p``'s state, started on its first step (as torch does) with a step counter and
        zero tensors like ``p`` named ``buffers``."""
        p_state = self.state[p]
        if len(p_state) == 0:
            p_state["step"] = new_step()
            for name in buffers:
                p_state[name] = ops.zeros_like(p)
        return p_state

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state and hyperparameters, with parameters replaced by indices.

        ``state`` maps a parameter's index (its position, counting through the groups in
        order) to its state dict; each entry of ``param_groups`` holds the hyperparameters
        and ``params``, the list of its parameters' indices. The state tensors are the live
        ones (not copies), as in torch.
        """
        index: dict[int, int] = {}
        start = 0
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            # Same numbering as torch (a duplicate inside a group takes its last position).
            index.update({id(p): i for i, p in enumerate(group["params"], start)
                          if id(p) not in index})
            packed["params"] = [index[id(p)] for p in group["params"]]
            start += len(packed["params"])
            groups.append(packed)
        state = {(index[id(k)] if isinstance(k, Tensor) else k): dict(v)
                 for k, v in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict made by ``state_dict()`` (here or by torch, tensors converted).

        State tensors move to their parameter's device and, for floating parameters, take
        its dtype; ``step`` counters are kept as they are (torch keeps them on the CPU in the
        default float dtype). Group hyperparameters are replaced by the saved ones.

        Args:
            state_dict: ``{"state": ..., "param_groups": ...}``.
        """
        groups = self.param_groups
        saved_groups = [_copy_plain(g) for g in state_dict["param_groups"]]
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups: "
                             f"{len(saved_groups)} in the state dict, {len(groups)} in the "
                             "optimizer")
        for i, (group, saved) in enumerate(zip(groups, saved_groups)):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't "
                                 f"match the size of optimizer's group: group {i} has "
                                 f"{len(saved['params'])} parameters in the state dict and "
                                 f"{len(group['params'])} in the optimizer")
        id_map = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                          chain.from_iterable(g["params"] for g in groups)))
        state: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
        for key, value in state_dict["state"].items():
            # NOTE: a checkpoint format with JSON metadata may turn the indices into strings.
            index = int(key) if isinstance(key, str) and key.isdigit() else key
            if index in id_map:
                param = id_map[index]
                state[param] = _cast(param, value)
            else:
                state[key] = value
        for group, saved in zip(groups, saved_groups):
            saved["params"] = group["params"]
            if "param_names" in group and "param_names" not in saved:
                saved["param_names"] = group["param_names"]
            # A checkpoint from an older version may lack newer hyperparameters.
            for name, default in self.defaults.items():
                saved.setdefault(name, default)
        self.state = state
        self.param_groups = saved_groups


def _cast(param: Tensor, value, key=None):
    """``value`` with its tensors on ``param``'s device (and dtype, when floating)."""
    if isinstance(value, Tensor):
        if key == "step":
            return value
        if param.is_floating_point():
            return value.to(dtype=param.dtype, device=param.device)
        return value.to(device=param.device)
    if isinstance(value, dict):
        return {k: _cast(param, v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cast(param, v) for v in value)
    if key == "step" and isinstance(value, (int, float)):
        # torch turns a plain-number step from an old checkpoint back into a tensor.
        return new_step(float(value))
    return value


def _copy_plain(value):
    """A copy of nested dicts, lists and tuples (tensors cloned, other leaves shared)."""
    if isinstance(value, dict):
        return {k: _copy_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copy_plain(v) for v in value)
    if isinstance(value, Tensor):
        return value.clone()
    return value


def new_step(value: float = 0.0) -> Tensor:
    """A step counter as torch keeps it: a CPU scalar in float64 or, by default, float32."""
    dtype = float64 if get_default_dtype() == float64 else float32
    return ops.tensor(value, dtype=dtype)


def regularized_grad(p: Tensor, grad: Tensor, weight_decay: float, maximize: bool) -> Tensor:
    """The gradient an update rule follows: negated to maximize, plus the L2 term
    ``weight_decay * p`` (torch's order; out of place, so ``p.grad`` is left as it is)."""
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad.add(p, alpha=weight_decay)
    return grad


def check_lr(lr) -> None:
    """torch's checks on a learning rate (a number or a one-element tensor)."""
    if isinstance(lr, Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    if lr < 0.0:
        raise ValueError(f"Invalid learning rate: {lr}")


def check_flags(defaults: dict[str, Any]) -> None:
    """Accept torch's implementation switches that do not change the numbers.

    ``foreach`` and ``fused`` choose an implementation; gradforge has one (torch's
    single-tensor update), so they are recorded and otherwise ignored. ``differentiable``
    and ``capturable`` change semantics and are not supported.
    """
    if defaults.get("fused") and defaults.get("foreach"):
        raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
    for flag in ("differentiable", "capturable"):
        if defaults.get(flag):
            raise NotImplementedError(f"{flag}=True is not supported by gradforge optimizers")


def scalar(x):
    """A hyperparameter as a Python number (a one-element tensor lr is read once a step)."""
    return x.item() if isinstance(x, Tensor) else x

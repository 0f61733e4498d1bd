"""In-place ops (``add_``, ``mul_``, ``zero_`` ...).

Every in-place change bumps the version counter shared with views, so a saved tensor that
changed is caught at backward. Outside autograd (``no_grad``, or nothing requires grad) the
array is updated in place with ``out=``: the fast path optimizers use. When the graph is
being recorded, the op runs out of place on a clone and the tensor takes the result's place
in the graph (torch's rebase), so its old value stays correct for backward.
"""
from __future__ import annotations

from ..autograd.grad_mode import STATE
from ..backend.dtypes import result_type, scalar_category
from ..tensor import Tensor
from . import elementwise as ew


def tracking(target: Tensor, *others) -> bool:
    """Whether the change must be recorded in the graph (and is allowed)."""
    if not STATE.enabled:
        return False
    if target.requires_grad and target.grad_fn is None:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                           "operation.")
    return target.requires_grad or any(isinstance(o, Tensor) and o.requires_grad for o in others)


def _check_cast(target: Tensor, *others) -> None:
    dims = [(target._data.ndim, target.dtype)]
    scalars = []
    for o in others:
        if isinstance(o, Tensor):
            dims.append((o._data.ndim, o.dtype))
        elif o is not None:
            scalars.append(scalar_category(o))
    res = result_type(dims, scalars)
    if res._category > target.dtype._category:
        raise RuntimeError(f"result type {res.name.capitalize()} can't be cast to the desired "
                           f"output type {target.dtype.name.capitalize()}")


def commit(target: Tensor, result: Tensor) -> Tensor:
    """Write ``result`` into ``target``'s storage; ``target`` takes its place in the graph."""
    if tuple(result.shape) != tuple(target.shape):
        raise RuntimeError(f"output with shape {list(target.shape)} doesn't match the broadcast "
                           f"shape {list(result.shape)}")
    target._data[...] = result._data
    if result.requires_grad:
        target.requires_grad = True
        target.grad_fn = result.grad_fn
        target._output_nr = result._output_nr
    target._vc[0] += 1
    return target


def _operand(target: Tensor, other):
    """The array (or scalar) of ``other`` on ``target``'s device."""
    if isinstance(other, Tensor):
        if other._device != target._device:
            if other._data.ndim == 0 and other._device.type == "cpu":
                return other.item()
            raise RuntimeError("Expected all tensors to be on the same device, but found at least "
                               f"two devices, {target._device} and {other._device}!")
        return other._data
    return other


def _binary_inplace(name: str, out_of_place):
    ufunc_name = {"add": "add", "sub": "subtract", "mul": "multiply", "div": "true_divide"}[name]

    def op(self: Tensor, other, *, alpha=1) -> Tensor:
        _check_cast(self, other)
        if name == "div" and self._data.dtype.kind != "f":
            raise RuntimeError("result type Float can't be cast to the desired output type "
                               f"{self.dtype.name.capitalize()}")
        if tracking(self, other):
            kwargs = {"alpha": alpha} if name in ("add", "sub") else {}
            return commit(self, out_of_place(self.clone(), other, **kwargs))
        o = _operand(self, other)
        if alpha != 1:
            o = o * alpha
        getattr(self._device.xp, ufunc_name)(self._data, o, out=self._data, casting="unsafe")
        self._vc[0] += 1
        return self
    op.__name__ = name + "_"
    op.__doc__ = f"In-place ``{name}``."
    return op


add_ = _binary_inplace("add", ew.add)
sub_ = _binary_inplace("sub", ew.sub)
mul_ = _binary_inplace("mul", ew.mul)
div_ = _binary_inplace("div", ew.div)


def fill_(self: Tensor, value) -> Tensor:
    if tracking(self, value):
        return commit(self, _filled(self, value))
    self._data[...] = _operand(self, value)
    self._vc[0] += 1
    return self


def _filled(self: Tensor, value) -> Tensor:
    """A tensor of ``self``'s shape holding ``value`` (differentiable in a tensor value)."""
    from .creation import full
    everywhere = full(self.shape, True, device=self._device)
    if isinstance(value, Tensor):
        value = value.to(self.dtype)
    # where() routes the gradient to `value` and a zero gradient to the old contents.
    return ew.where(everywhere, value, self.clone())


def zero_(self: Tensor) -> Tensor:
    return fill_(self, 0)


def copy_(self: Tensor, src, non_blocking: bool = False) -> Tensor:
    if tracking(self, src):
        return commit(self, src.to(self._device, self.dtype).expand(self.shape) + 0)
    if isinstance(src, Tensor) and src._device != self._device:
        src = src.to(self._device)
    self._data[...] = src._data if isinstance(src, Tensor) else src
    self._vc[0] += 1
    return self


def clamp_(self: Tensor, min=None, max=None) -> Tensor:
    if tracking(self, min, max):
        return commit(self, ew.clamp(self.clone(), min, max))
    self._device.xp.clip(self._data, _operand(self, min), _operand(self, max), out=self._data)
    self._vc[0] += 1
    return self


clip_ = clamp_


def masked_fill_(self: Tensor, mask, value) -> Tensor:
    from .indexing import masked_fill
    if tracking(self, value):
        return commit(self, masked_fill(self.clone(), mask, value))
    if not isinstance(mask, Tensor) or mask._data.dtype.kind != "b":
        raise RuntimeError("masked_fill_ only supports boolean masks")
    self._device.xp.copyto(self._data, _operand(self, value),
                           where=self._device.xp.broadcast_to(_operand(self, mask),
                                                              self._data.shape))
    self._vc[0] += 1
    return self


def _unary_inplace(fn):
    def op(self: Tensor) -> Tensor:
        if tracking(self):
            return commit(self, fn(self.clone()))
        self._data[...] = fn(self.detach())._data
        self._vc[0] += 1
        return self
    op.__name__ = fn.__name__ + "_"
    return op


relu_ = _unary_inplace(ew.relu)
exp_ = _unary_inplace(ew.exp)
sqrt_ = _unary_inplace(ew.sqrt)
neg_ = _unary_inplace(ew.neg)
sigmoid_ = _unary_inplace(ew.sigmoid)
tanh_ = _unary_inplace(ew.tanh)
abs_ = _unary_inplace(ew.abs)


def pow_(self: Tensor, exponent) -> Tensor:
    if tracking(self, exponent):
        return commit(self, ew.pow(self.clone(), exponent))
    self._device.xp.power(self._data, _operand(self, exponent), out=self._data, casting="unsafe")
    self._vc[0] += 1
    return self


def addcmul_(self: Tensor, tensor1, tensor2, *, value=1) -> Tensor:
    return add_(self, ew.mul(tensor1, tensor2), alpha=value)


def addcdiv_(self: Tensor, tensor1, tensor2, *, value=1) -> Tensor:
    return add_(self, ew.div(tensor1, tensor2), alpha=value)


def lerp_(self: Tensor, end, weight) -> Tensor:
    return add_(self, ew.mul(ew.sub(end, self), weight))

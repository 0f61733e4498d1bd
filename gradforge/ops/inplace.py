"""In-place ops (``add_``, ``mul_``, ``zero_`` ...).

Every in-place change bumps the version counter shared with views, so a saved tensor that
changed is caught at backward. Outside autograd (``no_grad``, or nothing requires grad) the
array is updated in place with ``out=``: the fast path optimizers use. When the graph is
being recorded, the op runs out of place on a clone and the tensor takes the result's place
in the graph (torch's rebase), so its old value stays correct for backward. A view changed
in place rebases its base too (``ViewWrite``), so gradients reach the base's history.

CuPy writes on the current GPU: every op here runs with its tensor's GPU made current when
another one is (``on_own_gpu``); the CPU pays one test.
"""
from __future__ import annotations

import functools

from ..autograd.function import Function
from ..autograd.grad_mode import STATE
from ..backend.dtypes import bool_, get_default_dtype, result_type, scalar_category
from ..tensor import Tensor
from . import comparison as cmp
from . import elementwise as ew
from ._util import broadcast_shapes


def on_own_gpu(fn):
    """``fn(self, ...)`` with ``self``'s GPU made current when another one is (a CPU tensor
    costs one attribute test)."""
    @functools.wraps(fn)
    def op(self: Tensor, *args, **kwargs) -> Tensor:
        if self._device.index is not None and (
                guard := self._device.backend.activate()) is not None:
            with guard:
                return fn(self, *args, **kwargs)
        return fn(self, *args, **kwargs)
    return op


def tracking(target: Tensor, *others) -> bool:
    """Whether the change must be recorded in the graph (and is allowed)."""
    if not STATE.enabled:
        return False
    if target.requires_grad and target.grad_fn is None:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                           "operation.")
    base = target._base
    if base is not None and base.requires_grad and base.grad_fn is None:
        raise RuntimeError("a view of a leaf Variable that requires grad is being used in an "
                           "in-place operation.")
    return target.requires_grad or any(isinstance(o, Tensor) and o.requires_grad for o in others)


def _check_operands(target: Tensor, *others, floating: bool = False) -> None:
    """torch's rules for an in-place result: it must keep ``target``'s dtype and shape."""
    data = target._data
    if data.dtype.kind == "f" and all(
            type(o) in (int, float) or (isinstance(o, Tensor) and o._data.dtype == data.dtype
                                         and o._data.shape == data.shape) for o in others):
        return  # the optimizers' case: nothing to promote or broadcast
    dims = [(target._data.ndim, target.dtype)]
    scalars = []
    for o in others:
        if isinstance(o, Tensor):
            dims.append((o._data.ndim, o.dtype))
            if o._data.shape != target._data.shape:
                _check_shape(target, broadcast_shapes(target._data.shape, o._data.shape))
        elif o is not None:
            scalars.append(scalar_category(o))
    res = result_type(dims, scalars)
    if floating and not res.is_floating_point:
        res = get_default_dtype()
    if res._category > target.dtype._category:
        raise RuntimeError(f"result type {res} can't be cast to the desired output type "
                           f"{target.dtype}")


def _check_shape(target: Tensor, shape: tuple) -> None:
    if tuple(shape) != target._data.shape:
        raise RuntimeError(f"output with shape {list(target.shape)} doesn't match the broadcast "
                           f"shape {list(shape)}")


class ViewWrite(Function):
    """out = base with view(out) = value (a view changed in place, as a function of its base);
    d = (g with the view's elements zeroed, view(g))."""

    @staticmethod
    def forward(ctx, base, value, chain):
        ctx.chain, ctx.value_shape = chain, value._data.shape
        out = base._data.copy()
        # The replayed view of the copy shares its memory: writing it writes `out`.
        _view(Tensor._make(out, ctx.device), chain)._data[...] = value._data
        return out

    @staticmethod
    def backward(ctx, grad_output):
        needs = ctx.needs_input_grad
        grad_base = ViewWrite.apply(grad_output, grad_output.new_zeros(ctx.value_shape),
                                    ctx.chain) if needs[0] else None
        grad_value = _view(grad_output, ctx.chain) if needs[1] else None
        return grad_base, grad_value, None


def _view(t: Tensor, chain) -> Tensor:
    """Take from ``t`` the view that ``chain`` (recorded by the view ops) describes."""
    for view_fn, args in chain:
        t = view_fn.apply(t, *args)
    return t


def _take_place(target: Tensor, result: Tensor) -> None:
    """``target`` becomes the output of ``result``'s node in the graph."""
    if result.requires_grad:
        target.requires_grad = True
        target.grad_fn = result.grad_fn
        target._output_nr = result._output_nr


def commit(target: Tensor, result: Tensor) -> Tensor:
    """Write ``result`` into ``target``'s storage; ``target`` takes its place in the graph."""
    _check_shape(target, result._data.shape)
    base = target._base
    if base is not None and result.requires_grad:
        new_base = ViewWrite.apply(base, result, target._view_chain)
        base._data[...] = new_base._data
        _take_place(base, new_base)
    else:
        target._data[...] = result._data
    _take_place(target, result)
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


def _binary_inplace(name: str, out_of_place, ufunc_name: str):
    @on_own_gpu
    def op(self: Tensor, other, *, alpha=1) -> Tensor:
        _check_operands(self, other, floating=name == "div")
        if tracking(self, other):
            kwargs = {"alpha": alpha} if name in ("add", "sub") else {}
            return commit(self, out_of_place(self.clone(), other, **kwargs))
        o = _operand(self, other)
        if alpha != 1:
            if name == "add":
                self._device.backend.axpy(self._data, alpha, o)
                self._vc[0] += 1
                return self
            o = o * alpha
        getattr(self._device.xp, ufunc_name)(self._data, o, out=self._data, casting="unsafe")
        self._vc[0] += 1
        return self
    op.__name__ = name + "_"
    op.__doc__ = f"In-place ``{name}``."
    return op


add_ = _binary_inplace("add", ew.add, "add")
sub_ = _binary_inplace("sub", ew.sub, "subtract")
mul_ = _binary_inplace("mul", ew.mul, "multiply")
div_ = _binary_inplace("div", ew.div, "true_divide")


def _replaced(self: Tensor, value) -> Tensor:
    """``value`` broadcast to ``self``'s shape and dtype, as a function of ``self`` too.

    ``where`` routes the gradient to ``value`` and a zero gradient to the old contents, so a
    tensor overwritten in the graph still propagates (zero) gradient to its history.
    """
    everywhere = self.new_full(self.shape, True, dtype=bool_)
    if isinstance(value, Tensor):
        value = value.to(self._device, self.dtype)
        _check_shape(self, broadcast_shapes(self._data.shape, value._data.shape))
    return ew.where(everywhere, value, self.clone())


@on_own_gpu
def fill_(self: Tensor, value) -> Tensor:
    """Fill with a number or a 0-d tensor."""
    if isinstance(value, Tensor) and value._data.ndim:
        raise RuntimeError("fill_ only supports 0-dimension value tensor but got tensor with "
                           f"{value._data.ndim} dimensions.")
    if tracking(self, value):
        return commit(self, _replaced(self, value))
    self._data[...] = _operand(self, value)
    self._vc[0] += 1
    return self


def zero_(self: Tensor) -> Tensor:
    return fill_(self, 0)


@on_own_gpu
def copy_(self: Tensor, src, non_blocking: bool = False) -> Tensor:
    """Copy ``src`` (broadcast, cast, moved to this device) into this tensor."""
    if tracking(self, src):
        return commit(self, _replaced(self, src))
    if isinstance(src, Tensor):
        if src._device != self._device:
            src = src.to(self._device)
        if src._data.shape != self._data.shape:
            _check_shape(self, broadcast_shapes(self._data.shape, src._data.shape))
        src = src._data
    self._data[...] = src
    self._vc[0] += 1
    return self


@on_own_gpu
def clamp_(self: Tensor, min=None, max=None) -> Tensor:
    if tracking(self, min, max):
        return commit(self, ew.clamp(self.clone(), min, max))
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    _check_operands(self, min, max)
    self._device.xp.clip(self._data, _operand(self, min), _operand(self, max), out=self._data)
    self._vc[0] += 1
    return self


clip_ = clamp_


@on_own_gpu
def masked_fill_(self: Tensor, mask, value) -> Tensor:
    from .indexing import masked_fill
    if tracking(self, value):
        return commit(self, masked_fill(self.clone(), mask, value))
    if not isinstance(mask, Tensor) or mask._data.dtype.kind != "b":
        raise RuntimeError("masked_fill_ only supports boolean masks, but got mask with dtype "
                           f"{getattr(mask, 'dtype', type(mask).__name__)}")
    xp = self._device.xp
    xp.copyto(self._data, _operand(self, value),
              where=xp.broadcast_to(_operand(self, mask), self._data.shape))
    self._vc[0] += 1
    return self


def _unary_inplace(fn):
    @on_own_gpu
    def op(self: Tensor) -> Tensor:
        if tracking(self):
            return commit(self, fn(self.clone()))
        out = fn(self.detach())
        if out._data.dtype != self._data.dtype:  # exp_ of an int tensor: torch refuses
            raise RuntimeError(f"result type {out.dtype} can't be cast to the desired output "
                               f"type {self.dtype}")
        self._data[...] = out._data
        self._vc[0] += 1
        return self
    op.__name__ = fn.__name__ + "_"
    op.__doc__ = f"In-place ``{fn.__name__}``."
    return op


relu_ = _unary_inplace(ew.relu)
exp_ = _unary_inplace(ew.exp)
sqrt_ = _unary_inplace(ew.sqrt)
neg_ = _unary_inplace(ew.neg)
sigmoid_ = _unary_inplace(ew.sigmoid)
tanh_ = _unary_inplace(ew.tanh)
abs_ = _unary_inplace(ew.abs)


@on_own_gpu
def pow_(self: Tensor, exponent) -> Tensor:
    _check_operands(self, exponent)
    if tracking(self, exponent):
        return commit(self, ew.pow(self.clone(), exponent))
    self._device.xp.power(self._data, _operand(self, exponent), out=self._data, casting="unsafe")
    self._vc[0] += 1
    return self


def _bitwise_inplace(out_of_place):
    """``&=``, ``|=``, ``^=`` (bool and integer tensors: nothing to differentiate)."""
    @on_own_gpu
    def op(self: Tensor, other) -> Tensor:
        _check_operands(self, other)
        return copy_(self, out_of_place(self, other))
    op.__name__ = out_of_place.__name__ + "_"
    op.__doc__ = f"In-place ``{out_of_place.__name__}``."
    return op


bitwise_and_ = _bitwise_inplace(cmp.bitwise_and)
bitwise_or_ = _bitwise_inplace(cmp.bitwise_or)
bitwise_xor_ = _bitwise_inplace(cmp.bitwise_xor)


def _same_kind(self: Tensor, *others) -> bool:
    """Whether ``others`` are tensors of ``self``'s floating dtype, shape and device, or
    Python numbers: the optimizers' operands, combined array to array with no graph."""
    data = self._data
    if data.dtype.kind != "f" or tracking(self, *others):
        return False
    return all(type(o) in (int, float) or (
        isinstance(o, Tensor) and o._data.dtype == data.dtype and o._data.shape == data.shape
        and o._device == self._device) for o in others)


def _add_array(self: Tensor, array, value) -> Tensor:
    """``self += value * array`` for a fresh ``array`` (scaled in place)."""
    if value != 1:
        array *= value
    self._data += array
    self._vc[0] += 1
    return self


@on_own_gpu
def addcmul_(self: Tensor, tensor1, tensor2, *, value=1) -> Tensor:
    """``self += value * tensor1 * tensor2``."""
    if isinstance(tensor1, Tensor) and isinstance(tensor2, Tensor) and \
            _same_kind(self, tensor1, tensor2):
        return _add_array(self, self._device.xp.multiply(tensor1._data, tensor2._data), value)
    return add_(self, ew.mul(tensor1, tensor2), alpha=value)


@on_own_gpu
def addcdiv_(self: Tensor, tensor1, tensor2, *, value=1) -> Tensor:
    """``self += value * tensor1 / tensor2``."""
    if isinstance(tensor1, Tensor) and isinstance(tensor2, Tensor) and \
            _same_kind(self, tensor1, tensor2):
        return _add_array(self, self._device.xp.true_divide(tensor1._data, tensor2._data),
                          value)
    return add_(self, ew.div(tensor1, tensor2), alpha=value)


@on_own_gpu
def lerp_(self: Tensor, end, weight) -> Tensor:
    """``self += weight * (end - self)``."""
    if isinstance(end, Tensor) and _same_kind(self, end, weight):
        step = self._device.xp.subtract(end._data, self._data)
        step *= weight._data if isinstance(weight, Tensor) else weight
        return _add_array(self, step, 1)
    return add_(self, ew.mul(ew.sub(end, self), weight))

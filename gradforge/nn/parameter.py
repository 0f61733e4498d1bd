"""``Parameter``: a tensor that a ``Module`` registers as learnable when assigned to it."""
from __future__ import annotations

from ..ops.creation import empty
from ..tensor import Tensor


class Parameter(Tensor):
    """A leaf tensor that requires grad by default and is registered by ``Module.__setattr__``.

    Args:
        data: the initial value; the parameter shares its storage (like ``data.detach()``).
        requires_grad: whether the parameter is trained (default True).
    """

    __slots__ = ()

    def __new__(cls, data: Tensor | None = None, requires_grad: bool = True):
        if data is None:
            data = empty(0)
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter data must be a Tensor, not {type(data).__name__}")
        if requires_grad and data._data.dtype.kind != "f":
            raise RuntimeError("Only Tensors of floating point dtype can require gradients "
                               f"(got {data.dtype})")
        p = Tensor._make(data._data, data._device, bool(requires_grad), vc=data._vc)
        p.__class__ = cls
        return p

    def __init__(self, data: Tensor | None = None, requires_grad: bool = True):
        # NOTE: everything happens in __new__; Tensor.__init__ would rebuild from data.
        pass

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo: dict) -> "Parameter":
        if id(self) in memo:
            return memo[id(self)]
        result = type(self)(self.detach().clone(), self.requires_grad)
        memo[id(self)] = result
        return result

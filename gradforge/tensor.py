"""``Tensor``: an n-dimensional array on a device, with an optional node in the autograd graph.

This file holds no math. Data lives in ``_data`` (a NumPy or CuPy array owned by the
tensor's device); every method that computes something delegates in one line to ``ops``.
"""
from __future__ import annotations

import warnings
import weakref

import numpy as np

from .autograd import engine as _engine
from .autograd.function import register_tensor_class
from .backend.device import on_device
from .backend.dtypes import from_numpy_dtype, get_default_dtype

__all__ = ["Tensor"]


class Tensor:
    """A multi-dimensional array that records the ops applied to it for reverse-mode autograd.

    Build tensors with ``gradforge.tensor``, ``zeros``, ``randn`` ...; ``Tensor(data)`` and
    ``Tensor(*sizes)`` work as ``torch.Tensor`` does (always the default float dtype).
    """

    __slots__ = (
        "__dict__",
        "__weakref__",
        "_data",
        "_device",
        "_grad",
        "_hooks",
        "_output_nr",
        "_vc",
        "grad_fn",
        "requires_grad",
    )

    # Set on views only (see autograd.function._record_view): the tensor a view was taken
    # from, and the view ops that lead from it to the view.
    _base = None
    _view_chain: tuple = ()

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, device=None):
        # NOTE: as torch.Tensor: the default float dtype always; Tensor(2, 3) is a shape.
        if len(args) == 1 and not isinstance(args[0], int):
            t = ops.tensor(args[0], dtype=get_default_dtype(), device=device)
        else:
            t = ops.zeros(*(args or (0,)), device=device)
        for name in ("_data", "_device", "requires_grad", "_grad", "grad_fn", "_output_nr",
                     "_vc", "_hooks"):
            setattr(self, name, getattr(t, name))

    @classmethod
    def _make(cls, data, device, requires_grad=False, grad_fn=None, output_nr=0, vc=None):
        """Wrap an array already on ``device`` (the fast internal constructor)."""
        t = object.__new__(cls)
        t._data = data
        t._device = device
        t.requires_grad = requires_grad
        t._grad = None
        t.grad_fn = grad_fn
        t._output_nr = output_nr
        t._vc = [0] if vc is None else vc
        t._hooks = None
        return t

    # -- attributes -------------------------------------------------------------------------
    @property
    def shape(self) -> Size:
        return Size(self._data.shape)

    @property
    def dtype(self):
        return from_numpy_dtype(self._data.dtype)

    @property
    def device(self):
        return self._device

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def is_cuda(self) -> bool:
        return self._device.type == "cuda"

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def _version(self) -> int:
        return self._vc[0]

    @property
    def data(self) -> Tensor:
        """The same storage, detached from the graph (``x.data`` in torch).

        NOTE: as torch, it has its own version counter: in-place changes through ``.data``
        are hidden from autograd (the escape hatch for updates a saved tensor must not see).
        """
        return Tensor._make(self._data, self._device)

    @data.setter
    def data(self, value: Tensor) -> None:
        self._data = value._data
        self._device = value._device

    def is_floating_point(self) -> bool:
        return self._data.dtype.kind == "f"

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self._data.shape[dim]

    def dim(self) -> int:
        return self._data.ndim

    def numel(self) -> int:
        return int(self._data.size)

    def element_size(self) -> int:
        return self._data.dtype.itemsize

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __hash__(self) -> int:
        return id(self)

    def __deepcopy__(self, memo: dict) -> Tensor:
        if self.grad_fn is not None:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) "
                               "support the deepcopy protocol at the moment.")
        with on_device(self._device):  # CuPy's copy() lands on the current GPU
            data = self._data.copy()
        new = type(self)._make(data, self._device, self.requires_grad)
        memo[id(self)] = new
        if self.grad is not None:
            new.grad = self.grad.__deepcopy__(memo)
        return new

    def __reduce_ex__(self, protocol):
        # Pickled as a host array, its device and requires_grad; the graph is not kept.
        return _rebuild, (type(self), self._device.backend.to_host(self._data),
                          str(self._device), self.requires_grad)

    # -- conversion -------------------------------------------------------------------------
    def item(self):
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted "
                               "to Scalar")
        return self._device.backend.to_host(self._data).reshape(()).item()

    def tolist(self):
        return self._device.backend.to_host(self._data).tolist()

    def numpy(self, *, force: bool = False) -> np.ndarray:
        """The data as a NumPy array, sharing memory on the CPU."""
        if self.requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                               "tensor.detach().numpy() instead.")
        if self._device.type != "cpu":
            if not force:
                raise TypeError(f"can't convert {self._device} device type tensor to numpy. "
                                "Use Tensor.cpu() to copy the tensor to host memory first.")
            return self._device.backend.to_host(self._data)
        return self._data

    def __array__(self, dtype=None, copy=None):
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                               "tensor.detach().numpy() instead.")
        if self._device.type != "cpu":
            raise TypeError(f"can't convert {self._device} device type tensor to numpy. "
                            "Use Tensor.cpu() to copy the tensor to host memory first.")
        a = self._data
        return a if dtype is None else a.astype(dtype, copy=False)

    def __dlpack__(self, stream=None, **kwargs):
        if self.requires_grad:
            raise RuntimeError("Can't export tensors that require gradient, use tensor.detach()")
        return self._data.__dlpack__(stream=stream, **kwargs) if stream is not None \
            else self._data.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._data.__dlpack_device__()

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with {self._data.size} values is "
                               "ambiguous")
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iub" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an "
                            "index")
        return int(self.item())

    def __repr__(self) -> str:
        return ops.tensor_repr(self)

    def __format__(self, spec: str) -> str:
        if self._data.ndim == 0:
            return format(self.item(), spec)
        return repr(self)

    # -- autograd ---------------------------------------------------------------------------
    @property
    def grad(self) -> Tensor | None:
        """The gradient that backward accumulated (None on a non-leaf without retain_grad)."""
        grad = self._grad
        if grad is None and self.grad_fn is not None and not self.retains_grad:
            warnings.warn(
                "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. Its "
                ".grad attribute won't be populated during autograd.backward(). If you indeed "
                "want the .grad field to be populated for a non-leaf Tensor, use .retain_grad() "
                "on the non-leaf Tensor.", UserWarning, stacklevel=2)
        return grad

    @grad.setter
    def grad(self, value: Tensor | None) -> None:
        # As torch: a gradient must match its tensor, or optimizers would update wrongly.
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError("assigned grad expected to be a Tensor or None but got grad of "
                                f"type {type(value).__name__}")
            if value._data.shape != self._data.shape:
                raise RuntimeError(f"attempting to assign a gradient of size {list(value.shape)} "
                                   f"to a tensor of size {list(self.shape)}")
            if value._data.dtype != self._data.dtype:
                raise RuntimeError(f"attempting to assign a gradient with dtype {value.dtype} to "
                                   f"a tensor with dtype {self.dtype}")
            if value._device != self._device:
                raise RuntimeError(f"attempting to assign a gradient on {value._device} to a "
                                   f"tensor on {self._device}")
        self._grad = value

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate the gradient of this tensor into the leaves' ``.grad``."""
        _engine.backward(self, None if gradient is None else (gradient,), retain_graph,
                         create_graph, inputs)

    def detach(self) -> Tensor:
        """A tensor sharing this storage, outside the graph."""
        return Tensor._make(self._data, self._device, vc=self._vc)

    def detach_(self) -> Tensor:
        if self._base is not None:
            raise RuntimeError("Can't detach views in-place. Use detach() instead.")
        self.grad_fn = None
        self.requires_grad = False
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if self.grad_fn is not None and not requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If "
                               "you want to use a computed variable in a subgraph that doesn't "
                               "require differentiation use var_no_grad = var.detach().")
        if requires_grad and self._data.dtype.kind != "f":
            raise RuntimeError("only Tensors of floating point dtype can require gradients "
                               f"(got {self.dtype})")
        self.requires_grad = requires_grad
        return self

    def retain_grad(self) -> None:
        """Keep the gradient of this non-leaf tensor in ``.grad`` after backward."""
        if self.grad_fn is None:
            if not self.requires_grad:
                raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
            return
        node = self.grad_fn
        if node._retained is None:
            node._retained = {}
        # NOTE: a weak reference, so the node does not keep its own output alive (no cycle).
        node._retained[self._output_nr] = weakref.ref(self)

    @property
    def retains_grad(self) -> bool:
        node = self.grad_fn
        return node is not None and bool(node._retained) and self._output_nr in node._retained

    def register_hook(self, hook) -> _RemovableHandle:
        """Call ``hook(grad)`` when this tensor's gradient is computed; it may return a new one.

        On a leaf the hook runs before the gradient is accumulated into ``.grad``.
        """
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self.grad_fn is None:
            if self._hooks is None:
                self._hooks = []
            hooks = self._hooks
        else:
            node = self.grad_fn
            if node._tensor_hooks is None:
                node._tensor_hooks = {}
            hooks = node._tensor_hooks.setdefault(self._output_nr, [])
        hooks.append(hook)
        return _RemovableHandle(hooks, hook)

    # -- devices and dtypes -----------------------------------------------------------------
    def to(self, *args, **kwargs) -> Tensor:
        return ops.to(self, *args, **kwargs)

    def cuda(self, device=None, non_blocking: bool = False) -> Tensor:
        return ops.to(self, "cuda" if device is None else
                      (f"cuda:{device}" if isinstance(device, int) else device))

    def cpu(self) -> Tensor:
        return ops.to(self, "cpu")

    def type(self, dtype=None):
        if dtype is None:
            return f"gradforge.{self.dtype.name}"
        return ops.to(self, dtype)

    def float(self) -> Tensor:
        return ops.to(self, float32)

    def double(self) -> Tensor:
        return ops.to(self, float64)

    def half(self) -> Tensor:
        return ops.to(self, float16)

    def long(self) -> Tensor:
        return ops.to(self, int64)

    def int(self) -> Tensor:
        return ops.to(self, int32)

    def bool(self) -> Tensor:
        return ops.to(self, bool_)

    def type_as(self, other: Tensor) -> Tensor:
        return ops.to(self, other.dtype)

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False) -> Tensor:
        return ops.tensor(data, dtype=dtype or self.dtype, device=device or self._device,
                          requires_grad=requires_grad)

    def new_zeros(self, *args, size=None, dtype=None, device=None,
                  requires_grad=False) -> Tensor:
        return ops.zeros(*args, size=size, dtype=dtype or self.dtype,
                         device=device or self._device, requires_grad=requires_grad)

    def new_ones(self, *args, size=None, dtype=None, device=None,
                 requires_grad=False) -> Tensor:
        return ops.ones(*args, size=size, dtype=dtype or self.dtype,
                        device=device or self._device, requires_grad=requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
        return ops.full(size, fill_value, dtype=dtype or self.dtype,
                        device=device or self._device, requires_grad=requires_grad)

    def new_empty(self, *args, size=None, dtype=None, device=None,
                  requires_grad=False) -> Tensor:
        return ops.empty(*args, size=size, dtype=dtype or self.dtype,
                         device=device or self._device, requires_grad=requires_grad)

    # -- operators: one line each into ops ----------------------------------------------
    def __add__(self, other): return ops.add(self, other)
    def __radd__(self, other): return ops.add(other, self)
    def __sub__(self, other): return ops.sub(self, other)
    def __rsub__(self, other): return ops.sub(other, self)
    def __mul__(self, other): return ops.mul(self, other)
    def __rmul__(self, other): return ops.mul(other, self)
    def __truediv__(self, other): return ops.div(self, other)
    def __rtruediv__(self, other): return ops.div(other, self)
    def __floordiv__(self, other): return ops.floor_divide(self, other)
    def __rfloordiv__(self, other): return ops.floor_divide(other, self)
    def __mod__(self, other): return ops.remainder(self, other)
    def __rmod__(self, other): return ops.remainder(other, self)
    def __pow__(self, other): return ops.pow(self, other)
    def __rpow__(self, other): return ops.pow(other, self)
    def __matmul__(self, other): return ops.matmul(self, other)
    def __rmatmul__(self, other): return ops.matmul(other, self)
    def __neg__(self): return ops.neg(self)
    def __pos__(self): return self
    def __abs__(self): return ops.abs(self)
    def __invert__(self): return ops.bitwise_not(self)
    def __and__(self, other): return ops.bitwise_and(self, other)
    def __rand__(self, other): return ops.bitwise_and(other, self)
    def __or__(self, other): return ops.bitwise_or(self, other)
    def __ror__(self, other): return ops.bitwise_or(other, self)
    def __xor__(self, other): return ops.bitwise_xor(self, other)
    def __rxor__(self, other): return ops.bitwise_xor(other, self)
    def __eq__(self, other): return ops.eq(self, other)
    def __ne__(self, other): return ops.ne(self, other)
    def __lt__(self, other): return ops.lt(self, other)
    def __le__(self, other): return ops.le(self, other)
    def __gt__(self, other): return ops.gt(self, other)
    def __ge__(self, other): return ops.ge(self, other)
    def __iadd__(self, other): return ops.add_(self, other)
    def __isub__(self, other): return ops.sub_(self, other)
    def __imul__(self, other): return ops.mul_(self, other)
    def __itruediv__(self, other): return ops.div_(self, other)
    def __ipow__(self, other): return ops.pow_(self, other)
    def __iand__(self, other): return ops.bitwise_and_(self, other)
    def __ior__(self, other): return ops.bitwise_or_(self, other)
    def __ixor__(self, other): return ops.bitwise_xor_(self, other)
    def __getitem__(self, index): return ops.getitem(self, index)
    def __setitem__(self, index, value): ops.setitem(self, index, value)

    def where(self, condition, other) -> Tensor:
        """``where(condition, self, other)``."""
        return ops.where(condition, self, other)

    @property
    def T(self) -> Tensor:
        return ops.permute(self, *range(self._data.ndim - 1, -1, -1))

    @property
    def mT(self) -> Tensor:
        return ops.transpose(self, -2, -1)


def _rebuild(cls, array, device, requires_grad):
    """Unpickle a tensor (see ``Tensor.__reduce_ex__``)."""
    from .backend import as_device
    dev = as_device(device)
    return cls._make(dev.backend.asarray(array), dev, requires_grad)


class Size(tuple):
    """The shape of a tensor: a tuple that prints as ``gradforge.Size([2, 3])``."""

    def __repr__(self) -> str:
        return f"gradforge.Size({list(self)})"

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n


class _RemovableHandle:
    """Returned by ``register_hook``; ``remove()`` unregisters the hook."""

    def __init__(self, hooks: list, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


register_tensor_class(Tensor)

# Methods whose implementation is exactly the op of the same name (``x.exp()`` is
# ``ops.exp(x)``). Bound here after ``ops`` is importable, since ops builds on Tensor.
from . import ops  # noqa: E402
from .backend.dtypes import bool_, float16, float32, float64, int32, int64  # noqa: E402

for _name in ops.TENSOR_METHODS:
    setattr(Tensor, _name, getattr(ops, _name))
del _name

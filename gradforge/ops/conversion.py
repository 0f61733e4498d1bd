"""Moving tensors between devices and dtypes, and copying: ``to``, ``clone``, ``contiguous``."""
from __future__ import annotations

from ..autograd.function import Function
from ..backend import as_device
from ..backend import device as _device_cls
from ..backend.dtypes import dtype as _dtype_cls
from ..backend.dtypes import to_dtype
from ..tensor import Tensor


class Cast(Function):
    """d a.to(dtype) = g.to(a.dtype)."""

    @staticmethod
    def forward(ctx, a, np_dtype):
        ctx.input_dtype = a.dtype
        return a._data.astype(np_dtype)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output.to(ctx.input_dtype), None


class ToDevice(Function):
    """d a.to(device) = g.to(a.device)."""

    @staticmethod
    def forward(ctx, a, target):
        source = ctx.device
        ctx.source = source
        if target.type == "cpu":
            data = source.backend.to_host(a._data)
        else:  # from the host, or from another GPU device to device
            data = target.backend.asarray(a._data)
        ctx.device = target
        return data

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output.to(ctx.source), None


def _parse_to(args, kwargs):
    dev = kwargs.pop("device", None)
    dt = kwargs.pop("dtype", None)
    copy = kwargs.pop("copy", False)
    kwargs.pop("non_blocking", None)
    kwargs.pop("memory_format", None)
    if kwargs:
        raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
    for a in args:
        if isinstance(a, Tensor):
            dev, dt = a._device, a.dtype
        elif isinstance(a, (_device_cls, str)) or (isinstance(a, int) and not isinstance(a, bool)):
            if isinstance(a, str) and a.split(":")[0] not in ("cpu", "cuda"):
                dt = to_dtype(a)
            else:
                dev = a
        elif a is not None and not isinstance(a, bool):
            dt = a
    return dev, dt, copy


def to(input, *args, **kwargs) -> Tensor:
    """Return ``input`` on another device and/or dtype (``input`` itself if nothing changes)."""
    dev, dt, copy = _parse_to(args, dict(kwargs))
    out = input
    if dt is not None:
        dt = dt if isinstance(dt, _dtype_cls) else to_dtype(dt)
        if dt.np != out._data.dtype:
            out = Cast.apply(out, dt.np)
    if dev is not None:
        dev = as_device(dev)
        if dev != out._device:
            out = ToDevice.apply(out, dev)
    if copy and out is input:
        out = clone(input)
    return out


class Clone(Function):
    """d clone(a) = g."""

    @staticmethod
    def forward(ctx, a):
        return a._data.copy()

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output


def clone(input, *, memory_format=None) -> Tensor:
    return Clone.apply(input)


def contiguous(input, memory_format=None) -> Tensor:
    if input._data.flags.c_contiguous:
        return input
    return Clone.apply(input)


def is_contiguous(input, memory_format=None) -> bool:
    return bool(input._data.flags.c_contiguous)

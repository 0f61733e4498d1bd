"""Turning a list of samples into a batch: ``default_collate``, ``default_convert``, pinning.

``default_collate`` follows torch's rules: tensors are stacked, NumPy arrays and NumPy scalars
become tensors, Python floats a float64 tensor, ints an int64 (bools a bool) tensor, strings
stay a list, and mappings, named tuples and sequences are collated field by field (a tuple
of fields comes back as a list, as in torch).
"""
from __future__ import annotations

from collections import abc

import numpy as np

from ...backend import CPU, on_device
from ...backend import cuda as cuda_backend
from ...ops.creation import as_tensor, tensor
from ...ops.movement import stack
from ...tensor import Tensor

__all__ = ["default_collate", "default_convert", "pin_memory"]

_ERR = ("default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
        "found {}")
_NOT_NUMERIC = "OSUV"  # NumPy kinds that cannot become tensors: object, bytes, str, void


def _is_namedtuple(obj) -> bool:
    return isinstance(obj, tuple) and hasattr(obj, "_fields")


def _stack_tensors(batch: list) -> Tensor:
    first = batch[0]
    if any(t.requires_grad or t._device != first._device for t in batch):
        return stack(batch, 0)  # the op: records the graph, names mismatched devices
    shape = first._data.shape
    for i, t in enumerate(batch):
        if t._data.shape != shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got "
                               f"{list(shape)} at entry 0 and {list(t.shape)} at entry {i}")
    # NOTE: one array-level stack instead of one autograd op per sample: collation is on the
    # hot path of every training loop, and none of these tensors needs a graph.
    with on_device(first._device):  # CuPy allocates on the current GPU
        data = first._device.xp.stack([t._data for t in batch])
    return Tensor._make(data, first._device)


def _rebuild(elem, fields):
    """A container of ``elem``'s type holding ``fields``, or a plain one if that fails."""
    try:
        return type(elem)(fields)
    except TypeError:
        # A Mapping or Sequence subclass whose constructor takes other arguments.
        return fields


def default_collate(batch: list):
    """Collate a list of samples into a batch, recursively (torch's rules)."""
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack_tensors(batch)
    if isinstance(elem, np.ndarray):
        if elem.dtype.kind in _NOT_NUMERIC:
            raise TypeError(_ERR.format(elem.dtype))
        return _stack_tensors([as_tensor(b) for b in batch])
    if isinstance(elem, np.generic) and elem.dtype.kind not in _NOT_NUMERIC:
        return as_tensor(np.array(batch))
    if isinstance(elem, float):
        return tensor(batch, dtype="float64")
    if isinstance(elem, int):
        # bool is an int: a batch of bools becomes a bool tensor, as in torch.
        return tensor(batch)
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, abc.Mapping):
        return _rebuild(elem, {key: default_collate([d[key] for d in batch]) for key in elem})
    if _is_namedtuple(elem):
        return type(elem)(*(default_collate(s) for s in zip(*batch)))
    if isinstance(elem, abc.Sequence):
        size = len(elem)
        if any(len(b) != size for b in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        columns = [default_collate(s) for s in zip(*batch)]
        if isinstance(elem, tuple):
            return columns  # NOTE: torch returns the fields of tuples as a list
        return _rebuild(elem, columns)
    raise TypeError(_ERR.format(type(elem)))


def default_convert(data):
    """NumPy arrays (also inside mappings and sequences) to tensors; everything else as is.

    The collate function when automatic batching is off (``batch_size=None``).
    """
    if isinstance(data, (np.ndarray, np.generic)):
        return data if data.dtype.kind in _NOT_NUMERIC else as_tensor(np.asarray(data))
    if isinstance(data, abc.Mapping):
        return _rebuild(data, {k: default_convert(v) for k, v in data.items()})
    if _is_namedtuple(data):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, abc.Sequence) and not isinstance(data, (str, bytes)):
        return _rebuild(data, [default_convert(d) for d in data])
    return data


def pin_memory(data):
    """Copy the CPU tensors in ``data`` to page-locked host memory, where a GPU can use it.

    Page-locked memory only speeds up host-to-GPU copies. Without a usable CUDA device, or
    with a backend that offers no pinned allocation (a ``pin_host`` method), the data is
    returned unchanged.
    """
    if not cuda_backend.is_available():
        return data
    pin = getattr(cuda_backend.get_backend(None), "pin_host", None)
    if pin is None:
        return data
    return _map_tensors(data, lambda t: Tensor._make(pin(t._data), CPU)
                        if t._device.type == "cpu" else t)


def _map_tensors(data, fn):
    if isinstance(data, Tensor):
        return fn(data)
    if isinstance(data, abc.Mapping):
        return _rebuild(data, {k: _map_tensors(v, fn) for k, v in data.items()})
    if _is_namedtuple(data):
        return type(data)(*(_map_tensors(d, fn) for d in data))
    if isinstance(data, (tuple, list)):
        return type(data)(_map_tensors(d, fn) for d in data)
    return data

"""The worker-process side of ``DataLoader(num_workers > 0)``.

Each worker owns a copy of the dataset and an index queue. It reads ``(task, index)`` pairs,
builds the batch with the same fetcher the main process uses, and puts ``(task, batch)`` on
the shared result queue; the main process puts batches back in task order. Errors travel
as an ``ExceptionWrapper`` carrying the worker's traceback and are raised in the main
process.
"""
from __future__ import annotations

import os
import queue
import random
import sys
import traceback
from dataclasses import dataclass

import numpy as np

from ... import random as _random
from ...backend import as_device
from ...tensor import Tensor
from ._fetch import make_fetcher

__all__ = ["WorkerInfo", "get_worker_info"]

RESUME = "resume"  # control message: start a new pass (persistent workers)
_POLL_S = 5.0  # how often an idle worker checks that its parent is still alive


@dataclass(frozen=True)
class WorkerInfo:
    """What ``get_worker_info()`` returns inside a worker process."""

    id: int
    num_workers: int
    seed: int
    dataset: object


_worker_info: WorkerInfo | None = None


def get_worker_info() -> WorkerInfo | None:
    """Information about the current worker process, or None in the main process.

    Inside an ``IterableDataset.__iter__`` this tells each worker which share of the
    stream to produce.
    """
    return _worker_info


class StopMarker:
    """Sent by a worker whose iterable dataset is exhausted."""

    def __init__(self, worker_id: int):
        self.worker_id = worker_id


class ExceptionWrapper:
    """An exception raised in a worker, carried to the main process with its traceback."""

    def __init__(self, where: str):
        exc_type, exc, _ = sys.exc_info()
        self.exc_type = exc_type
        self.msg = "".join(traceback.format_exception(exc_type, exc, exc.__traceback__))
        self.where = where

    def reraise(self):
        msg = f"Caught {self.exc_type.__name__} {self.where}.\nOriginal {self.msg}"
        if self.exc_type is KeyError:
            # KeyError repr()s its message, which would garble the traceback.
            msg = KeyErrorMessage(msg)
        try:
            exc = self.exc_type(msg)
        except Exception:  # noqa: BLE001  the class's constructor needs other arguments
            raise RuntimeError(msg) from None
        raise exc


class KeyErrorMessage(str):
    """A string whose repr is itself, so a KeyError message prints as written."""

    __slots__ = ()

    def __repr__(self) -> str:
        return self


def _rebuild_tensor(array, device: str, requires_grad: bool) -> Tensor:
    dev = as_device(device)
    data = array if dev.type == "cpu" else dev.backend.asarray(array)
    return Tensor._make(data, dev, requires_grad)


def _reduce_tensor(t: Tensor):
    # Tensors cross the process boundary as host arrays plus a device name, and arrive on
    # the canonical device object of the receiving process, without autograd history.
    return _rebuild_tensor, (t._device.backend.to_host(t._data), str(t._device),
                             t.requires_grad)


def register_tensor_pickling() -> None:
    """Teach multiprocessing's pickler to send tensors as host arrays (idempotent)."""
    from multiprocessing.reduction import ForkingPickler
    ForkingPickler.register(Tensor, _reduce_tensor)


def _numpy_seed(base_seed: int, worker_id: int) -> np.ndarray:
    # Distinct, well-mixed NumPy seeds per worker (torch does the same with its own mixer).
    return np.random.SeedSequence([worker_id, base_seed]).generate_state(4)


def worker_loop(dataset, index_queue, result_queue, auto_collation, collate_fn, drop_last,
                base_seed, init_fn, worker_id, num_workers, parent_pid) -> None:
    """The body of one worker process; returns on ``None`` or when the parent is gone."""
    global _worker_info
    register_tensor_pickling()
    seed = base_seed + worker_id
    random.seed(seed)
    _random.manual_seed(seed)
    np.random.seed(_numpy_seed(base_seed, worker_id))
    _worker_info = WorkerInfo(worker_id, num_workers, seed, dataset)
    where = f"in DataLoader worker process {worker_id}"
    init_error = fetcher = None
    try:
        if init_fn is not None:
            init_fn(worker_id)
        fetcher = make_fetcher(dataset, auto_collation, collate_fn, drop_last)
    except Exception:  # noqa: BLE001  any error is sent to the main process and raised there
        init_error = ExceptionWrapper(where)
    ended = False
    while True:
        try:
            msg = index_queue.get(timeout=_POLL_S)
        except queue.Empty:
            if os.getppid() != parent_pid:
                return  # the main process died without telling us
            continue
        if msg is None:
            return
        if msg == RESUME:
            fetcher = make_fetcher(dataset, auto_collation, collate_fn, drop_last)
            ended = False
            result_queue.put((RESUME, worker_id))
            continue
        task, index = msg
        if init_error is not None:
            data, init_error = init_error, None
        elif ended:
            data = StopMarker(worker_id)
        else:
            try:
                data = fetcher.fetch(index)
            except StopIteration:
                data, ended = StopMarker(worker_id), True
            except Exception:  # noqa: BLE001  sent to the main process and raised there
                data = ExceptionWrapper(where)
        result_queue.put((task, data))
        del data  # do not hold the last batch while blocked on the queue

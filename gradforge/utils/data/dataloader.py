"""``DataLoader``: batches from a dataset, in the main process or in worker processes.

The RNG contract is torch's: each ``iter(loader)`` draws one 64-bit base seed from the
loader's generator (the global one by default), which seeds the workers (``base_seed +
worker_id``); a shuffling ``RandomSampler`` without its own generator draws one more seed.
So with a fixed ``gradforge.manual_seed`` every run sees the same epochs, each epoch a new
permutation, and restoring the RNG state (a checkpoint) replays them exactly.
"""
from __future__ import annotations

import itertools
import multiprocessing
import os
import queue
import time
from collections.abc import Callable

from ._collate import default_collate, default_convert, pin_memory
from ._fetch import InfiniteConstantSampler, make_fetcher
from ._worker import RESUME, ExceptionWrapper, StopMarker, register_tensor_pickling, worker_loop
from .dataset import IterableDataset
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler, draw_seed

__all__ = ["DataLoader"]

_FROZEN = ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset",
           "persistent_workers")
_QUEUE_POLL_S = 1.0  # how often the main process checks that its workers are alive


class DataLoader:
    """Iterate over a dataset in batches.

    Args:
        dataset: a map-style ``Dataset`` or an ``IterableDataset``.
        batch_size: samples per batch; ``None`` disables batching (items come one by one).
        shuffle: visit a map-style dataset in a new random order every epoch.
        sampler: the order of indices (excludes ``shuffle``).
        batch_sampler: yields whole lists of indices (excludes ``batch_size``, ``shuffle``,
            ``sampler`` and ``drop_last``).
        num_workers: 0 loads in the main process; ``n > 0`` starts ``n`` worker processes
            that build batches in parallel; batches still come out in order.
        collate_fn: merges a list of samples into a batch (default: ``default_collate``).
        pin_memory: put batches in page-locked host memory (only where a GPU is usable).
        drop_last: drop the last, incomplete batch.
        timeout: seconds to wait for a worker's batch (0: no limit).
        worker_init_fn: called as ``fn(worker_id)`` in each worker after seeding.
        multiprocessing_context: a context or start-method name (``"fork"``, ``"spawn"``).
        generator: the generator for the base seed and the shuffling sampler.
        prefetch_factor: batches in flight per worker (default 2 with workers).
        persistent_workers: keep the workers alive between epochs.
        pin_memory_device: accepted for torch compatibility; the current GPU is used.
    """

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler: Sampler | None = None, batch_sampler=None, num_workers: int = 0,
                 collate_fn: Callable | None = None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0,
                 worker_init_fn: Callable | None = None, multiprocessing_context=None,
                 generator=None, *, prefetch_factor: int | None = None,
                 persistent_workers: bool = False, pin_memory_device: str = ""):
        _check_worker_options(num_workers, timeout, prefetch_factor, persistent_workers)
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        iterable = isinstance(dataset, IterableDataset)
        if iterable:
            for name, given in (("shuffle", shuffle), ("sampler", sampler),
                                ("batch_sampler", batch_sampler)):
                if given not in (None, False):
                    raise ValueError(f"DataLoader with IterableDataset: expected unspecified "
                                     f"{name} option, but got {name}={given!r}")
        if shuffle not in (None, False, True):
            raise TypeError(f"DataLoader: shuffle must be a boolean, got {shuffle!r}")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")

        if sampler is None:
            if iterable:
                sampler = InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
            else:
                sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.generator = generator
        self.persistent_workers = persistent_workers
        self.collate_fn = collate_fn if collate_fn is not None else (
            default_collate if batch_sampler is not None else default_convert)
        self._iterator = None
        self._initialized = True

    def __setattr__(self, name, value):
        if name in _FROZEN and getattr(self, "_initialized", False):
            raise ValueError(f"{name} attribute should not be set after "
                             f"{type(self).__name__} is initialized")
        super().__setattr__(name, value)

    @property
    def _auto_collation(self) -> bool:
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def __iter__(self):
        if self.num_workers == 0:
            return _SingleProcessIter(self)
        if not self.persistent_workers:
            return _MultiProcessIter(self)
        if self._iterator is None:
            self._iterator = _MultiProcessIter(self)
        else:
            self._iterator.reset()
        return self._iterator

    def __len__(self) -> int:
        if isinstance(self.dataset, IterableDataset):
            n = len(self.dataset)
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return len(self._index_sampler)


def _check_worker_options(num_workers, timeout, prefetch_factor, persistent_workers) -> None:
    if num_workers < 0:
        raise ValueError("num_workers option should be non-negative; use num_workers=0 to "
                         "disable multiprocessing.")
    if timeout < 0:
        raise ValueError("timeout option should be non-negative")
    if num_workers == 0 and prefetch_factor is not None:
        raise ValueError("prefetch_factor option could only be specified in multiprocessing. "
                         "let num_workers > 0 to enable multiprocessing, otherwise set "
                         "prefetch_factor to None.")
    if prefetch_factor is not None and prefetch_factor < 1:
        # NOTE: torch accepts 0, which would start no work at all: every epoch came out empty.
        raise ValueError(f"prefetch_factor option should be positive, got {prefetch_factor}")
    if persistent_workers and num_workers == 0:
        raise ValueError("persistent_workers option needs num_workers > 0")


class _BaseIter:
    def __init__(self, loader: DataLoader):
        # NOTE: settings are copied rather than the loader kept: a persistent loader holds its
        # iterator, and a reference back would make a cycle that only the cyclic GC frees,
        # keeping the worker processes alive until then.
        self._index_sampler = loader._index_sampler
        self._num_workers = loader.num_workers
        self._prefetch_factor = loader.prefetch_factor
        self._timeout = loader.timeout
        self._persistent = loader.persistent_workers
        self._pin = loader.pin_memory
        self._sampler_iter = iter(self._index_sampler)
        # Drawn even without workers, so the global RNG advances the same way for any
        # num_workers (torch's contract).
        self._base_seed = draw_seed(loader.generator)

    def __iter__(self):
        return self

    def __len__(self) -> int:
        return len(self._index_sampler)

    def _finish(self, data):
        return pin_memory(data) if self._pin else data


class _SingleProcessIter(_BaseIter):
    def __init__(self, loader: DataLoader):
        super().__init__(loader)
        self._fetcher = make_fetcher(loader.dataset, loader._auto_collation, loader.collate_fn,
                                     loader.drop_last)

    def __next__(self):
        index = next(self._sampler_iter)
        return self._finish(self._fetcher.fetch(index))


class _MultiProcessIter(_BaseIter):
    """Workers fed round-robin through their own index queues; results reordered by task."""

    def __init__(self, loader: DataLoader):
        super().__init__(loader)
        register_tensor_pickling()
        ctx = loader.multiprocessing_context
        if ctx is None or isinstance(ctx, str):
            ctx = multiprocessing.get_context(ctx)
        n = loader.num_workers
        self._result_queue = ctx.Queue()
        self._index_queues: list = []
        self._workers: list = []
        self._shut = False
        try:
            for worker_id in range(n):
                index_queue = ctx.Queue()
                # NOTE: an abandoned epoch leaves indices nobody reads; without this the exit
                # would wait for the queue's feeder thread to flush them.
                index_queue.cancel_join_thread()
                w = ctx.Process(target=worker_loop, daemon=True, args=(
                    loader.dataset, index_queue, self._result_queue, loader._auto_collation,
                    loader.collate_fn, loader.drop_last, self._base_seed,
                    loader.worker_init_fn, worker_id, n, os.getpid()))
                w.start()  # with "spawn" this pickles the dataset, which may fail
                self._index_queues.append(index_queue)
                self._workers.append(w)
        except BaseException:
            self._shutdown(kill=True)
            raise
        self._start_pass()

    def _start_pass(self) -> None:
        n = self._num_workers
        self._active = [True] * n
        self._cycle = itertools.cycle(range(n))
        self._tasks: dict = {}  # task -> [worker_id] or [worker_id, batch]
        self._send_idx = self._rcvd_idx = 0
        for _ in range(self._prefetch_factor * n):
            self._put_index()

    def reset(self) -> None:
        """Start a new epoch on the same (persistent) workers."""
        self._sampler_iter = iter(self._index_sampler)
        for q in self._index_queues:
            q.put(RESUME)
        # Each worker answers RESUME after everything it was asked before, so results of an
        # abandoned epoch arrive first and are dropped here.
        pending = len(self._workers)
        while pending:
            task, _ = self._get()
            pending -= task == RESUME
        self._start_pass()

    def _put_index(self) -> None:
        if not any(self._active):
            return
        try:
            index = next(self._sampler_iter)
        except StopIteration:
            return
        worker_id = next(self._cycle)
        while not self._active[worker_id]:
            worker_id = next(self._cycle)
        self._index_queues[worker_id].put((self._send_idx, index))
        self._tasks[self._send_idx] = [worker_id]
        self._send_idx += 1

    def _get(self):
        start = time.monotonic()
        timeout = self._timeout
        while True:
            try:
                return self._result_queue.get(timeout=_QUEUE_POLL_S)
            except queue.Empty:
                dead = [str(w.pid) for w in self._workers if not w.is_alive()]
                if dead:
                    self._shutdown(kill=True)
                    raise RuntimeError(f"DataLoader worker (pid(s) {', '.join(dead)}) exited "
                                       "unexpectedly") from None
                if timeout and time.monotonic() - start > timeout:
                    self._shutdown(kill=True)
                    raise RuntimeError(f"DataLoader timed out after {timeout} seconds") from None

    def __next__(self):
        while True:
            # Skip the tasks of workers whose iterable dataset has ended.
            while self._rcvd_idx < self._send_idx:
                info = self._tasks[self._rcvd_idx]
                if len(info) == 2 or self._active[info[0]]:
                    break
                del self._tasks[self._rcvd_idx]
                self._rcvd_idx += 1
            else:
                if not self._persistent:
                    self._shutdown()
                raise StopIteration
            info = self._tasks[self._rcvd_idx]
            if len(info) == 2:
                return self._deliver(info[1])
            task, data = self._get()
            if isinstance(data, StopMarker):
                self._active[data.worker_id] = False
                self._put_index()
            elif task == self._rcvd_idx:
                return self._deliver(data)
            else:
                self._tasks[task].append(data)  # early: keep it until its turn

    def _deliver(self, data):
        del self._tasks[self._rcvd_idx]
        self._rcvd_idx += 1
        if isinstance(data, ExceptionWrapper):
            self._shutdown(kill=True)
            data.reraise()
        self._put_index()
        return self._finish(data)

    def _shutdown(self, kill: bool = False) -> None:
        """Stop the workers: ask them to exit, or (after an error) terminate them at once."""
        if self._shut:
            return
        self._shut = True
        for q in self._index_queues:
            q.put(None)
        for w in self._workers:
            if kill:
                w.terminate()
            w.join(timeout=5.0)
            if w.is_alive():
                w.kill()
        for q in (*self._index_queues, self._result_queue):
            q.cancel_join_thread()
            q.close()

    def __del__(self):
        if hasattr(self, "_shut"):  # not when __init__ failed before the workers existed
            self._shutdown()

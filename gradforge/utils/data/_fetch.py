"""Fetchers: turn one entry of the index sampler into one batch (or one sample).

Used both in the main process and inside worker processes, so a batch is built by exactly the
same code with ``num_workers=0`` and ``num_workers > 0``.
"""
from __future__ import annotations

from collections.abc import Callable

from .dataset import IterableDataset


class InfiniteConstantSampler:
    """The index sampler of an iterable dataset: ``None`` forever (the dataset decides)."""

    def __iter__(self):
        while True:
            yield None


class MapFetcher:
    """Reads samples by index from a map-style dataset and collates them."""

    def __init__(self, dataset, auto_collation: bool, collate_fn: Callable):
        self.dataset = dataset
        self.auto_collation = auto_collation
        self.collate_fn = collate_fn

    def fetch(self, index):
        if not self.auto_collation:
            return self.collate_fn(self.dataset[index])
        getitems = getattr(self.dataset, "__getitems__", None)
        data = getitems(index) if callable(getitems) else [self.dataset[i] for i in index]
        return self.collate_fn(data)


class IterFetcher:
    """Reads the next samples from an iterable dataset; StopIteration once it is exhausted."""

    def __init__(self, dataset, auto_collation: bool, collate_fn: Callable, drop_last: bool):
        self.iterator = iter(dataset)
        self.auto_collation = auto_collation
        self.collate_fn = collate_fn
        self.drop_last = drop_last
        self.ended = False

    def fetch(self, index):
        if self.ended:
            raise StopIteration
        if not self.auto_collation:
            return self.collate_fn(next(self.iterator))
        data = []
        for _ in index:
            try:
                data.append(next(self.iterator))
            except StopIteration:
                self.ended = True
                break
        if not data or (self.drop_last and len(data) < len(index)):
            raise StopIteration
        return self.collate_fn(data)


def make_fetcher(dataset, auto_collation: bool, collate_fn: Callable, drop_last: bool):
    """The fetcher for ``dataset``'s kind (iterable or map-style)."""
    if isinstance(dataset, IterableDataset):
        return IterFetcher(dataset, auto_collation, collate_fn, drop_last)
    return MapFetcher(dataset, auto_collation, collate_fn)

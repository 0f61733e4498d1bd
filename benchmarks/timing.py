"""Interleaved timing: A B A B ... after warm-up, medians, a synchronize before every clock read.

The CPU's throughput drifts over seconds on these machines (see PERF-NOTES), so two libraries
are timed in one process, alternating, and compared by their medians. On a GPU, work is
queued asynchronously: each library's ``synchronize`` runs before every clock read, so a
sample covers exactly the kernels its step launched.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def _sample(step: Callable, sync: Callable) -> float:
    sync()
    start = time.perf_counter()
    step()
    sync()
    return time.perf_counter() - start


def interleaved(steps: dict[str, Callable], syncs: dict[str, Callable], reps: int,
                warmup: int = 1) -> dict[str, dict]:
    """Time every step ``reps`` times in rotation (A B A B ...); per step: median and samples.

    Args:
        steps: name -> function to time (one sample is one call).
        syncs: name -> the device synchronize of that step's library (no-op on the CPU).
        reps: samples per step.
        warmup: untimed calls per step first (compilation, caches, allocator pools).
    """
    for _ in range(warmup):
        for name, step in steps.items():
            _sample(step, syncs[name])
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(reps):
        for name, step in steps.items():
            samples[name].append(_sample(step, syncs[name]))
    return {name: {"median_s": statistics.median(times), "samples_s": times}
            for name, times in samples.items()}


def format_seconds(seconds: float | None) -> str:
    """``1.23 ms``-style durations for the table."""
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"

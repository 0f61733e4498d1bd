"""Interleaved timing: A B A B ... after warm-up, medians, a synchronize before every clock read.

The CPU's throughput drifts over seconds on these machines (see PERF-NOTES), so two libraries
are timed in one process, alternating, and compared by their medians. On a GPU, work is
queued asynchronously: each library's ``synchronize`` runs before every clock read, so a
sample covers exactly the kernels its step launched.

On a multi-core CPU each library has its own thread pool (OpenBLAS for NumPy, OpenMP for
PyTorch), and an idle pool keeps spinning for a while after its last job (OpenBLAS about
0.1 s): sample for sample alternation then times each library against the other's spinning
threads, and the ratios swing either way (measured: PyTorch's LeNet step 4 to 95 ms). With
``settle_s`` the alternation goes in blocks: a pause of ``settle_s`` seconds (the other
pool falls asleep), one untimed call (this pool wakes, caches refill), then about
``block_s`` seconds of samples. Each library is then timed as if it ran alone, and the
blocks are short enough that both see the same state of the host.
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
                warmup: int = 1, settle_s: float = 0.0,
                block_s: float = 0.3) -> dict[str, dict]:
    """Time every step ``reps`` times in rotation (A B A B ...); per step: median and samples.

    Args:
        steps: name -> function to time (one sample is one call).
        syncs: name -> the device synchronize of that step's library (no-op on the CPU).
        reps: samples per step (with ``settle_s``: rounds of blocks).
        warmup: untimed calls per step first (compilation, caches, allocator pools).
        settle_s: if positive, alternate in blocks of about ``block_s`` seconds, each after a
            pause of ``settle_s`` and one untimed call (see the module's docstring).
    """
    first: dict[str, float] = {}
    for _ in range(warmup):
        for name, step in steps.items():
            first[name] = _sample(step, syncs[name])
    samples: dict[str, list[float]] = {name: [] for name in steps}
    if settle_s <= 0:
        for _ in range(reps):
            for name, step in steps.items():
                samples[name].append(_sample(step, syncs[name]))
    else:
        # ``reps`` rounds; a block holds as many samples as fit in ``block_s`` by the
        # warm-up's duration (at least one).
        per_block = {name: max(1, round(block_s / max(first.get(name, block_s), 1e-6)))
                     for name in steps}
        for _ in range(reps):
            for name, step in steps.items():
                time.sleep(settle_s)
                _sample(step, syncs[name])
                samples[name] += [_sample(step, syncs[name]) for _ in range(per_block[name])]
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

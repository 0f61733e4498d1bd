"""The benchmark workloads through pytest-benchmark, to save runs and compare them.

    pytest benchmarks/ [--bench-device cuda] [--benchmark-autosave] [--benchmark-compare]

One test per workload and library. ``python benchmarks/run.py`` is the side-by-side view
(interleaved, with ratios); this is the same code under pytest-benchmark's statistics and
storage. CI does not collect it (the project's testpaths is ``tests``).
"""
import numpy as np
import pytest
from run import missing_names
from workloads import all_workloads

import gradforge

WORKLOADS = {w.name: w for w in all_workloads()}


@pytest.fixture
def device(request):
    name = request.config.getoption("--bench-device")
    if name == "cuda" and not gradforge.cuda.is_available():
        pytest.skip(f"no CUDA device: {gradforge.backend.cuda.status()[1]}")
    return name


@pytest.mark.parametrize("library", ["gradforge", "torch"])
@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_workload(benchmark, name, library, device):
    workload = WORKLOADS[name]
    missing = missing_names(workload.needs)
    if missing:
        pytest.skip(f"not available: {', '.join(missing)}")
    lib = gradforge if library == "gradforge" else pytest.importorskip("torch")
    if device == "cuda" and not lib.cuda.is_available():
        pytest.skip(f"{library} has no CUDA device here")
    step = workload.build(lib, device, np.random.default_rng(0))
    sync = lib.cuda.synchronize if device == "cuda" else (lambda: None)

    def timed():
        step()
        sync()  # a GPU sample ends when its kernels do

    benchmark.extra_info.update(shape=workload.shape, per=workload.per, flops=workload.flops)
    benchmark.pedantic(timed, rounds=workload.reps, warmup_rounds=1, iterations=1)

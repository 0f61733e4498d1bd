"""Test configuration: seeding, and where the ``cuda`` tests run.

Tests marked ``cuda`` (the ``"cuda"`` entry of ``oracle.DEVICES``) run on a real GPU when one
is present, else on the simulated device of tests/simcuda, which this file turns on by setting
GRADFORGE_SIMULATE_CUDA=1 unless the variable is set already (``=0`` skips them instead).
"""
import os

import numpy as np
import pytest

import gradforge


def _real_gpu() -> bool:
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001  no cupy, no driver: no GPU
        return False


# Read by the CUDA backend on first use, which comes after collection starts.
os.environ.setdefault("GRADFORGE_SIMULATE_CUDA", "0" if _real_gpu() else "1")


@pytest.fixture(autouse=True)
def _seed():
    gradforge.manual_seed(0)
    np.random.seed(0)


def pytest_collection_modifyitems(config, items):
    if gradforge.cuda.is_available():
        return
    _, why = gradforge.backend.cuda.status()
    skip = pytest.mark.skip(reason=f"no CUDA device: {why} (GRADFORGE_SIMULATE_CUDA=1 runs "
                                   "these tests on the simulated device)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)

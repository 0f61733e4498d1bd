"""Test configuration: seeding and the CUDA skip (real GPU, or the simulator when enabled)."""
import numpy as np
import pytest

import gradforge


@pytest.fixture(autouse=True)
def _seed():
    gradforge.manual_seed(0)
    np.random.seed(0)


def pytest_collection_modifyitems(config, items):
    if gradforge.cuda.is_available():
        return
    ok, why = gradforge.backend.cuda.status()
    skip = pytest.mark.skip(reason=f"no CUDA device: {why}")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)

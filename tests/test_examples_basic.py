"""Smoke tests: examples/xor.py and examples/mlp_fashion_mnist.py run end to end."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import gradforge

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script: str, *args: str) -> str:
    # The tests folder on the path, so that a simulated GPU (tests/simcuda) is found.
    tests = str(Path(__file__).resolve().parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (tests, os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True,
                          text=True, timeout=120, check=False, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_xor_linear_fails_hidden_layer_solves():
    out = _run("xor.py")
    linear, hidden = (float(a) for a in re.findall(r"test accuracy\s+([\d.]+)%", out))
    assert linear <= 80.0 and hidden == 100.0, out


def test_mlp_fashion_mnist_smoke():
    out = _run("mlp_fashion_mnist.py", "--epochs", "2", "--limit", "256", "--device", "cpu")
    assert "256 training and 256 test images from the embedded Fashion-MNIST subset" in out
    losses = [float(v) for v in re.findall(r"train loss ([\d.]+)", out)]
    accuracies = [float(v) for v in re.findall(r"test accuracy ([\d.]+)%", out)]
    assert len(losses) == 2 and losses[1] < losses[0] < 2.5, out
    assert accuracies[-1] > 20.0, out  # well above chance (10%) after two tiny epochs


@pytest.mark.cuda
def test_mlp_fashion_mnist_on_the_gpu_or_the_simulated_one():
    # tests/conftest.py exports GRADFORGE_SIMULATE_CUDA=1 on machines without a GPU.
    out = _run("mlp_fashion_mnist.py", "--epochs", "1", "--limit", "128", "--device", "cuda")
    assert "on cuda" in out and "epoch  1: train loss" in out


def test_mlp_fashion_mnist_device_errors():
    env = {**os.environ, "GRADFORGE_SIMULATE_CUDA": "0"}
    script = str(EXAMPLES / "mlp_fashion_mnist.py")
    done = subprocess.run([sys.executable, script, "--device", "tpu"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2 and "invalid choice: 'tpu'" in done.stderr
    real_gpu = os.environ.get("GRADFORGE_SIMULATE_CUDA") != "1" and gradforge.cuda.is_available()
    if not real_gpu:  # without the simulator this machine has no CUDA: the error must say so
        done = subprocess.run([sys.executable, script, "--device", "cuda"], capture_output=True,
                              text=True, timeout=60, check=False, env=env)
        assert done.returncode == 1
        assert "error: --device cuda: CUDA is not available:" in done.stderr

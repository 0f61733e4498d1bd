"""The benchmark entry point runs and prints its table (format only: tests never time anything)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
RUN = TESTS.parent / "benchmarks" / "run.py"
DURATION = r"\d+(\.\d+)? (s|ms|us|ns)"


def run(*args, timeout=300, env=None):
    return subprocess.run([sys.executable, str(RUN), *args], capture_output=True, text=True,
                          timeout=timeout, check=False, env=env)


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_quick_overhead_run_prints_the_table_and_writes_json(tmp_path):
    out = tmp_path / "results.json"
    done = run("--quick", "--only", "overhead", "--json", str(out))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "| workload | shape | gradforge | PyTorch | ratio | throughput |"
    assert lines[1] == "|---|---|---|---|---|---|"
    row = cells(lines[2])
    assert len(row) == 6 and row[0] == "overhead"
    assert re.fullmatch(DURATION, row[2]), row
    torch_ran = row[3] != "-"
    if torch_ran:
        assert re.fullmatch(DURATION, row[3]) and re.fullmatch(r"\d+\.\d\dx", row[4]), row
    results = json.loads(out.read_text())
    assert results["environment"]["device"] == "cpu"
    (saved,) = results["workloads"]
    assert saved["name"] == "overhead" and saved["per"] == 1000
    assert len(saved["gradforge_samples_s"]) == 2 and saved["gradforge_s"] > 0
    assert ("ratio" in saved) == torch_ran


def test_unknown_workload_names_the_choices():
    done = run("--only", "no_such_workload")
    assert done.returncode != 0
    assert "matches no workload" in done.stderr and "overhead" in done.stderr


@pytest.mark.cuda
def test_cuda_run_adds_the_kernel_bandwidth_table(tmp_path):
    """On the GPU (or the simulated one in CI): synchronized timing and the kernel table."""
    out = tmp_path / "cuda.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH",
                                                                                   "")]))
    done = run("--device", "cuda", "--quick", "--only", "overhead,kernels", "--json", str(out),
               env=env)
    assert done.returncode == 0, done.stderr
    tables = done.stdout.strip().split("\n\n")
    assert len(tables) == 2
    kernel_lines = tables[1].splitlines()
    assert cells(kernel_lines[0]) == ["kernel", "shape", "kernel", "d2d copy", "kernel GB/s",
                                      "copy GB/s", "of copy"]
    names = [cells(line)[0] for line in kernel_lines[2:]]
    assert names == ["im2col", "col2im", "max_pool2d_forward", "max_pool2d_backward",
                     "avg_pool2d_forward", "avg_pool2d_backward"]
    results = json.loads(out.read_text())
    assert results["environment"]["gpu"] and results["environment"]["cuda_driver"] > 0
    assert all(k["bytes"] > 0 and k["fraction_of_copy"] > 0 for k in results["kernels"])


def test_settled_interleaving_times_blocks_after_a_pause_and_one_untimed_call(monkeypatch):
    sys.path.insert(0, str(RUN.parent))
    try:
        import timing
    finally:
        sys.path.remove(str(RUN.parent))
    events = []
    clock = [0.0]
    monkeypatch.setattr(timing.time, "sleep", lambda s: events.append(("sleep", s)))
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])

    def step(name, cost):
        def run():
            events.append(name)
            clock[0] += cost
        return run

    steps = {"a": step("a", 0.1), "b": step("b", 0.25)}
    done = timing.interleaved(steps, {"a": lambda: None, "b": lambda: None}, reps=2,
                              warmup=1, settle_s=0.5, block_s=0.3)
    # a fits 3 samples in a 0.3 s block, b one; each block follows a pause and an untimed call.
    block_a = [("sleep", 0.5), "a", "a", "a", "a"]
    block_b = [("sleep", 0.5), "b", "b"]
    assert events == ["a", "b"] + (block_a + block_b) * 2
    assert done["a"]["samples_s"] == pytest.approx([0.1] * 6)
    assert done["b"]["samples_s"] == pytest.approx([0.25] * 2)
    assert done["a"]["median_s"] == pytest.approx(0.1)
    plain = timing.interleaved(steps, {"a": lambda: None, "b": lambda: None}, reps=3)
    assert len(plain["a"]["samples_s"]) == 3 and len(plain["b"]["samples_s"]) == 3

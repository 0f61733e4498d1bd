"""The benchmark entry point runs and prints its table (format only: tests never time anything)."""
import json
import re
import subprocess
import sys
from pathlib import Path

RUN = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
DURATION = r"\d+(\.\d+)? (s|ms|us|ns)"


def run(*args, timeout=300):
    return subprocess.run([sys.executable, str(RUN), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_quick_overhead_run_prints_the_table_and_writes_json(tmp_path):
    out = tmp_path / "results.json"
    done = run("--quick", "--only", "overhead", "--json", str(out))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "| workload | shape | gradforge | PyTorch | ratio | throughput |"
    assert lines[1] == "|---|---|---|---|---|---|"
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert len(cells) == 6 and cells[0] == "overhead"
    assert re.fullmatch(DURATION, cells[2]), cells
    torch_ran = cells[3] != "-"
    if torch_ran:
        assert re.fullmatch(DURATION, cells[3]) and re.fullmatch(r"\d+\.\d\dx", cells[4]), cells
    results = json.loads(out.read_text())
    assert results["environment"]["device"] == "cpu"
    (row,) = results["workloads"]
    assert row["name"] == "overhead" and row["per"] == 1000
    assert len(row["gradforge_samples_s"]) == 2 and row["gradforge_s"] > 0
    assert ("ratio" in row) == torch_ran


def test_unknown_workload_names_the_choices():
    done = run("--only", "no_such_workload")
    assert done.returncode != 0
    assert "matches no workload" in done.stderr and "overhead" in done.stderr

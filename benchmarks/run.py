"""Benchmark gradforge against PyTorch, side by side in one process.

    python benchmarks/run.py [--device cpu|cuda] [--only NAME[,NAME...]] [--json PATH] [--quick]

Each workload is built once per library from the same code (benchmarks/workloads.py), warmed
up, then timed interleaved (gradforge, torch, gradforge, torch ...) with a synchronize before
every clock read on the GPU; on the CPU the alternation goes in short blocks after a pause, so
neither library is timed against the other's spinning thread pool (benchmarks/timing.py).
The table gives medians and the ratio gradforge / PyTorch (below 1 means gradforge is
faster). Without PyTorch installed the table has gradforge only. On
``cuda`` a second table gives the bandwidth of gradforge's kernels next to a device-to-device
copy of the same bytes.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import traceback

import numpy as np
from timing import format_seconds, interleaved
from workloads import Workload, all_workloads

import gradforge
from kernels import copy_step, kernel_cases


def load_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def missing_names(needs) -> list[str]:
    """The dotted gradforge names a workload needs that do not exist (yet)."""
    out = []
    for dotted in needs:
        obj = gradforge
        for part in dotted.split("."):
            obj = getattr(obj, part, None)
        if obj is None:
            out.append(f"gradforge.{dotted}")
    return out


def _synchronizer(lib, device: str):
    if device == "cuda":
        return lib.cuda.synchronize
    return lambda: None


def run_workload(w: Workload, device: str, torch, reps: int, warmup: int,
                 settle_s: float = 0.0) -> dict:
    row = {"name": w.name, "shape": w.shape, "per": w.per}
    libs = {"gradforge": gradforge}
    if torch is not None and (device == "cpu" or torch.cuda.is_available()):
        libs["torch"] = torch
    steps = {name: w.build(lib, device, np.random.default_rng(0)) for name, lib in libs.items()}
    timed = interleaved(steps, {name: _synchronizer(lib, device) for name, lib in libs.items()},
                        reps, warmup, settle_s if len(libs) > 1 else 0.0)
    for name, result in timed.items():
        row[f"{name}_s"] = result["median_s"] / w.per
        row[f"{name}_samples_s"] = result["samples_s"]
        if w.flops:
            row[f"{name}_gflops"] = w.flops / result["median_s"] / 1e9
    if "torch_s" in row:
        row["ratio"] = row["gradforge_s"] / row["torch_s"]
    return row


def run_kernels(reps: int, warmup: int, batch: int) -> list[dict]:
    backend = gradforge.device("cuda").backend
    rows = []
    for case in kernel_cases(batch):
        kernel, moved, xp = case.build(backend, np.random.default_rng(0))
        sync = gradforge.cuda.synchronize
        timed = interleaved({"kernel": kernel, "copy": copy_step(xp, moved)},
                            {"kernel": sync, "copy": sync}, reps, warmup)
        k, c = timed["kernel"]["median_s"], timed["copy"]["median_s"]
        rows.append({"name": case.name, "shape": case.shape, "bytes": moved, "kernel_s": k,
                     "copy_s": c, "kernel_gbps": moved / k / 1e9, "copy_gbps": moved / c / 1e9,
                     "fraction_of_copy": c / k})
    return rows


def environment(device: str, torch) -> dict:
    env = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "device": device, "python": platform.python_version(), "platform": platform.platform(),
           "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "numpy": np.__version__,
           "gradforge": gradforge.__version__,
           "torch": None if torch is None else torch.__version__,
           "torch_threads": None if torch is None else torch.get_num_threads()}
    if device == "cuda":
        cp = gradforge.backend.cuda.require()
        env.update(gpu=gradforge.cuda.get_device_name(), cupy=cp.__version__,
                   cuda_driver=cp.cuda.runtime.driverGetVersion(),
                   cuda_runtime=cp.cuda.runtime.runtimeGetVersion(),
                   torch_cuda=None if torch is None else torch.version.cuda,
                   cudnn=None if torch is None or not torch.cuda.is_available()
                   else torch.backends.cudnn.version())
    return env


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def table(rows: list[dict]) -> str:
    """The results as a markdown table (times per step, or per op for per-op rows)."""
    lines = ["| workload | shape | gradforge | PyTorch | ratio | throughput |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        if "skipped" in r or "failed" in r:
            lines.append(f"| {r['name']} | {r['shape']} | {r.get('skipped') or r['failed']} "
                         "| | | |")
            continue
        ratio = f"{r['ratio']:.2f}x" if "ratio" in r else "-"
        rate = ""
        if "gradforge_gflops" in r:
            rate = f"{r['gradforge_gflops']:.0f}"
            rate += f" / {r['torch_gflops']:.0f}" if "torch_gflops" in r else ""
            rate += " GFLOP/s"
        lines.append(f"| {r['name']} | {r['shape']} | {format_seconds(r['gradforge_s'])} | "
                     f"{format_seconds(r.get('torch_s'))} | {ratio} | {rate} |")
    return "\n".join(lines)


def kernel_table(rows: list[dict]) -> str:
    lines = ["| kernel | shape | kernel | d2d copy | kernel GB/s | copy GB/s | of copy |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['shape']} | {format_seconds(r['kernel_s'])} | "
                     f"{format_seconds(r['copy_s'])} | {r['kernel_gbps']:.3g} | "
                     f"{r['copy_gbps']:.3g} | {r['fraction_of_copy']:.0%} |")
    return "\n".join(lines)


def select(workloads: list[Workload], only: str | None) -> list[Workload]:
    """``--only``: comma-separated names or name prefixes (``conv`` selects every conv row)."""
    if not only:
        return workloads
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    chosen = [w for w in workloads if any(w.name == x or w.name.startswith(x) for x in wanted)]
    if not chosen and not any("kernels".startswith(x) for x in wanted):
        names = ", ".join(w.name for w in workloads)
        raise SystemExit(f"--only {only!r} matches no workload; the workloads are: {names}, "
                         "kernels")
    return chosen


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--only", help="comma-separated workload names or prefixes")
    parser.add_argument("--json", help="write the results and the environment to this file")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: two samples each, kernels at batch 1")
    parser.add_argument("--reps", type=int, help="samples per library (default per workload)")
    parser.add_argument("--settle", type=float,
                        help="CPU: seconds of pause between blocks of one library's samples, "
                             "so the other's idle thread pool is asleep (default 0.25; 0 "
                             "alternates sample by sample, as on the GPU)")
    args = parser.parse_args(argv)

    if args.device == "cuda" and not gradforge.cuda.is_available():
        raise SystemExit(f"--device cuda: {gradforge.backend.cuda.status()[1]}")
    workloads = select(all_workloads(), args.only)
    torch = load_torch()
    if torch is None:
        print("PyTorch is not installed: timing gradforge only.", file=sys.stderr)
    warmup = 1
    settle = args.settle if args.settle is not None else \
        (0.25 if args.device == "cpu" and not args.quick else 0.0)
    load_before = os.getloadavg()  # other work on the machine skews both columns
    rows = []
    for w in workloads:
        reps = args.reps or (min(w.reps, 2) if args.quick else w.reps)
        missing = missing_names(w.needs)
        if missing:
            rows.append({"name": w.name, "shape": w.shape,
                         "skipped": f"not available: {', '.join(missing)}"})
        else:
            try:
                rows.append(run_workload(w, args.device, torch, reps, warmup, settle))
            except Exception as e:  # noqa: BLE001  one broken workload must not hide the rest
                traceback.print_exc()
                rows.append({"name": w.name, "shape": w.shape,
                             "failed": f"failed: {type(e).__name__}: {e}"})
        print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)  # progress
    print(table(rows))
    kernels = []
    if args.device == "cuda" and (not args.only or "kernels" in args.only):
        kernels = run_kernels(args.reps or (2 if args.quick else 20), warmup,
                              batch=1 if args.quick else 32)
        print("\n" + kernel_table(kernels))
    if args.json:
        env = dict(environment(args.device, torch), settle_s=settle, loadavg_start=load_before,
                   loadavg_end=os.getloadavg())
        results = {"environment": env, "workloads": rows, "kernels": kernels}
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 1 if any("failed" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

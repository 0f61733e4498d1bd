"""Every kernels/*.cu compiles with nvcc for sm_80 and sm_90, and follows the kernel rules.

The nvcc builds (float and double, both architectures, warnings as errors) run in parallel
and are cached per content hash in the temp directory, so a rerun costs nothing. The rules
(STYLE.md 8-10) need no compiler: a contract comment first, ``<op>_<forward|backward>``
names, 64-bit sizes, pointers before scalars, grid-stride loops, no thread communication.
"""
import concurrent.futures
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from kernel_emulation import parse_kernels

from gradforge.backend.kernels import kernel_dir

NVCC = shutil.which("nvcc")
FILES = sorted(p.name for p in kernel_dir().glob("*.cu"))
SCALAR_TYPES = ["float", "double"]
NVCC_FLAGS = ["-c", "-std=c++14", "-Werror", "all-warnings",
              "-gencode", "arch=compute_80,code=sm_80", "-gencode", "arch=compute_90,code=sm_90"]
CACHE = Path(tempfile.gettempdir()) / "gradforge-nvcc-cache"


def _nvcc(filename: str, scalar_t: str) -> tuple[bool, str]:
    """``(compiled, diagnostics)`` for one file and element type; successes are cached."""
    source = (kernel_dir() / filename).read_text()
    flags = [*NVCC_FLAGS, f"-Dscalar_t={scalar_t}"]
    key = hashlib.sha256("\0".join([NVCC, *flags, source]).encode()).hexdigest()[:32]
    marker = CACHE / f"{key}.ok"
    if marker.is_file():
        return True, ""
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([NVCC, *flags, str(kernel_dir() / filename), "-o",
                               str(Path(tmp) / "kernel.o")],
                              capture_output=True, text=True, check=False)
    if done.returncode == 0:
        marker.touch()
    return done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def nvcc_results():
    if NVCC is None:
        pytest.skip("nvcc is not installed")
    jobs = [(f, t) for f in FILES for t in SCALAR_TYPES]
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(zip(jobs, pool.map(lambda job: _nvcc(*job), jobs)))


@pytest.mark.parametrize("scalar_t", SCALAR_TYPES)
@pytest.mark.parametrize("filename", FILES)
def test_kernel_compiles_with_nvcc_for_sm80_and_sm90(nvcc_results, filename, scalar_t):
    compiled, log = nvcc_results[filename, scalar_t]
    assert compiled, f"nvcc failed on {filename} with scalar_t={scalar_t}:\n{log}"


def test_there_are_kernels():
    assert {"im2col.cu", "pool2d.cu"} <= set(FILES)


@pytest.mark.parametrize("filename", FILES)
def test_kernel_file_follows_the_rules(filename):
    source = (kernel_dir() / filename).read_text()
    assert source.startswith(f"// {filename}: "), "the file must open with its contract"
    code = re.sub(r"//[^\n]*|/\*.*?\*/", "", source, flags=re.DOTALL)
    # Threads never talk to each other (gathers, not atomics) and NVRTC has no headers.
    for banned in ("__shared__", "__syncthreads", "atomic", "#include"):
        assert banned not in code, f"{filename} uses {banned}"
    kernels = parse_kernels(source, {"scalar_t": "float"})
    bodies = re.split(r'extern\s+"C"\s+__global__', code)[1:]
    assert len(bodies) == len(kernels)
    for (name, params), body in zip(kernels.items(), bodies):
        assert re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*_(forward|backward)", name), name
        pointers = [p.pointer for p in params]
        assert pointers == sorted(pointers, reverse=True), f"{name}: pointers must come first"
        for p in params:
            if not p.pointer:
                assert p.ctype in ("long long", "scalar_t"), f"{name}: {p.ctype} {p.name}"
        assert "(long long)blockIdx.x * blockDim.x + threadIdx.x" in body, name
        assert "+= (long long)blockDim.x * gridDim.x" in body, f"{name}: not grid-stride"

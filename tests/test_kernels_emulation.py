"""The CUDA kernels of kernels/*.cu, run on the CPU by the emulator, against their NumPy twins.

The same source the GPU compiles is built with g++ under ``kernel_emulation/cuda_shim.h`` and
run over small launch grids (fewer threads than work items, so every grid-stride loop takes
several rounds). Outputs sit inside sentinel-filled buffers to catch out-of-bounds writes.
A kernel without an emulation case here fails ``test_every_kernel_has_an_emulation_case``.
"""
import contextlib
import types

import numpy as np
import pytest
from kernel_emulation import EmulatedModule, compiler, discover, launch, load, parse_kernels
from kernel_emulation.cases import AVG_POOL, CONV, MAX_POOL, make_input

from gradforge.backend.cpu import BACKEND as CPU
from gradforge.backend.cuda import CUDABackend
from gradforge.backend.shapes import conv_output_shape

needs_cxx = pytest.mark.skipif(compiler() is None, reason="no host C++ compiler (g++)")

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]
# (blocks, threads per block): 15 threads for up to a few hundred items, and 224 threads.
GEOMETRIES = [pytest.param((3, 5), id="grid3x5"), pytest.param((7, 32), id="grid7x32")]
COVERED: set[str] = set()


def emulates(*names):
    """Record that the decorated test runs these kernels."""
    COVERED.update(names)
    return lambda test: test


def tolerance(dtype) -> dict:
    # Kernels and twins add in the same order, so they agree to round-off at worst.
    return {"rtol": 1e-6, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-13,
                                                                      "atol": 1e-13}


class Guarded:
    """An output array inside a sentinel-filled buffer, to catch writes past either end."""

    PAD = 17

    def __init__(self, shape, dtype):
        self.sentinel = np.array(-7777.25).astype(dtype)
        size = int(np.prod(shape))
        self.buffer = np.full(size + 2 * self.PAD, self.sentinel, dtype)
        self.array = self.buffer[self.PAD:self.PAD + size].reshape(shape)

    def check(self):
        edges = np.concatenate([self.buffer[:self.PAD], self.buffer[-self.PAD:]])
        assert (edges == self.sentinel).all(), "the kernel wrote outside its output"
        return self.array


def run(module, name, geometry, inputs, outputs, *sizes):
    """Launch ``name`` over the first output's elements with ``inputs``, guarded ``outputs``
    ((shape, dtype) pairs) and the ``sizes`` after ``total``."""
    guarded = [Guarded(shape, dtype) for shape, dtype in outputs]
    launch(module.get_function(name), *geometry, *inputs, *(g.array for g in guarded),
           np.int64(guarded[0].array.size), *map(np.int64, sizes))
    return [g.check() for g in guarded]


# ---- im2col.cu -------------------------------------------------------------------------------


@needs_cxx
@emulates("im2col_forward", "im2col_backward")
@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV)
def test_im2col_kernels_match_numpy(case, dtype, geometry):
    module = load("im2col.cu", dtype)
    x = make_input(case.shape, dtype)
    oh, ow = conv_output_shape((case.h, case.w), case.conv_args[:2], case.conv_args[2:4],
                               case.conv_args[4:6], case.conv_args[6:])
    sizes = (case.h, case.w, oh, ow, *case.conv_args)
    expected = CPU.im2col(x, *case.conv_args)
    [cols] = run(module, "im2col_forward", geometry, [x], [(expected.shape, dtype)], *sizes)
    np.testing.assert_array_equal(cols, expected)
    columns = make_input(expected.shape, dtype, seed=1)
    [back] = run(module, "im2col_backward", geometry, [columns], [(case.shape, dtype)], *sizes)
    np.testing.assert_allclose(back, CPU.col2im(columns, case.shape, *case.conv_args),
                               **tolerance(dtype))


# ---- pool2d.cu -------------------------------------------------------------------------------


def pool_input(shape, dtype, values):
    x = make_input(shape, dtype, ties=values != "distinct")
    if values == "nan-inf":
        flat = x.reshape(-1)
        flat[::5], flat[2::7], flat[3::11] = np.nan, -np.inf, np.inf
    return x


@needs_cxx
@emulates("max_pool2d_forward", "max_pool2d_backward")
@pytest.mark.parametrize("values", ["distinct", "ties", "nan-inf"])
@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", MAX_POOL)
def test_max_pool_kernels_match_numpy(case, dtype, geometry, values):
    module = load("pool2d.cu", dtype)
    x = pool_input(case.shape, dtype, values)
    out, indices = CPU.max_pool2d_forward(x, *case.max_pool_args)
    sizes = (case.h, case.w, *out.shape[2:], *case.conv_args)
    got, got_indices = run(module, "max_pool2d_forward", geometry, [x],
                           [(out.shape, dtype), (out.shape, np.int64)], *sizes)
    np.testing.assert_array_equal(got, out)
    np.testing.assert_array_equal(got_indices, indices)
    grad = make_input(out.shape, dtype, seed=2)
    [grad_x] = run(module, "max_pool2d_backward", geometry, [grad, indices],
                   [(case.shape, dtype)], *sizes)
    np.testing.assert_allclose(grad_x, CPU.max_pool2d_backward(grad, indices, case.shape,
                                                               *case.max_pool_args),
                               **tolerance(dtype))


@needs_cxx
@emulates("avg_pool2d_forward", "avg_pool2d_backward")
@pytest.mark.parametrize("divisor_override", [None, 3])
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", AVG_POOL)
def test_avg_pool_kernels_match_numpy(case, dtype, geometry, count_include_pad,
                                      divisor_override):
    module = load("pool2d.cu", dtype)
    x = make_input(case.shape, dtype)
    flags = (count_include_pad, divisor_override)
    out = CPU.avg_pool2d_forward(x, *case.avg_pool_args, *flags)
    sizes = (case.h, case.w, *out.shape[2:], *case.avg_pool_args[:6], count_include_pad,
             divisor_override or 0)
    [got] = run(module, "avg_pool2d_forward", geometry, [x], [(out.shape, dtype)], *sizes)
    np.testing.assert_allclose(got, out, **tolerance(dtype))
    grad = make_input(out.shape, dtype, seed=2)
    [grad_x] = run(module, "avg_pool2d_backward", geometry, [grad], [(case.shape, dtype)],
                   *sizes)
    np.testing.assert_allclose(grad_x, CPU.avg_pool2d_backward(grad, case.shape,
                                                               *case.avg_pool_args, *flags),
                               **tolerance(dtype))


def test_every_kernel_has_an_emulation_case():
    kernels = {name for names in discover().values() for name in names}
    assert kernels, "no kernels found in kernels/"
    assert kernels - COVERED == set(), "kernels without an emulation case"
    assert COVERED - kernels == set(), "emulation cases for kernels that no longer exist"


# ---- CUDABackend's methods, with the emulator standing in for the GPU ------------------------


class _EmulatedCupy:
    """Just enough of CuPy for CUDABackend: NumPy arrays, RawModule from the emulator."""

    ndarray = np.ndarray
    RawModule = EmulatedModule
    cuda = types.SimpleNamespace(Device=lambda index: contextlib.nullcontext())

    def __getattr__(self, name):
        return getattr(np, name)


@needs_cxx
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_backend_methods_match_the_numpy_twins(dtype):
    gpu, tol = CUDABackend(_EmulatedCupy(), 0), tolerance(dtype)
    # A strided input: the backend makes it contiguous for the kernels.
    x = make_input((7, 2, 6, 3), dtype, ties=True).transpose(3, 1, 0, 2)  # (3, 2, 7, 6)
    conv = (3, 2, 2, 1, 1, 1, 1, 2)
    cols = CPU.im2col(x, *conv)
    np.testing.assert_array_equal(gpu.im2col(x, *conv), cols)
    np.testing.assert_allclose(gpu.col2im(cols, x.shape, *conv), CPU.col2im(cols, x.shape, *conv),
                               **tol)
    pool = (3, 2, 2, 1, 1, 1, 1, 2, True)
    out, indices = CPU.max_pool2d_forward(x, *pool)
    got, got_indices = gpu.max_pool2d_forward(x, *pool)
    np.testing.assert_array_equal(got, out)
    np.testing.assert_array_equal(got_indices, indices)
    grad = make_input(out.shape, dtype, seed=3)
    np.testing.assert_allclose(gpu.max_pool2d_backward(grad, indices, x.shape, *pool),
                               CPU.max_pool2d_backward(grad, indices, x.shape, *pool), **tol)
    for avg in [(3, 2, 2, 1, 1, 1, True, False, None), (2, 2, 2, 2, 0, 1, False, True, 5)]:
        out = CPU.avg_pool2d_forward(x, *avg)
        np.testing.assert_allclose(gpu.avg_pool2d_forward(x, *avg), out, **tol)
        grad = make_input(out.shape, dtype, seed=4)
        np.testing.assert_allclose(gpu.avg_pool2d_backward(grad, x.shape, *avg),
                                   CPU.avg_pool2d_backward(grad, x.shape, *avg), **tol)
    with pytest.raises(RuntimeError, match="Kernel size can't be greater"):
        gpu.im2col(x, 9, 9, 1, 1, 0, 0, 1, 1)


# ---- the harness itself ----------------------------------------------------------------------


@needs_cxx
@pytest.mark.parametrize("filename", sorted(discover()))
@pytest.mark.parametrize("scalar_t", ["float", "double"])
def test_kernels_compile_cleanly_on_the_host(filename, scalar_t):
    assert load(filename, scalar_t).warnings == ""


@needs_cxx
def test_harness_checks_arguments_as_cupy_does_not():
    kernel = load("im2col.cu", np.float32).get_function("im2col_forward")
    x, cols = np.zeros((1, 1, 2, 2), np.float32), np.zeros((1, 1, 4), np.float32)
    sizes = [np.int64(v) for v in (4, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 1, 1)]
    launch(kernel, 1, 4, x, cols, *sizes)
    with pytest.raises(TypeError, match=r"argument 2 \(long long total\).*numpy.int64.*int"):
        launch(kernel, 1, 4, x, cols, 4, *sizes[1:])
    with pytest.raises(TypeError, match="numpy.int64 scalar, got numpy.int32"):
        launch(kernel, 1, 4, x, cols, np.int32(4), *sizes[1:])
    with pytest.raises(TypeError, match=r"argument 0 .* must have dtype float32, got float64"):
        launch(kernel, 1, 4, x.astype(np.float64), cols, *sizes)
    with pytest.raises(ValueError, match="must be C-contiguous"):
        launch(kernel, 1, 4, np.zeros((1, 1, 2, 4), np.float32)[..., ::2], cols, *sizes)
    cols.flags.writeable = False
    with pytest.raises(ValueError, match="written by the kernel but is read-only"):
        launch(kernel, 1, 4, x, cols, *sizes)
    cols = np.zeros_like(cols)
    with pytest.raises(TypeError, match="takes 15 arguments, got 14"):
        launch(kernel, 1, 4, x, cols, *sizes[1:])
    with pytest.raises(ValueError, match="more than 1024 threads"):
        launch(kernel, 1, (64, 32), x, cols, *sizes)
    with pytest.raises(ValueError, match="dynamic shared memory"):
        kernel(1, 4, (x, cols, *sizes), shared_mem=16)


@needs_cxx
def test_harness_runs_every_block_and_thread_of_a_3d_grid():
    module = EmulatedModule(
        'extern "C" __global__ void record(long long* out) {\n'
        "    long long block = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;\n"
        "    long long thread = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x"
        " + threadIdx.x;\n"
        "    out[block * blockDim.x * blockDim.y * blockDim.z + thread] = block * 100 + thread;\n"
        "}\n")
    out = np.full(2 * 3 * 1 * 4 * 1 * 2, -1, np.int64)
    launch(module.get_function("record"), (2, 3), (4, 1, 2), out)
    block, thread = np.divmod(np.arange(out.size), 8)
    np.testing.assert_array_equal(out, block * 100 + thread)


@needs_cxx
def test_harness_refuses_what_it_cannot_emulate():
    with pytest.raises(ValueError, match='extern "C"'):
        parse_kernels("__global__ void f(float* a) {}")
    with pytest.raises(ValueError, match="unsupported parameter type"):
        parse_kernels('extern "C" __global__ void f(float2 a) {}')
    with pytest.raises(ValueError, match="unsupported compiler option '--use_fast_math'"):
        EmulatedModule('extern "C" __global__ void f() {}', ("--use_fast_math",))
    # Shared memory needs threads that run together: the shim leaves it undefined.
    with pytest.raises(RuntimeError, match="__shared__"):
        EmulatedModule('extern "C" __global__ void f(float* a) { __shared__ float s[4]; }')
    with pytest.raises(LookupError, match="no __global__ function 'g'"):
        EmulatedModule('extern "C" __global__ void f() {}').get_function("g")

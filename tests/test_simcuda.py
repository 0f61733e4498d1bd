"""The CUDA simulator itself: it must refuse what CuPy refuses, so CI catches host/device bugs.

These tests exercise ``simcuda`` directly (no gradforge device in between); gradforge on the
simulated device is tested in test_devices.py.
"""
import gc
import math

import numpy as np
import pytest
import simcuda as cp
from kernel_emulation import compiler

from gradforge.backend.kernels import kernel_source

needs_cxx = pytest.mark.skipif(compiler() is None, reason="no host C++ compiler for the kernels")


def dev(*shape, seed=0):
    return cp.asarray(np.random.default_rng(seed).standard_normal(shape))


# -- host and device do not mix ---------------------------------------------------------------
def test_device_arrays_are_not_numpy_arrays_and_do_not_convert_implicitly():
    a = dev(2, 3)
    assert not isinstance(a, np.ndarray)
    for convert in (np.asarray, np.array, lambda x: np.array([x, x])):
        with pytest.raises(TypeError, match="Implicit conversion to a NumPy array"):
            convert(a)
    np.testing.assert_array_equal(cp.asnumpy(a), a.get())
    assert isinstance(cp.asnumpy(a), np.ndarray)


@pytest.mark.parametrize("mix", [
    lambda a, h: a + h, lambda a, h: h + a, lambda a, h: cp.multiply(a, h),
    lambda a, h: np.add(h, a), lambda a, h: cp.concatenate([a, h]),
    lambda a, h: cp.where(a > 0, a, h), lambda a, h: cp.add(a, h.tolist())])
def test_host_operands_with_dimensions_are_refused(mix):
    with pytest.raises(TypeError, match="Unsupported type"):
        mix(dev(3), np.ones(3))


def test_scalars_and_zero_dim_host_arrays_are_accepted():
    a = dev(3)
    expected = a.get() * 2 + 1
    for scalar in (2, np.float64(2), np.array(2.0)):
        np.testing.assert_allclose((a * scalar + 1).get(), expected)


def test_host_indices_and_values_are_copied_in_as_cupy_does():
    a = dev(4, 3)
    host = a.get()
    np.testing.assert_array_equal(a[np.array([2, 0])].get(), host[[2, 0]])
    np.testing.assert_array_equal(a[[1, 1]].get(), host[[1, 1]])
    a[np.array([0])] = np.full((1, 3), 7.0)
    assert (a[0].get() == 7).all()


def test_results_are_device_arrays_and_reductions_are_zero_dim():
    a = dev(2, 3)
    for result in (a.sum(), cp.sum(a), a[0, 0], np.max(a), cp.allclose(a, a),
                   cp.count_nonzero(a)):
        assert isinstance(result, cp.ndarray) and result.ndim == 0
    assert isinstance(np.exp(a), cp.ndarray)  # NumPy functions dispatch to the device
    assert float(a.sum()) == pytest.approx(a.get().sum())
    assert a.shape == (2, 3) and a.dtype == np.float64 and a.T.shape == (3, 2)


def test_unsupported_dtypes_and_missing_api_are_refused():
    with pytest.raises(ValueError, match="Unsupported dtype"):
        cp.asarray(np.array(["a", "b"]))
    for name in ("errstate", "frompyfunc", "nditer"):
        with pytest.raises(AttributeError, match=name):
            getattr(cp, name)
    with pytest.raises(AttributeError):
        dev(2).ctypes  # noqa: B018
    with pytest.raises(NotImplementedError, match="subtract.at"):
        cp.subtract.at(dev(3), np.array([0]), 1.0)
    with pytest.raises(NotImplementedError, match="maximum.reduce"):
        cp.maximum.reduce(dev(3))
    with pytest.raises(ValueError, match="stably"):
        cp.argsort(dev(3), kind="quicksort")
    assert cp.argsort(dev(3), kind="stable").dtype == np.int64
    with pytest.raises(AttributeError, match="permutation"):
        cp.random.default_rng(0).permutation(3)


def test_add_at_accumulates_repeated_indices():
    a = cp.zeros(3)
    cp.add.at(a, cp.asarray(np.array([0, 0, 2])), cp.asarray(np.array([1.0, 2.0, 5.0])))
    np.testing.assert_array_equal(a.get(), [3.0, 0.0, 5.0])


# -- devices ------------------------------------------------------------------------------
def test_arrays_live_on_the_device_current_at_creation():
    assert cp.cuda.runtime.getDeviceCount() == 2
    with cp.cuda.Device(1):
        b = cp.ones(3)
        assert cp.cuda.runtime.getDevice() == 1
    assert cp.cuda.runtime.getDevice() == 0
    assert b.device.id == 1 and b.data.device_id == 1
    assert b[1:].device.id == 1  # a view shares the memory and the device
    with pytest.raises(ValueError, match=r"resides \(1\).*current device \(0\)"):
        b + 1
    with cp.cuda.Device(1):
        np.testing.assert_array_equal((b + 1).get(), [2.0, 2.0, 2.0])
    moved = cp.array(b)  # an explicit copy lands on the current device
    assert moved.device.id == 0
    np.testing.assert_array_equal(cp.asnumpy(b), [1.0, 1.0, 1.0])  # transfers work anywhere
    with pytest.raises(RuntimeError, match="invalid device ordinal"):
        cp.cuda.Device(2).use()


def test_ndarray_copy_lands_on_the_current_device_even_from_another():
    with cp.cuda.Device(1):
        b = cp.arange(6.0).reshape(2, 3)
    for source, expected in ((b, [[0, 1, 2], [3, 4, 5]]), (b.T, [[0, 3], [1, 4], [2, 5]])):
        c = source.copy()  # CuPy: contiguous on device 1, then device-to-device bytes
        assert c.device.id == 0 and c.flags.c_contiguous
        np.testing.assert_array_equal(c.get(), expected)
    with pytest.raises(NotImplementedError, match="non-contiguous array between devices"):
        b[:, ::2].copy(order="K")  # 'K' keeps the strides: neither C nor F contiguous
    with cp.cuda.Device(1):
        same = b.copy()
    assert same.device.id == 1


# -- memory pool and allocator -----------------------------------------------------------
def test_pool_counts_owned_memory_in_512_byte_blocks_and_frees_it():
    pool = cp.get_default_memory_pool()
    gc.collect()
    before = pool.used_bytes()
    a = cp.zeros(1000)  # 8000 bytes -> 8192
    assert pool.used_bytes() - before == 8192
    view = a[10:]
    assert pool.used_bytes() - before == 8192  # views allocate nothing
    del a, view
    gc.collect()
    assert pool.used_bytes() == before
    assert pool.free_bytes() >= 8192  # cached for reuse until freed
    pool.free_all_blocks()
    assert pool.free_bytes() == 0


def test_allocations_go_through_the_installed_allocator():
    seen = []
    inner = cp.cuda.get_allocator()

    def recording(size):
        seen.append(size)
        return inner(size)

    cp.cuda.set_allocator(recording)
    try:
        cp.empty((4, 4), np.float32)
    finally:
        cp.cuda.set_allocator(inner)
    assert seen == [64]


def test_pinned_memory_is_reported_by_pointer_attributes():
    pinned = cp.cupyx.empty_pinned((4,), np.float32)
    assert cp.cuda.runtime.pointerGetAttributes(pinned.ctypes.data).type == 1
    assert cp.cuda.runtime.pointerGetAttributes(np.zeros(4).ctypes.data).type == 0


def test_from_dlpack_shares_device_memory():
    a = dev(3)
    b = cp.from_dlpack(a)
    b[0] = 42.0
    assert float(a[0]) == 42.0
    with pytest.raises(TypeError, match="kDLCUDA"):
        cp.from_dlpack(np.zeros(3))


# -- cuRAND host API ----------------------------------------------------------------------
def test_curand_fills_device_memory_deterministically_with_curands_ranges():
    curand = cp.cuda.curand
    g = curand.createGenerator(curand.CURAND_RNG_PSEUDO_PHILOX4_32_10)
    out = cp.empty(1000, np.float32)
    curand.setPseudoRandomGeneratorSeed(g, 7)
    curand.generateUniform(g, out.data.ptr, out.size)
    first = out.get()
    assert 0 < first.min() and first.max() <= 1  # (0, 1], as cuRAND's
    curand.setGeneratorOffset(g, 0)
    curand.generateUniform(g, out.data.ptr, out.size)
    np.testing.assert_array_equal(out.get(), first)
    curand.generateUniform(g, out.data.ptr, out.size)  # the offset moved on
    assert not np.array_equal(out.get(), first)
    normal = cp.empty(3)
    with pytest.raises(ValueError, match="even number"):
        curand.generateNormalDouble(g, normal.data.ptr, 3, 0.0, 1.0)
    with pytest.raises(curand.CURANDError, match="not in device memory"):
        curand.generateUniform(g, np.zeros(4, np.float32).ctypes.data, 4)
    with pytest.raises(curand.CURANDError, match="not in device memory"):
        curand.generateUniformDouble(g, out.data.ptr, out.size)  # 8000 bytes overrun 4000
    curand.destroyGenerator(g)


# -- kernels: the real .cu source, launched with CuPy's argument conversion -----------------
@needs_cxx
def test_raw_module_runs_the_real_kernel_source():
    module = cp.RawModule(code=kernel_source("im2col.cu"), options=("-Dscalar_t=double",))
    kernel = module.get_function("im2col_forward")
    x = dev(1, 1, 3, 3)
    cols = cp.zeros((1, 4, 4))  # 2x2 kernel, stride 1: 4 window offsets x 4 positions
    sizes = (3, 3, 2, 2, 2, 2, 1, 1, 0, 0, 1, 1)  # H W OH OW KH KW SH SW PH PW DH DW
    kernel((1,), (32,), (x, cols, cols.size) + sizes)
    host = x.get()[0, 0]
    windows = np.lib.stride_tricks.sliding_window_view(host, (2, 2))  # (OH, OW, KH, KW)
    np.testing.assert_array_equal(cols.get()[0], windows.transpose(2, 3, 0, 1).reshape(4, 4))


@needs_cxx
def test_raw_kernel_arguments_are_converted_and_checked_as_on_a_gpu():
    module = cp.RawModule(code=kernel_source("im2col.cu"), options=("-Dscalar_t=float",))
    kernel = module.get_function("im2col_forward")
    x = cp.zeros((1, 1, 3, 3), np.float32)
    cols = cp.zeros((1, 4, 4), np.float32)
    sizes = (3, 3, 2, 2, 2, 2, 1, 1, 0, 0, 1, 1)
    with pytest.raises(TypeError, match="Unsupported type"):  # host array
        kernel((1,), (32,), (np.zeros((1, 1, 3, 3), np.float32), cols, 16) + sizes)
    with pytest.raises(TypeError, match="float64"):  # a Python float is passed as double
        kernel((1,), (32,), (x, cols, 16.0) + sizes)
    with pytest.raises(ValueError, match="C-contiguous"):
        kernel((1,), (32,), (x.transpose(0, 1, 3, 2), cols, 16) + sizes)
    with cp.cuda.Device(1), pytest.raises(RuntimeError, match="loaded on device 0"):
        kernel((1,), (32,), (x, cols, 16) + sizes)


def test_cupyx_erf_matches_math_erf_and_cupys_dtypes():
    from simcuda.cupyx.scipy.special import erf
    x = dev(5)
    np.testing.assert_allclose(erf(x).get(), [math.erf(v) for v in x.get()], rtol=1e-15)
    assert erf(x.astype(np.float16)).dtype == np.float32
    with pytest.raises(TypeError, match="Unsupported type"):
        erf(np.zeros(2))

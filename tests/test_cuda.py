"""``gradforge.cuda`` and the CUDA backend: availability errors, devices, RNG, memory, pinning.

The error-message tests run everywhere: they replace the backend's probe so that CUDA looks
absent for the reason under test. The rest runs on a real GPU, or on the simulated device.
"""
import gc
import importlib
import types

import numpy as np
import pytest

import gradforge
from gradforge.backend import cuda as backend_cuda

# The module (gradforge.backend.device is also the name of the class it defines).
device_module = importlib.import_module("gradforge.backend.device")

cuda = pytest.mark.cuda


# -- without a GPU: clear errors that say why and how to install the extra -------------------
def _runtime(get_count):
    return types.SimpleNamespace(cuda=types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=get_count)))


def _raise(exc):
    def fail(*args):
        raise exc
    return fail


PROBES = {
    "no cupy": (False, _raise(ImportError("No module named 'cupy'")),
                r"CuPy is not installed.*pip install \"gradforge\[cuda12\]\""),
    "no driver": (False, lambda name="cupy": _runtime(_raise(RuntimeError(
        "cudaErrorInsufficientDriver: CUDA driver version is insufficient"))),
        "NVIDIA driver is not usable.*cudaErrorInsufficientDriver"),
    "no device": (False, lambda name="cupy": _runtime(lambda: 0), "no CUDA device was found"),
    "simulator not importable": (True, _raise(ImportError("No module named 'simcuda'")),
                                 "test-only CUDA simulator.*tests/"),
}


@pytest.fixture(params=sorted(PROBES))
def missing_cuda(request, monkeypatch):
    """CUDA made unusable for one reason; yields the regex its error message must match."""
    simulate, importer, message = PROBES[request.param]
    monkeypatch.setenv("GRADFORGE_SIMULATE_CUDA", "1" if simulate else "0")
    monkeypatch.setattr(backend_cuda, "_import_cupy", importer)
    monkeypatch.setattr(backend_cuda, "_status", None)
    monkeypatch.setattr(backend_cuda, "_cupy", None)
    # Devices already resolved to a backend cache it; start from fresh descriptors.
    monkeypatch.setattr(device_module, "_CANONICAL", {})
    return message


def test_without_cuda_every_request_for_a_cuda_tensor_says_why(missing_cuda):
    assert not gradforge.cuda.is_available()
    assert gradforge.cuda.device_count() == 0
    cpu = gradforge.ones(2)
    for request in (lambda: gradforge.zeros(2, device="cuda"),
                    lambda: gradforge.tensor([1.0], device="cuda:0"),
                    lambda: cpu.cuda(), lambda: cpu.to("cuda"),
                    lambda: gradforge.nn.Linear(2, 2).to("cuda"),
                    lambda: gradforge.cuda.synchronize(), lambda: gradforge.cuda.current_device(),
                    lambda: gradforge.cuda.memory_allocated()):
        with pytest.raises(RuntimeError, match=missing_cuda):
            request()


def test_without_cuda_seeding_and_cache_calls_are_harmless(missing_cuda):
    gradforge.cuda.manual_seed(3)
    gradforge.cuda.manual_seed_all(3)
    gradforge.cuda.empty_cache()
    assert not backend_cuda.is_pinned(np.zeros(3))


def test_unknown_devices_are_value_errors_naming_them():
    for bad in ("tpu", "cuda:x", "cuda:-1"):
        with pytest.raises(ValueError, match=bad.split(":")[0]):
            gradforge.device(bad)
    with pytest.raises(ValueError, match="Expected a cuda device"):
        gradforge.cuda.set_device("cpu")


# -- devices -----------------------------------------------------------------------------
@cuda
def test_device_queries_and_the_device_context():
    assert gradforge.cuda.is_available()
    n = gradforge.cuda.device_count()
    assert n >= 1
    assert gradforge.cuda.current_device() == 0
    name = gradforge.cuda.get_device_name()
    assert isinstance(name, str) and name
    last = n - 1
    with gradforge.cuda.device(last):
        assert gradforge.cuda.current_device() == last
        assert gradforge.zeros(1, device="cuda").device == gradforge.device("cuda", last)
    assert gradforge.cuda.current_device() == 0
    gradforge.cuda.set_device(f"cuda:{last}")
    try:
        assert gradforge.cuda.current_device() == last
    finally:
        gradforge.cuda.set_device(0)
    gradforge.cuda.synchronize()
    gradforge.cuda.synchronize("cuda:0")
    with pytest.raises(RuntimeError, match=f"{n} device"):
        gradforge.cuda.set_device(n)


# -- random numbers -------------------------------------------------------------------------
@cuda
def test_cuda_random_numbers_are_drawn_on_the_gpu_and_seeded():
    gradforge.cuda.manual_seed(5)
    a = gradforge.rand(1000, device="cuda")
    assert isinstance(a._data, a.device.backend.xp.ndarray)
    gradforge.cuda.manual_seed(5)
    np.testing.assert_array_equal(gradforge.rand(1000, device="cuda").cpu().numpy(),
                                  a.cpu().numpy())
    host = a.cpu().numpy()
    assert host.dtype == np.float32 and 0 <= host.min() and host.max() < 1
    gradforge.manual_seed(6)  # gradforge.manual_seed seeds the CUDA generators too
    b = gradforge.randn(4000, dtype=gradforge.float64, device="cuda").cpu().numpy()
    assert abs(b.mean()) < 0.05 and abs(b.std() - 1) < 0.05
    assert len(np.unique(b)) == b.size
    c = gradforge.randn(3, device="cuda").cpu().numpy()  # odd counts come from even draws
    assert c.shape == (3,) and np.isfinite(c).all()


@cuda
def test_cuda_integers_and_permutations():
    gradforge.cuda.manual_seed(1)
    r = gradforge.randint(-3, 4, (2000,), device="cuda").cpu().numpy()
    assert r.dtype == np.int64 and set(np.unique(r)) == set(range(-3, 4))
    big = gradforge.randint(0, 2 ** 40, (100,), device="cuda").cpu().numpy()
    assert big.max() >= 2 ** 32  # ranges beyond 32 bits use two words per draw
    p = gradforge.randperm(50, device="cuda").cpu().numpy()
    np.testing.assert_array_equal(np.sort(p), np.arange(50))
    assert not np.array_equal(p, np.arange(50))


@cuda
def test_cuda_rng_state_round_trips_and_is_per_generator():
    gradforge.cuda.manual_seed(11)
    gradforge.rand(7, device="cuda")
    state = gradforge.cuda.get_rng_state()
    assert state.device == gradforge.device("cpu") and state.dtype == gradforge.uint8
    first = gradforge.rand(5, device="cuda").cpu().numpy()
    gradforge.cuda.set_rng_state(state)
    np.testing.assert_array_equal(gradforge.rand(5, device="cuda").cpu().numpy(), first)
    g = gradforge.Generator("cuda").manual_seed(11)
    mine = gradforge.rand(5, generator=g, device="cuda").cpu().numpy()
    g.manual_seed(11)
    np.testing.assert_array_equal(gradforge.rand(5, generator=g, device="cuda").cpu().numpy(),
                                  mine)
    assert len(gradforge.cuda.get_rng_state_all()) == gradforge.cuda.device_count()
    with pytest.raises(RuntimeError, match="invalid CUDA RNG state: expected 16 bytes, got 3"):
        gradforge.cuda.set_rng_state(gradforge.tensor([1, 2, 3], dtype=gradforge.uint8))
    with pytest.raises(RuntimeError, match="'cuda' device type for generator but found 'cpu'"):
        gradforge.rand(2, generator=gradforge.Generator("cpu"), device="cuda")


# -- memory -------------------------------------------------------------------------------
@cuda
def test_memory_allocated_follows_live_tensors_and_peaks_are_kept():
    gc.collect()
    gradforge.cuda.reset_peak_memory_stats()
    before = gradforge.cuda.memory_allocated()
    x = gradforge.zeros(1 << 20, device="cuda")  # 4 MiB
    assert gradforge.cuda.memory_allocated() - before >= 4 << 20
    assert gradforge.cuda.memory_reserved() >= gradforge.cuda.memory_allocated()
    del x
    gc.collect()
    assert gradforge.cuda.memory_allocated() == before
    assert gradforge.cuda.max_memory_allocated() >= before + (4 << 20)
    gradforge.cuda.reset_peak_memory_stats()
    assert gradforge.cuda.max_memory_allocated() == before
    reserved = gradforge.cuda.memory_reserved()
    gradforge.cuda.empty_cache()
    assert gradforge.cuda.memory_reserved() <= reserved


@cuda
def test_peak_sees_transient_allocations_inside_an_op():
    gc.collect()
    x = gradforge.ones(1 << 18, device="cuda")  # 1 MiB
    gradforge.cuda.reset_peak_memory_stats()
    base = gradforge.cuda.memory_allocated()
    y = (x * 2 + 1).sum()  # temporaries of 1 MiB each, freed before the call returns
    assert float(y) == 3 * (1 << 18)
    assert gradforge.cuda.max_memory_allocated() >= base + (1 << 20)


# -- pinned memory and non-blocking copies -----------------------------------------------------
@cuda
def test_dataloader_pins_batches_and_non_blocking_copies_are_accepted():
    from gradforge.utils.data import DataLoader, TensorDataset
    data = TensorDataset(gradforge.arange(12.0).reshape(6, 2), gradforge.arange(6))
    batches = list(DataLoader(data, batch_size=4, pin_memory=True))
    x, y = batches[0]
    assert x.device == gradforge.device("cpu")
    assert backend_cuda.is_pinned(x._data) and backend_cuda.is_pinned(y._data)
    assert not backend_cuda.is_pinned(gradforge.arange(3.0)._data)
    moved = x.to("cuda", non_blocking=True)
    assert moved.is_cuda
    np.testing.assert_array_equal(moved.cpu().numpy(), np.arange(8.0).reshape(4, 2))
    assert x.cuda(non_blocking=True).is_cuda

"""The fast paths of the training step agree bit for bit with the plain ones.

``backend.where`` (a bitwise select on the CPU), the engine's gradient accumulation without a
copy, and the in-place optimizer ops under ``no_grad`` take shortcuts for speed; these tests
pin their results to ``np.where`` and to the out-of-place formulas, including nan, inf and
-0.0, non-contiguous operands and repeated gradients.
"""
from __future__ import annotations

import numpy as np
import pytest

import gradforge as gf
from gradforge.backend.cpu import CPUBackend


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint8)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("case", ["x_zero", "zero_x", "minus_zero", "one", "strided", "transposed",
                                  "int_array"])
def test_cpu_where_matches_numpy_bitwise(dtype, case):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 7)).astype(dtype)
    x[0, 0], x[1, 1], x[2, 2] = np.nan, -0.0, np.inf
    c = rng.random((5, 7)) > 0.5
    c[0, 0], c[1, 1], c[2, 2] = False, True, True
    args = {"x_zero": (c, x, 0.0), "zero_x": (c, 0, x), "minus_zero": (c, x, -0.0),
            "one": (c, x, 1.0), "strided": (c[:, ::2], x[:, ::2], 0.0),
            "transposed": (c.T, x.T, 0),
            "int_array": (c, np.arange(35, dtype=np.int32).reshape(5, 7), 0)}[case]
    got, expected = CPUBackend().where(*args), np.where(*args)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(_bits(got), _bits(expected))


def test_relu_backward_masks_nan_gradient():
    x = gf.tensor([-1.0, 2.0, 0.0, 3.0], requires_grad=True)
    y = gf.relu(x)
    y.backward(gf.tensor([np.nan, np.inf, np.nan, -0.0]))
    np.testing.assert_array_equal(_bits(x.grad.numpy()),
                                  _bits(np.array([0.0, np.inf, 0.0, -0.0], np.float32)))


# -- .grad takes a fresh gradient without a copy, and never a shared one -----------------------
def test_linear_grads_accumulate_over_two_backwards():
    gf.manual_seed(0)
    lin = gf.nn.Linear(4, 3)
    x = gf.randn(2, 4)
    lin(x).sum().backward()
    first = lin.weight.grad.numpy().copy()
    np.testing.assert_allclose(first, np.tile(x.numpy().sum(0), (3, 1)), rtol=1e-6)
    lin(x).sum().backward()
    np.testing.assert_allclose(lin.weight.grad.numpy(), 2 * first, rtol=1e-6)
    np.testing.assert_allclose(lin.bias.grad.numpy(), [4.0, 4.0, 4.0])


def test_gradient_passed_to_two_leaves_is_not_shared():
    a = gf.ones(3, requires_grad=True)
    b = gf.ones(3, requires_grad=True)
    (a + b).sum().backward()
    assert not np.shares_memory(a.grad.numpy(), b.grad.numpy())
    a.grad.add_(5.0)
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 1.0, 1.0])


def test_gradient_still_pending_elsewhere_is_not_taken():
    # Add sends the same gradient to the leaf and to the Mul node, which runs after the leaf
    # has its .grad; the leaf's in-place accumulation must not change that pending gradient.
    a = gf.tensor([1.0, 2.0], requires_grad=True)
    (a + a * 2.0).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [3.0, 3.0])
    c = gf.tensor([1.0, 2.0], requires_grad=True)
    (c * 3.0 + (c + 0.0) * 2.0 + c).sum().backward()
    np.testing.assert_array_equal(c.grad.numpy(), [6.0, 6.0])


def test_gradient_seen_by_a_hook_is_copied():
    a = gf.ones(3, requires_grad=True)
    seen = []
    a.register_hook(seen.append)
    (a * 2.0).sum().backward()
    a.grad.add_(1.0)
    np.testing.assert_array_equal(seen[0].numpy(), [2.0, 2.0, 2.0])


_KEEPING_NODES = []


class _KeepsGrad(gf.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.kept = x.detach() * 0.0 + 2.0
        _KEEPING_NODES.append(ctx)
        return x * 2.0

    @staticmethod
    def backward(ctx, grad_output):
        return ctx.kept   # a tensor the node keeps: .grad must copy it


def test_gradient_kept_by_the_backward_is_copied():
    x = gf.ones(3, requires_grad=True)
    y = _KeepsGrad.apply(x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 4.0, 4.0])
    np.testing.assert_array_equal(_KEEPING_NODES[-1].kept.numpy(), [2.0, 2.0, 2.0])


# -- in-place optimizer ops under no_grad: the array path equals the out-of-place formula -------
def _pair(shape=(300, 70), dtype=np.float32):
    rng = np.random.default_rng(1)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(3)]


@pytest.mark.parametrize("shape", [(300, 70), (5,), (2, 3, 4)])
def test_add_alpha_matches_out_of_place(shape):
    y, x, _ = _pair(shape)
    t = gf.tensor(y)
    with gf.no_grad():
        t.add_(gf.tensor(x), alpha=-0.01)
    np.testing.assert_array_equal(t.numpy(), y + x * np.float32(-0.01))


def test_add_alpha_non_contiguous_and_broadcast():
    y, x, _ = _pair((64, 40))
    t = gf.tensor(y).t()
    with gf.no_grad():
        t.add_(gf.tensor(x.reshape(-1)[:64]), alpha=3.0)
    np.testing.assert_array_equal(t.numpy(), y.T + x.reshape(-1)[:64] * np.float32(3.0))


def test_addcmul_addcdiv_lerp_match_out_of_place():
    p, a, b = _pair()
    b = np.abs(b) + 0.5
    t1, t2 = gf.tensor(a), gf.tensor(b)
    with gf.no_grad():
        m = gf.tensor(p).addcmul_(t1, t2, value=0.3)
        d = gf.tensor(p).addcdiv_(t1, t2, value=-0.2)
        e = gf.tensor(p).lerp_(t1, 0.1)
        w = gf.tensor(p).lerp_(t1, t2)
    np.testing.assert_array_equal(m.numpy(), p + (a * b) * np.float32(0.3))
    np.testing.assert_array_equal(d.numpy(), p + (a / b) * np.float32(-0.2))
    np.testing.assert_array_equal(e.numpy(), p + (a - p) * np.float32(0.1))
    np.testing.assert_array_equal(w.numpy(), p + (a - p) * b)


def test_inplace_ops_on_a_leaf_requiring_grad_still_refuse():
    leaf = gf.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        leaf.addcmul_(gf.ones(3), gf.ones(3))
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        leaf.lerp_(gf.ones(3), 0.5)


def test_inplace_int_target_refuses_float_operand():
    t = gf.tensor([1, 2, 3])
    with pytest.raises(RuntimeError, match="can't be cast to the desired output type"):
        t.add_(gf.tensor([0.5, 0.5, 0.5]))


# -- the CPU workspace: large transient buffers reused once free -------------------------------
def _workspace(min_bytes=1024, max_bytes=10 ** 6):
    from gradforge.backend.cpu import _Workspace
    return _Workspace(min_bytes, max_bytes)


def test_workspace_reuses_a_buffer_only_once_nothing_refers_to_it():
    ws = _workspace()
    a = ws.take((64, 32), np.dtype(np.float32))
    a_address = a.ctypes.data
    b = ws.take((64, 32), np.dtype(np.float32))
    assert not np.shares_memory(a, b)          # a is still alive: a second buffer
    view = a[3:].T                             # a view keeps the buffer in use as well
    del a
    c = ws.take((64, 32), np.dtype(np.float32))
    assert not np.shares_memory(c, view) and not np.shares_memory(c, b)
    del view, c
    d = ws.take((16, 100), np.dtype(np.float64))  # 12.8 kB: more than the 8 kB buffers hold
    assert d.shape == (16, 100) and d.dtype == np.float64
    del d
    e = ws.take((2048,), np.dtype(np.float32))    # same 8 kB: the first free buffer again
    assert e.ctypes.data == a_address
    assert len(ws.buffers) == 4


def test_workspace_leaves_small_requests_and_the_budget_alone():
    ws = _workspace(min_bytes=4096, max_bytes=20000)
    small = ws.take((10,), np.dtype(np.float32))
    assert small.shape == (10,) and ws.buffers == []
    big = [ws.take((2048,), np.dtype(np.float32)) for _ in range(3)]  # 8 kB each
    assert len(ws.buffers) == 2                 # the third would exceed 20 kB: not kept
    del big
    ws.take((4000,), np.dtype(np.float32))      # 16 kB: room made by dropping free buffers
    assert sum(b.nbytes for b in ws.buffers) <= 20000
    ws.clear()
    assert ws.buffers == []


def test_convolutions_in_flight_keep_their_own_columns():
    """Two convolutions whose columns are saved for backward, then a third in between: each
    weight gradient still sees its own input (no buffer handed out twice)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((32, 16, 24, 24)).astype(np.float32) for _ in range(3)]
    w0 = rng.standard_normal((8, 16, 3, 3)).astype(np.float32)
    ours = gf.tensor(w0, requires_grad=True)
    theirs = torch.tensor(w0, requires_grad=True)
    outs = [gf.nn.functional.conv2d(gf.tensor(x), ours, padding=1) for x in xs[:2]]
    ref = [torch.nn.functional.conv2d(torch.tensor(x), theirs, padding=1) for x in xs[:2]]
    with gf.no_grad():
        gf.nn.functional.conv2d(gf.tensor(xs[2]), ours, padding=1)
    (outs[0].sum() + (outs[1] * 2).sum()).backward()
    (ref[0].sum() + (ref[1] * 2).sum()).backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-4, atol=1e-3)


# -- the C allocator's thresholds -------------------------------------------------------------
class _FakeLibc:
    def __init__(self):
        self.calls = []

    def mallopt(self, param, value):
        self.calls.append((param, value))
        return 1


def test_allocator_thresholds_are_set_unless_switched_off():
    from gradforge.backend import cpu
    libc = _FakeLibc()
    assert cpu.tune_allocator(libc, environ={}) is True
    assert libc.calls == [(-4, 0), (-1, 256 * 2 ** 20)]  # M_MMAP_MAX, M_TRIM_THRESHOLD
    off = _FakeLibc()
    assert cpu.tune_allocator(off, environ={"GRADFORGE_TUNE_MALLOC": "0"}) is False
    assert off.calls == []


def _require_glibc() -> None:
    import ctypes
    import sys
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    try:
        ctypes.CDLL(None).gnu_get_libc_version
    except AttributeError:
        pytest.skip("not glibc")


def test_glibc_accepts_the_settings():
    from gradforge.backend import cpu
    _require_glibc()
    assert cpu.tune_allocator(environ={}) is True


def _mapping_of(address: int) -> str:
    """The name of the /proc/self/maps region holding ``address`` ('' for anonymous maps)."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            lo, hi = (int(v, 16) for v in fields[0].split("-"))
            if lo <= address < hi:
                return fields[5] if len(fields) > 5 else ""
    raise AssertionError(f"{address:#x} is in no mapping")


def test_large_arrays_come_from_the_heap_so_freed_memory_is_reused():
    _require_glibc()
    if __import__("os").environ.get("GRADFORGE_TUNE_MALLOC") == "0":
        pytest.skip("GRADFORGE_TUNE_MALLOC=0: the allocator is left alone")
    # 64 MiB: above the largest mmap threshold glibc accepts, so by default a fresh mapping
    # (zero-filled by the kernel) on every allocation, and unmapped again when freed.
    big = np.empty(16 * 2 ** 20, np.float32)
    assert _mapping_of(big.ctypes.data) == "[heap]"


# -- large batched loops split over threads --------------------------------------------------
@pytest.fixture
def threads_everywhere(monkeypatch):
    """Three threads and no size floor: every batched loop with n > 1 is split."""
    from gradforge.backend import cpu
    before = gf.get_num_threads()
    monkeypatch.setattr(cpu, "PARALLEL_MIN_ELEMENTS", 0)
    gf.set_num_threads(3)
    yield
    gf.set_num_threads(before)


@pytest.mark.parametrize("window", [
    (2, 2, 2, 2, 0, 0, 1, 1, False),           # disjoint windows
    (3, 2, 2, 1, 1, 0, 1, 1, True),            # overlapping, padding, ceil_mode
    (2, 3, 1, 2, 1, 1, 2, 2, False),           # dilation
])
def test_threaded_pooling_and_im2col_equal_the_serial_ones(threads_everywhere, window, monkeypatch):
    from gradforge.backend import cpu
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 3, 9, 8))
    x[2, 1, 3, 3] = np.nan
    threaded = CPUBackend().max_pool2d_forward(x, *window)
    g = rng.standard_normal(threaded[0].shape)
    threaded_back = CPUBackend().max_pool2d_backward(g, threaded[1], x.shape, *window)
    cols = CPUBackend().im2col(x, 3, 2, 2, 1, 1, 0, 1, 2).copy()
    monkeypatch.setattr(cpu, "PARALLEL_MIN_ELEMENTS", 10 ** 12)
    serial = CPUBackend().max_pool2d_forward(x, *window)
    np.testing.assert_array_equal(threaded[0], serial[0])
    np.testing.assert_array_equal(threaded[1], serial[1])
    np.testing.assert_array_equal(threaded_back,
                                  CPUBackend().max_pool2d_backward(g, serial[1], x.shape, *window))
    np.testing.assert_array_equal(cols, CPUBackend().im2col(x, 3, 2, 2, 1, 1, 0, 1, 2))


def test_set_num_threads_takes_positive_integers_only():
    before = gf.get_num_threads()
    assert before >= 1
    try:
        gf.set_num_threads(2)
        assert gf.get_num_threads() == 2
        for bad in (0, -1, 1.5, True, "2"):
            with pytest.raises(RuntimeError, match="positive integer"):
                gf.set_num_threads(bad)
        assert gf.get_num_threads() == 2
    finally:
        gf.set_num_threads(before)


def test_a_job_error_reaches_the_caller(threads_everywhere):
    from gradforge.backend.cpu import over_batch
    seen = []

    def job(sl):
        seen.append(sl)
        if sl.start > 0:
            raise ValueError("bad chunk")
    with pytest.raises(ValueError, match="bad chunk"):
        over_batch(6, 10, job)
    assert sorted(s.start for s in seen) == [0, 2, 4]


# -- normalisation: the array backward and its outputs ---------------------------------------
@pytest.mark.parametrize("affine", [False, True])
def test_normalize_output_is_not_its_saved_statistics(affine):
    """An in-place edit of layer_norm's output (legal: the output is not saved) leaves the
    gradient alone; the array backward equals the create_graph (tensor op) one."""
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((4, 6))
    w = gf.tensor(rng.standard_normal(6), requires_grad=True) if affine else None
    weights = gf.tensor(rng.standard_normal((4, 6)))
    grads = []
    for edit, create_graph in ((False, False), (True, False), (False, True)):
        x = gf.tensor(x0, requires_grad=True)
        y = gf.nn.functional.layer_norm(x, (6,), w)
        if edit:
            y.add_(3.0)
        (g,) = gf.autograd.grad((y * weights).sum(), x, create_graph=create_graph)
        grads.append(g.detach().numpy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=0, atol=0)
    np.testing.assert_allclose(grads[2], grads[0], rtol=1e-12, atol=1e-12)


# -- relu against a row of zeros -------------------------------------------------------------
@pytest.mark.parametrize("shape", [(5000,), (64, 6, 28, 28), (3, 4097), (10,)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cpu_relu_matches_numpy_maximum_bit_for_bit(shape, dtype):
    from gradforge.backend.cpu import BACKEND
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    x.reshape(-1)[:4] = [np.nan, -0.0, np.inf, -np.inf]
    expected = np.maximum(x, 0)
    for out in (None, np.empty_like(x)):
        got = BACKEND.relu(x, out=out)
        assert got is out or out is None
        assert got.dtype == dtype and got.shape == shape
        np.testing.assert_array_equal(got.view(f"u{x.itemsize}"),
                                      expected.view(f"u{x.itemsize}"))  # bits: nan, -0.0
    strided = x.reshape(-1)[::2]  # not contiguous: the plain path
    np.testing.assert_array_equal(BACKEND.relu(strided), np.maximum(strided, 0))


# -- sums by einsum ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape, axis", [((64, 6, 28, 28), (0, 2, 3)), ((32, 64, 1024), (2,)),
                                         ((256, 256), (1,)), ((8, 3, 40, 50), (1, 3)),
                                         ((4096, 10), (0,)), ((3, 5), (1,)),
                                         ((2, 300000), (1,)), ((16, 16, 16), (0, 1, 2))])
@pytest.mark.parametrize("keepdims", [False, True])
def test_cpu_sum_matches_numpy(shape, axis, keepdims):
    from gradforge.backend.cpu import BACKEND
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    got = BACKEND.sum(x, axis, keepdims)
    expected = np.sum(x.astype(np.float64), axis=axis, keepdims=keepdims)
    assert got.dtype == np.float32 and got.shape == expected.shape
    count = x.size // expected.size
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6 * count ** 0.5 * 4)
    ints = np.arange(24).reshape(2, 3, 4)  # integers: NumPy's own loop
    np.testing.assert_array_equal(BACKEND.sum(ints, (0, 2), keepdims),
                                  ints.sum((0, 2), keepdims=keepdims))


# -- the batch moved to the last axis and back, in tiles --------------------------------------
@pytest.mark.parametrize("shape", [(128, 64, 8, 8), (3, 5, 4, 2), (7, 300, 130), (600, 1000)])
def test_move_batch_last_and_first_are_transposes(shape):
    from gradforge.backend.cpu import BACKEND
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    moved = BACKEND.move_batch_last(x)
    assert moved.flags.c_contiguous
    np.testing.assert_array_equal(moved, np.moveaxis(x, 0, -1))
    back = BACKEND.move_batch_first(moved)
    assert back.flags.c_contiguous
    np.testing.assert_array_equal(back, x)
    strided = x[::2]  # not contiguous: the plain copy
    np.testing.assert_array_equal(BACKEND.move_batch_last(strided), np.moveaxis(strided, 0, -1))
    out = np.empty(moved.shape, moved.dtype)
    assert BACKEND.move_batch_last(x, out=out) is out
    np.testing.assert_array_equal(out, moved)


@pytest.mark.cuda
def test_move_batch_on_the_gpu_backend():
    if not gf.cuda.is_available():
        pytest.skip("no CUDA device (real or simulated)")
    backend = gf.device("cuda").backend
    x = np.random.default_rng(0).standard_normal((4, 3, 5)).astype(np.float32)
    moved = backend.move_batch_last(backend.asarray(x))
    np.testing.assert_array_equal(backend.to_host(moved), np.moveaxis(x, 0, -1))
    np.testing.assert_array_equal(backend.to_host(backend.move_batch_first(moved)), x)


# -- per-channel operands spread over a large batch --------------------------------------------
def test_spread_over_batch_only_for_a_large_batch():
    from gradforge.ops._util import spread_over_batch
    stat = np.arange(3, dtype=np.float32).reshape(1, 3, 1, 1)
    spread = spread_over_batch(np, stat, (8, 3, 2, 5))
    assert spread.shape == (1, 3, 2, 5) and spread.flags.c_contiguous
    np.testing.assert_array_equal(spread, np.broadcast_to(stat, (1, 3, 2, 5)))
    assert spread_over_batch(np, stat, (7, 3, 2, 5)) is stat  # small batch: as it is
    per_sample = np.ones((8, 1, 1, 1), np.float32)
    assert spread_over_batch(np, per_sample, (8, 3, 2, 5)) is per_sample


def test_batch_norm_and_conv_bias_on_a_large_batch_match_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((9, 4, 6, 5))
    results = []
    for lib in (gf, torch):
        lib.manual_seed(0)
        conv, bn = lib.nn.Conv2d(4, 3, 3, padding=1).double(), lib.nn.BatchNorm2d(3).double()
        with lib.no_grad():
            conv.weight.copy_(lib.tensor(np.linspace(-1, 1, 108).reshape(3, 4, 3, 3)))
            conv.bias.copy_(lib.tensor([0.5, -1.0, 2.0]))
            bn.weight.copy_(lib.tensor([1.5, 0.5, -1.0]))
            bn.bias.copy_(lib.tensor([0.1, 0.2, 0.3]))
        inp = lib.tensor(x, requires_grad=True)
        out = bn(conv(inp))
        (out * out).sum().backward()
        results.append([out.detach().numpy(), inp.grad.numpy(), conv.bias.grad.numpy(),
                        bn.weight.grad.numpy(), bn.running_mean.numpy()])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)

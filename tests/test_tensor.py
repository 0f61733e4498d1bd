"""Tensor attributes and conversions: shape/size/dim, item/tolist/numpy/__array__, DLPack with
NumPy and torch, to(device, dtype), type_as, clone/contiguous/detach, repr, devices."""
import copy
import importlib
import pickle

import numpy as np
import pytest
from gradcases import case

import gradforge
from gradforge.backend import cuda as cuda_backend

# The module (its name is shadowed by the ``device`` class in gradforge.backend).
device_module = importlib.import_module("gradforge.backend.device")


def test_attributes():
    x = gradforge.zeros(2, 3, 4)
    assert x.shape == (2, 3, 4) and isinstance(x.shape, gradforge.Size)
    assert repr(x.shape) == "gradforge.Size([2, 3, 4])" and x.shape.numel() == 24
    assert x.size() == (2, 3, 4) and x.size(1) == 3 and x.size(-1) == 4
    assert x.dim() == x.ndim == 3 and x.numel() == 24 and len(x) == 2
    assert x.dtype is gradforge.float32 and x.device == gradforge.device("cpu")
    assert not x.is_cuda and x.element_size() == 4 and x.is_floating_point()
    assert x.T.shape == (4, 3, 2) and gradforge.numel(x) == 24
    assert gradforge.is_tensor(x) and not gradforge.is_tensor(x.numpy())
    with pytest.raises(TypeError, match="0-d"):
        len(gradforge.tensor(1.0))


def test_zero_dim_results_hold_arrays():
    # NumPy returns scalars from full reductions and 0-d ufuncs; tensors keep 0-d arrays.
    x = gradforge.tensor([1.0, 2.0])
    for t in (x.sum(), x[0], gradforge.tensor(1.0).exp(), x.max(), x.mean() * 2):
        assert isinstance(t.numpy(), np.ndarray) and t.shape == ()
    y = x.sum()
    y.add_(1.0)
    assert y.item() == 4.0


def test_item_tolist_and_python_conversions():
    x = gradforge.tensor([[1.5, 2.0], [3.0, 4.0]])
    assert x.tolist() == [[1.5, 2.0], [3.0, 4.0]]
    assert x[0, 0].item() == 1.5 and isinstance(x[0, 0].item(), float)
    assert gradforge.tensor([7]).item() == 7 and isinstance(gradforge.tensor(7).item(), int)
    assert float(x[1, 1]) == 4.0 and int(x[1, 0]) == 3 and bool(x[0, 0])
    assert [1, 2, 3][gradforge.tensor(1)] == 2
    assert f"{x[0, 0]:.1f}" == "1.5"
    with pytest.raises(RuntimeError, match="4 elements cannot be converted to Scalar"):
        x.item()
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(x)
    assert [t.tolist() for t in x] == [[1.5, 2.0], [3.0, 4.0]]


def test_numpy_shares_memory_and_refuses_requires_grad():
    x = gradforge.zeros(3)
    a = x.numpy()
    a[0] = 5.0
    assert x[0].item() == 5.0
    w = gradforge.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"requires grad.*detach\(\).numpy\(\)"):
        w.numpy()
    with pytest.raises(RuntimeError, match="requires grad"):
        np.asarray(w)
    assert w.detach().numpy().tolist() == [0.0, 0.0, 0.0]
    assert np.asarray(x, dtype=np.float64).dtype == np.float64
    assert np.shares_memory(np.asarray(x), a)


def test_dlpack_with_numpy_both_ways():
    x = gradforge.arange(6.0).reshape(2, 3)
    a = np.from_dlpack(x)
    assert np.shares_memory(a, x.numpy()) and a.shape == (2, 3)
    b = np.arange(4.0)
    t = gradforge.from_dlpack(b)
    b[0] = 9.0
    assert t.tolist() == [9.0, 1.0, 2.0, 3.0] and t.dtype is gradforge.float64
    assert x.__dlpack_device__() == (1, 0)
    with pytest.raises(RuntimeError, match="require gradient"):
        gradforge.zeros(2, requires_grad=True).__dlpack__()


def test_dlpack_with_torch_both_ways():
    torch = pytest.importorskip("torch")
    x = gradforge.arange(6.0).reshape(2, 3)
    t = torch.from_dlpack(x)
    t[0, 0] = -1.0
    assert x[0, 0].item() == -1.0 and t.dtype == torch.float32
    src = torch.arange(4, dtype=torch.int64)
    g = gradforge.from_dlpack(src)
    src[1] = 42
    assert g.tolist() == [0, 42, 2, 3] and g.dtype is gradforge.int64


def test_to_dtype_and_device():
    x = gradforge.tensor([1.5, -2.5])
    assert x.to(gradforge.float64).dtype is gradforge.float64
    assert x.to("cpu") is x and x.to(gradforge.float32) is x
    assert x.to(device="cpu", dtype=gradforge.int32).tolist() == [1, -2]
    assert x.to(gradforge.zeros(1, dtype=gradforge.float64)).dtype is gradforge.float64
    assert x.to("cpu", gradforge.float16).dtype is gradforge.float16
    assert x.to(gradforge.float32, copy=True) is not x
    assert x.double().dtype is gradforge.float64 and x.half().dtype is gradforge.float16
    assert x.long().tolist() == [1, -2] and x.int().dtype is gradforge.int32
    assert x.bool().tolist() == [True, True] and x.float() is x
    assert x.type_as(gradforge.zeros(1, dtype=gradforge.int64)).dtype is gradforge.int64
    assert x.type() == "gradforge.float32" and x.type(gradforge.float64).dtype.name == "float64"
    assert x.cpu() is x


@pytest.mark.cuda
def test_to_device_round_trip_keeps_values_and_gradients():
    x = gradforge.tensor([1.5, -2.5], requires_grad=True)
    y = x.to("cuda", gradforge.float64)
    assert y.is_cuda and y.device == "cuda:0" and y.dtype is gradforge.float64
    assert y.cuda() is y and repr(y.detach()).endswith("device='cuda:0', dtype=gradforge.float64)")
    z = (y * y).cpu()
    assert z.device == "cpu" and z.tolist() == [2.25, 6.25]
    z.sum().backward()
    assert x.grad.device == "cpu" and x.grad.tolist() == [3.0, -5.0]
    with pytest.raises(TypeError, match="can't convert cuda:0 device type tensor to numpy"):
        y.detach().numpy()


def test_to_dtype_is_differentiable():
    x = gradforge.tensor([1.5, -2.5], requires_grad=True)
    y = x.double() * 2
    y.sum().backward()
    assert x.grad.dtype is gradforge.float32 and x.grad.tolist() == [2.0, 2.0]


def test_clone_contiguous_detach():
    x = gradforge.tensor([1.0, 2.0], requires_grad=True)
    c = x.clone()
    assert c.grad_fn.name() == "CloneBackward0" and not np.shares_memory(c.detach().numpy(),
                                                                          x.detach().numpy())
    d = x.detach()
    assert not d.requires_grad and d.is_leaf and np.shares_memory(d.numpy(),
                                                                  x.detach().numpy())
    d.add_(1.0)
    assert x._version == d._version == 1    # detach shares the version counter too
    y = x * 2
    y.detach_()
    assert not y.requires_grad and y.grad_fn is None
    z = x.data
    assert not z.requires_grad and np.shares_memory(z.numpy(), d.numpy())
    with pytest.raises(RuntimeError, match="detach views in-place"):
        (x * 2)[0:1].detach_()


def test_inplace_through_data_is_hidden_from_autograd():
    # As torch: .data has its own version counter, so a saved tensor changed through it is
    # not caught (the escape hatch for updates backward must not see).
    x = gradforge.tensor([1.0, 2.0], dtype=gradforge.float64, requires_grad=True)
    a = x * 1
    b = a * a
    a.data.add_(1.0)
    assert a._version == 0
    b.sum().backward()
    assert x.grad.tolist() == [4.0, 6.0]


def test_deepcopy_and_pickle():
    x = gradforge.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    y = copy.deepcopy(x)
    assert y.tolist() == [1.0, 2.0] and y.requires_grad and y.grad.tolist() == [3.0, 3.0]
    assert not np.shares_memory(y.detach().numpy(), x.detach().numpy())
    z = pickle.loads(pickle.dumps(x * 2))
    assert z.tolist() == [2.0, 4.0] and z.requires_grad and z.is_leaf
    with pytest.raises(RuntimeError, match="graph leaves"):
        copy.deepcopy(x * 2)


def test_requires_grad_():
    x = gradforge.zeros(2)
    assert x.requires_grad_() is x and x.requires_grad
    with pytest.raises(RuntimeError, match="floating point"):
        gradforge.zeros(2, dtype=gradforge.int64).requires_grad_()
    y = x * 2
    with pytest.raises(RuntimeError, match="leaf variables"):
        y.requires_grad_(False)


def test_new_tensor_helpers():
    x = gradforge.zeros(2, dtype=gradforge.float64)
    assert x.new_zeros(3).dtype is gradforge.float64 and x.new_zeros(3).shape == (3,)
    assert x.new_ones((2, 2)).tolist() == [[1.0, 1.0], [1.0, 1.0]]
    assert x.new_full((2,), 4).tolist() == [4.0, 4.0]
    assert x.new_tensor([1, 2]).dtype is gradforge.float64
    assert x.new_empty(4).shape == (4,)


def test_tensor_constructor_like_torch():
    torch = pytest.importorskip("torch")
    for args in (([1, 2],), ([[1.5], [2.0]],), (2, 3), (), (np.array([1, 2]),)):
        t, g = torch.Tensor(*args), gradforge.Tensor(*args)
        assert isinstance(g, gradforge.Tensor) and g.shape == tuple(t.shape)
        assert g.dtype is gradforge.float32 and t.dtype == torch.float32
        if args and not isinstance(args[0], int):
            assert g.tolist() == t.tolist()


REPRS = {
    "floats": lambda lib: lib.tensor([1.5, -2.25, 3.0]),
    "integral_floats": lambda lib: lib.tensor([1.0, 2.0, 3.0]),
    "matrix": lambda lib: lib.tensor([[1.5, -2.25], [3.0, 4.125]]),
    "ints": lambda lib: lib.tensor([1, -20, 3]),
    "bools": lambda lib: lib.tensor([True, False]),
    "scalar": lambda lib: lib.tensor(3.5),
    "int_scalar": lambda lib: lib.tensor(3),
    "float64": lambda lib: lib.tensor([1.0, 2.0], dtype=lib.float64),
    "int32": lambda lib: lib.tensor([1, 2], dtype=lib.int32),
    "float16": lambda lib: lib.tensor([1.0, 2.5], dtype=lib.float16),
    "requires_grad": lambda lib: lib.tensor([1.0, 2.0], requires_grad=True),
    "grad_fn": lambda lib: lib.tensor([1.0, 2.0], requires_grad=True) * 2,
    "sci_large": lambda lib: lib.tensor([1e10, 1.0]),
    "sci_small": lambda lib: lib.tensor([1e-5, 1.0]),
    "sci_range": lambda lib: lib.tensor([123456.789, 1.0]),
    "empty": lambda lib: lib.tensor([]),
    "empty_2d": lambda lib: lib.zeros(0, 3),
    "empty_int": lambda lib: lib.zeros(0, dtype=lib.int64),
    "nan_inf": lambda lib: lib.tensor([float("nan"), float("inf"), 1.0]),
    "summarized": lambda lib: lib.arange(2000.0),
    "summarized_2d": lambda lib: lib.arange(3000).reshape(10, 10, 30),
    "wrapped_lines": lambda lib: lib.arange(30.0) / 7,
    "three_dims": lambda lib: lib.ones(2, 3, 4),
    "long_suffix": lambda lib: lib.arange(12.0, dtype=lib.float64, requires_grad=True) * 1.5,
}


@pytest.mark.parametrize("make", REPRS.values(), ids=REPRS.keys())
def test_repr_matches_torch(make):
    torch = pytest.importorskip("torch")
    assert repr(make(gradforge)).replace("gradforge.", "torch.") == repr(make(torch))


# -- devices --------------------------------------------------------------------------------
def test_device_parsing():
    d = gradforge.device("cuda:1")
    assert d.type == "cuda" and d.index == 1 and str(d) == "cuda:1"
    assert repr(d) == "device(type='cuda', index=1)"
    assert gradforge.device("cuda", 2) == "cuda:2" and gradforge.device(0) == "cuda:0"
    assert gradforge.device("cpu") == "cpu" and gradforge.device("cpu").index is None
    assert repr(gradforge.device("cpu")) == "device(type='cpu')"
    assert gradforge.device(gradforge.device("cuda")) == "cuda"
    assert len({gradforge.device("cpu"), gradforge.device("cpu")}) == 1
    assert gradforge.device("cpu") != "cuda" and gradforge.device("cpu") != "npu"


@pytest.mark.parametrize("text", ["gpu", "cuda:x", "cuda:", "tpu:0", ""])
def test_unknown_device_string_names_it(text):
    with pytest.raises(ValueError, match=repr(text)):
        gradforge.device(text)
    with pytest.raises(ValueError, match=repr(text)):
        gradforge.zeros(2, device=text)


def test_bad_device_index():
    with pytest.raises(ValueError, match="must not be negative"):
        gradforge.device("cuda", -1)
    with pytest.raises(ValueError, match="already has an index"):
        gradforge.device("cuda:0", 1)


def test_cuda_request_without_cupy_says_why(monkeypatch):
    try:
        import cupy  # noqa: F401
        pytest.skip("cupy is installed here")
    except ImportError:
        pass
    # The test suite may simulate CUDA; ask the backend afresh with the simulator off.
    monkeypatch.setenv("GRADFORGE_SIMULATE_CUDA", "0")
    monkeypatch.setattr(cuda_backend, "_status", None)
    monkeypatch.setattr(cuda_backend, "_cupy", None)
    monkeypatch.setattr(device_module, "_CANONICAL", {})   # forget resolved backends
    assert not gradforge.cuda.is_available() and gradforge.cuda.device_count() == 0
    for request in (lambda: gradforge.zeros(2, device="cuda"),
                    lambda: gradforge.ones(2).cuda(),
                    lambda: gradforge.ones(2).to("cuda:0"),
                    lambda: gradforge.tensor([1.0], device="cuda")):
        with pytest.raises(RuntimeError, match=r"CUDA is not available: CuPy is not installed.*"
                                               r"pip install \"gradforge\[cuda1[23]\]\""):
            request()
    monkeypatch.setattr(cuda_backend, "_status", None)


GRAD_CASES = {
    # float32 in the middle: a larger step keeps the finite differences above its rounding.
    "Cast": [case(lambda lib, a: a.float().double() * a, [(2, 3)], eps=1e-3, atol=1e-3)],
    "Clone": [(lambda lib, a: a.clone() * a.t().contiguous().t(), [(2, 3)])],
    "ToDevice": [case(lambda lib, a: (a.to("cuda") * 2).exp().cpu(), [(2, 3)], needs_cuda=True)],
}

"""Creation functions against torch: from data, filled, ranges, eye, ``_like`` variants and
random draws, with dtype, device and requires_grad."""
import numpy as np
import pytest

import gradforge


def same(g, t):
    """gradforge tensor ``g`` equals torch tensor ``t`` in shape, dtype and values."""
    assert tuple(g.shape) == tuple(t.shape)
    assert g.dtype.name == str(t.dtype).removeprefix("torch.")
    np.testing.assert_allclose(g.numpy(), t.numpy(), rtol=1e-6)


FROM_DATA = {
    "float_list": lambda lib: lib.tensor([1.0, 2.5]),
    "int_list": lambda lib: lib.tensor([[1, 2], [3, 4]]),
    "bool_list": lambda lib: lib.tensor([True, False]),
    "mixed_int_float": lambda lib: lib.tensor([1, 2.5]),
    "mixed_bool_int": lambda lib: lib.tensor([True, 2]),
    "scalar": lambda lib: lib.tensor(3.5),
    "int_scalar": lambda lib: lib.tensor(7),
    "empty": lambda lib: lib.tensor([]),
    "dtype": lambda lib: lib.tensor([1, 2], dtype=lib.float64),
    "float_to_int": lambda lib: lib.tensor([1.7, -2.7], dtype=lib.int32),
    "numpy_float64": lambda lib: lib.tensor(np.array([1.0, 2.0])),
    "numpy_int32": lambda lib: lib.tensor(np.array([1, 2], dtype=np.int32)),
    "numpy_scalar": lambda lib: lib.tensor(np.float32(2.5)),
    # A NumPy scalar keeps its dtype (np.float64 is also a Python float).
    "numpy_float64_scalar": lambda lib: lib.tensor(np.float64(2.5)),
    "numpy_int32_scalar": lambda lib: lib.tensor(np.int32(3)),
    "list_of_numpy_float64": lambda lib: lib.tensor([np.float64(1.5), 2.0]),
    "python_float_type_is_double": lambda lib: lib.tensor([1, 2], dtype=float),
    "zeros_python_float_type": lambda lib: lib.zeros(2, dtype=float),
    "tuple": lambda lib: lib.tensor((1.0, 2.0)),
    "list_of_zero_dim_tensors": lambda lib: lib.tensor([lib.tensor(1.0), lib.tensor(2.0)]),
    "as_tensor_list": lambda lib: lib.as_tensor([1, 2, 3], dtype=lib.float32),
    "zeros": lambda lib: lib.zeros(2, 3),
    "zeros_tuple": lambda lib: lib.zeros((2, 3), dtype=lib.int32),
    "zeros_list": lambda lib: lib.zeros([4]),
    "zeros_scalar": lambda lib: lib.zeros(()),
    "ones": lambda lib: lib.ones(3, dtype=lib.float64),
    "ones_bool": lambda lib: lib.ones(2, dtype=lib.bool),
    "full_float": lambda lib: lib.full((2, 2), 1.5),
    "full_int": lambda lib: lib.full((2,), 3),
    "full_bool": lambda lib: lib.full((2,), True),
    "full_dtype": lambda lib: lib.full([3], 2, dtype=lib.float16),
    "full_numpy_fill": lambda lib: lib.full((2,), np.float64(1.5)),
    "zeros_like": lambda lib: lib.zeros_like(lib.ones(2, 3, dtype=lib.int32)),
    "ones_like_dtype": lambda lib: lib.ones_like(lib.ones(2), dtype=lib.float64),
    "full_like": lambda lib: lib.full_like(lib.ones(2, 2), 7.0),
    "empty_shape": lambda lib: lib.empty(2, 3).zero_(),
    "zeros_size_keyword": lambda lib: lib.zeros(size=(2, 3), dtype=lib.int32),
    "ones_size_keyword": lambda lib: lib.ones(size=[4]),
    "empty_size_keyword": lambda lib: lib.empty(size=(1, 2)).fill_(3),
    "new_zeros_size_keyword": lambda lib: lib.ones(2, dtype=lib.float64).new_zeros(size=(3,)),
    "new_ones_positional": lambda lib: lib.ones(2, dtype=lib.int64).new_ones(2, 2),
    "new_empty_tuple": lambda lib: lib.ones(1).new_empty((2,)).fill_(5),
    "empty_like": lambda lib: lib.empty_like(lib.ones(3, dtype=lib.int64)).fill_(1),
    "arange_int": lambda lib: lib.arange(5),
    "arange_start_end": lambda lib: lib.arange(2, 7),
    "arange_step": lambda lib: lib.arange(1, 10, 3),
    "arange_negative_step": lambda lib: lib.arange(5, -3, -2),
    "arange_float": lambda lib: lib.arange(0, 1, 0.1),
    "arange_float_end": lambda lib: lib.arange(2.5),
    "arange_dtype": lambda lib: lib.arange(4, dtype=lib.float64),
    "arange_empty": lambda lib: lib.arange(3, 3),
    "arange_end_keyword": lambda lib: lib.arange(end=4),
    "arange_zero_dim_tensor_bounds": lambda lib: lib.arange(lib.tensor(1), lib.tensor(5)),
    "linspace": lambda lib: lib.linspace(0, 1, 5),
    "linspace_one": lambda lib: lib.linspace(-1, 1, 1),
    "linspace_dtype": lambda lib: lib.linspace(0, 10, 4, dtype=lib.float64),
    "eye": lambda lib: lib.eye(3),
    "eye_rect": lambda lib: lib.eye(2, 4, dtype=lib.int64),
}


@pytest.mark.parametrize("make", FROM_DATA.values(), ids=FROM_DATA.keys())
def test_creation_matches_torch(make):
    torch = pytest.importorskip("torch")
    same(make(gradforge), make(torch))


def test_size_given_twice_is_refused_as_torch_does():
    for make in (gradforge.zeros, gradforge.ones, gradforge.empty, gradforge.rand,
                 gradforge.randn):
        with pytest.raises(TypeError, match="multiple values for argument 'size'"):
            make(2, size=(3,))
    for make in (gradforge.rand, gradforge.randn):
        assert make(size=(2, 5)).shape == (2, 5)


def test_requires_grad_and_device_arguments():
    for t in (gradforge.tensor([1.0], requires_grad=True),
              gradforge.zeros(2, requires_grad=True, device="cpu"),
              gradforge.ones(2, requires_grad=True, device=gradforge.device("cpu")),
              gradforge.full((2,), 1.0, requires_grad=True),
              gradforge.arange(3.0, requires_grad=True),
              gradforge.linspace(0, 1, 3, requires_grad=True),
              gradforge.eye(2, requires_grad=True),
              gradforge.rand(2, requires_grad=True),
              gradforge.randn(2, requires_grad=True),
              gradforge.zeros_like(gradforge.ones(2), requires_grad=True),
              gradforge.randn_like(gradforge.ones(2), requires_grad=True)):
        assert t.requires_grad and t.is_leaf and t.device == "cpu"
    with pytest.raises(RuntimeError, match="floating point dtype can require gradients"):
        gradforge.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="floating point dtype can require gradients"):
        gradforge.zeros(2, dtype=gradforge.int64, requires_grad=True)


def test_tensor_copies_but_as_tensor_and_from_numpy_share_memory():
    a = np.arange(3.0)
    t = gradforge.tensor(a)
    shared = gradforge.from_numpy(a)
    also_shared = gradforge.as_tensor(a)
    a[0] = 9.0
    assert t.tolist() == [0.0, 1.0, 2.0]
    assert shared.tolist() == also_shared.tolist() == [9.0, 1.0, 2.0]
    assert shared.dtype is gradforge.float64
    x = gradforge.ones(2)
    assert gradforge.as_tensor(x) is x
    assert gradforge.as_tensor(x, dtype=gradforge.float64).dtype is gradforge.float64
    with pytest.raises(TypeError, match="expected np.ndarray"):
        gradforge.from_numpy([1, 2])


def test_tensor_from_a_tensor_is_a_detached_copy():
    x = gradforge.tensor([1.0, 2.0], requires_grad=True)
    y = gradforge.tensor(x)
    assert not y.requires_grad and y.tolist() == [1.0, 2.0]
    y[0] = 5.0
    assert x.tolist() == [1.0, 2.0]


def test_ragged_data_raises():
    with pytest.raises(ValueError, match="ragged"):
        gradforge.tensor([[1, 2], [3]])


def test_arange_errors():
    with pytest.raises(RuntimeError, match="step must be nonzero"):
        gradforge.arange(0, 3, 0)
    with pytest.raises(RuntimeError, match="inconsistent with step sign"):
        gradforge.arange(0, 3, -1)


RANDOM = {
    "rand": lambda g: gradforge.rand(3, 4, generator=g),
    "rand_tuple": lambda g: gradforge.rand((2, 5), generator=g, dtype=gradforge.float64),
    "randn": lambda g: gradforge.randn(1000, generator=g),
    "randint": lambda g: gradforge.randint(2, 9, (50,), generator=g),
    "randint_high_only": lambda g: gradforge.randint(4, size=(3, 3), generator=g),
    "randint_high_size_positional": lambda g: gradforge.randint(4, (3, 3), generator=g),
    "randperm": lambda g: gradforge.randperm(10, generator=g),
    "rand_like": lambda g: gradforge.rand_like(gradforge.zeros(2, 3, dtype=gradforge.float64)),
    "randn_like": lambda g: gradforge.randn_like(gradforge.zeros(4)),
    "randint_like": lambda g: gradforge.randint_like(gradforge.zeros(5, dtype=gradforge.int32),
                                                     0, 3),
    "rand_float16": lambda g: gradforge.rand(8, dtype=gradforge.float16, generator=g),
}


RANDOM_DTYPES = {"randint": "int64", "randint_high_only": "int64", "randperm": "int64",
                 "randint_high_size_positional": "int64",
                 "rand_tuple": "float64", "rand_like": "float64", "randint_like": "int32",
                 "rand_float16": "float16"}
UNIT_INTERVAL = ("rand", "rand_tuple", "rand_like", "rand_float16")


@pytest.mark.parametrize("name", RANDOM)
def test_random_draws_have_the_right_shape_dtype_and_range(name):
    t = RANDOM[name](gradforge.Generator().manual_seed(5))
    values = t.numpy()
    assert t.dtype.name == RANDOM_DTYPES.get(name, "float32")
    if name in UNIT_INTERVAL:
        assert values.min() >= 0 and values.max() < 1
    if name == "randn":
        assert abs(values.mean()) < 0.15 and abs(values.std() - 1) < 0.1
    if name == "randint":
        assert values.min() >= 2 and values.max() < 9 and len(set(values.tolist())) == 7
    if name == "randperm":
        assert sorted(values.tolist()) == list(range(10))


def test_random_errors():
    with pytest.raises(RuntimeError, match="from=5 >= to=5"):
        gradforge.randint(5, 5, (2,))
    with pytest.raises(RuntimeError, match="not implemented for 'int64'"):
        gradforge.rand(2, dtype=gradforge.int64)


def test_bernoulli_and_multinomial():
    gradforge.manual_seed(1)
    p = gradforge.tensor([0.0, 1.0, 0.5]).expand(200, 3)
    draws = gradforge.bernoulli(p)
    assert draws[:, 0].sum().item() == 0 and draws[:, 1].sum().item() == 200
    assert 60 < draws[:, 2].sum().item() < 140
    idx = gradforge.multinomial(gradforge.tensor([0.0, 1.0, 3.0]), 400, replacement=True)
    counts = np.bincount(idx.numpy(), minlength=3)
    assert counts[0] == 0 and 60 < counts[1] < 140
    picks = gradforge.multinomial(gradforge.tensor([1.0, 1.0, 0.0, 1.0]), 3)
    assert sorted(picks.tolist()) == [0, 1, 3]

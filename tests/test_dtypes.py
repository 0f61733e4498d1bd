"""dtypes and PyTorch's type promotion: every pair of operand kinds against torch."""
import itertools

import numpy as np
import pytest

import gradforge

DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"]
SCALARS = [True, 3, 2.5]


def operands(lib):
    """One tensor with dimensions and one zero-dim tensor of every dtype, and Python scalars."""
    out = []
    for name in DTYPES:
        dt = getattr(lib, name)
        out.append((f"{name}[2]", lib.ones(2, dtype=dt)))
        out.append((f"{name}[]", lib.ones((), dtype=dt)))
    return out + [(repr(s), s) for s in SCALARS]


def test_promotion_of_every_operand_pair_matches_torch():
    torch = pytest.importorskip("torch")
    pairs = list(itertools.product(operands(torch), repeat=2))
    ours = list(itertools.product(operands(gradforge), repeat=2))
    checked = 0
    for ((name_a, ta), (name_b, tb)), ((_, ga), (_, gb)) in zip(pairs, ours):
        if not isinstance(ta, torch.Tensor) and not isinstance(tb, torch.Tensor):
            continue
        expected = str((ta * tb).dtype).removeprefix("torch.")
        assert (ga * gb).dtype.name == expected, (name_a, name_b)
        checked += 1
    assert checked == 18 * 18 + 2 * 18 * len(SCALARS)


@pytest.mark.parametrize("name", DTYPES)
def test_true_division_and_unary_math_promote_like_torch(name):
    torch = pytest.importorskip("torch")
    t = torch.ones(2, dtype=getattr(torch, name))
    g = gradforge.ones(2, dtype=getattr(gradforge, name))
    assert (g / g).dtype.name == str((t / t).dtype).removeprefix("torch.")
    assert g.exp().dtype.name == str(t.exp().dtype).removeprefix("torch.")
    assert g.sum().dtype.name == str(t.sum().dtype).removeprefix("torch.")


def test_rules_named_in_the_issue():
    ints = gradforge.tensor([1, 2])
    f32 = gradforge.tensor([1.0, 2.0])
    f64 = gradforge.tensor([1.0, 2.0], dtype=gradforge.float64)
    assert (ints * 1.5).dtype is gradforge.float32          # int tensor op Python float
    assert (f32 * 2.0).dtype is gradforge.float32           # float32 op Python scalar
    assert (f32 + np.float64(2.0)).dtype is gradforge.float32  # NumPy scalars are scalars
    assert (f32 + f64).dtype is gradforge.float64           # float32 op float64 tensor
    assert (f32 + f64.sum()).dtype is gradforge.float32     # zero-dim of the same category
    assert (ints + f64.sum()).dtype is gradforge.float64    # zero-dim of a higher category


def test_default_dtype_governs_python_floats():
    try:
        gradforge.set_default_dtype(gradforge.float64)
        assert gradforge.get_default_dtype() is gradforge.float64
        assert gradforge.tensor([1.5]).dtype is gradforge.float64
        assert (gradforge.tensor([1]) * 0.5).dtype is gradforge.float64
        assert gradforge.zeros(2).dtype is gradforge.float64
    finally:
        gradforge.set_default_dtype(gradforge.float32)
    with pytest.raises(TypeError, match="floating-point"):
        gradforge.set_default_dtype(gradforge.int64)


def test_dtype_objects():
    assert gradforge.float is gradforge.float32 and gradforge.double is gradforge.float64
    assert gradforge.long is gradforge.int64 and gradforge.half is gradforge.float16
    assert repr(gradforge.float32) == "gradforge.float32"
    assert gradforge.float32.is_floating_point and not gradforge.int32.is_floating_point
    assert gradforge.float16.itemsize == 2
    x = gradforge.zeros(2)
    assert x.to("float64").dtype is gradforge.float64
    assert x.to(np.int32).dtype is gradforge.int32
    with pytest.raises(TypeError, match="unknown dtype 'float8'"):
        x.to("float8")
    with pytest.raises(TypeError, match="complex128"):
        gradforge.from_numpy(np.zeros(2, np.complex128))


# -- float16 statistics accumulate in float32, as torch's do ----------------------------------
def test_float16_mean_whose_sum_overflows_float16():
    torch = pytest.importorskip("torch")
    x = np.full((2, 20000), 5, np.float16)  # the sum, 100000, is past float16's 65504
    for dim in (None, 1):
        ours = gradforge.tensor(x).mean(dim)
        theirs = torch.tensor(x).mean(dim)
        assert ours.dtype == gradforge.float16
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@pytest.mark.parametrize("norm", ["batch", "layer", "group"])
def test_float16_normalisation_matches_torch(norm):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((64, 8, 16, 16)) * 3 + 5).astype(np.float16)  # sums overflow
    g = rng.standard_normal(x.shape).astype(np.float16)
    results = []
    for lib in (gradforge, torch):
        F = lib.nn.functional
        inp = lib.tensor(x, requires_grad=True)
        w = lib.tensor(np.linspace(0.5, 1.5, 8).astype(np.float16), requires_grad=True)
        b = lib.tensor(np.linspace(-1, 1, 8).astype(np.float16), requires_grad=True)
        out = {"batch": lambda: F.batch_norm(inp, None, None, w, b, training=True),
               "layer": lambda: F.layer_norm(inp, (16, 16)),
               "group": lambda: F.group_norm(inp, 2, w, b)}[norm]()
        out.backward(lib.tensor(g))
        grads = [inp.grad] + ([w.grad, b.grad] if norm != "layer" else [])
        results.append([out.detach()] + grads)
    for ours, theirs in zip(*results):
        assert ours.dtype == gradforge.float16
        a, e = ours.numpy().astype(np.float32), theirs.numpy().astype(np.float32)
        np.testing.assert_allclose(a, e, rtol=5e-3, atol=4e-3 * max(1.0, np.abs(e).max()))

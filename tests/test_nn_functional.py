"""nn.functional against PyTorch: activations, normalisation, linear/bilinear, embedding,
one_hot, normalize, cosine_similarity and dropout; finite differences (first and second
order) for every new activation and normalisation Function (GRAD_CASES); bad input."""
import numpy as np
import pytest
from oracle import DEVICES, compare, integers, normal, uniform

import gradforge

F = gradforge.nn.functional


def cases(table):
    return [pytest.param(fn, specs, id=name) for name, (fn, specs) in table.items()]


def fn_of(name, *args, **kwargs):
    """``lib.nn.functional.<name>(x, *args, **kwargs)`` for either library."""
    return lambda lib, x: getattr(lib.nn.functional, name)(x, *args, **kwargs)


# Values far from the kinks, plus large magnitudes where a naive formula overflows.
WIDE = np.array([[-1000.0, -30.0, -3.5, -0.7], [0.3, 2.2, 25.0, 1000.0]])

ACTIVATIONS = {
    "relu": (fn_of("relu"), [(3, 4)]),
    "leaky_relu": (fn_of("leaky_relu", 0.2), [(3, 4)]),
    "leaky_relu_default": (fn_of("leaky_relu"), [(3, 4)]),
    "elu": (fn_of("elu"), [(3, 4)]),
    "elu_alpha": (fn_of("elu", alpha=0.4), [(3, 4)]),
    "selu": (fn_of("selu"), [(3, 4)]),
    "celu": (fn_of("celu", alpha=0.7), [(3, 4)]),
    "gelu": (fn_of("gelu"), [(3, 4)]),
    "gelu_tanh": (fn_of("gelu", approximate="tanh"), [(3, 4)]),
    "silu": (fn_of("silu"), [(3, 4)]),
    "mish": (fn_of("mish"), [(3, 4)]),
    "softplus": (fn_of("softplus"), [(3, 4)]),
    "softplus_beta_threshold": (fn_of("softplus", beta=2.0, threshold=1.5), [(3, 4)]),
    "hardtanh": (fn_of("hardtanh", -0.5, 0.8), [(3, 4)]),
    "hardtanh_at_bounds": (fn_of("hardtanh"), [np.array([-1.0, 1.0, -0.3, 2.0, -1.5])]),
    "relu6": (lambda lib, x: lib.nn.functional.relu6(x * 4), [(3, 4)]),
    "hardsigmoid": (lambda lib, x: lib.nn.functional.hardsigmoid(x * 4), [(3, 4)]),
    "hardswish": (lambda lib, x: lib.nn.functional.hardswish(x * 4), [(3, 4)]),
    "logsigmoid": (fn_of("logsigmoid"), [(3, 4)]),
    "softsign": (fn_of("softsign"), [(3, 4)]),
    "tanhshrink": (fn_of("tanhshrink"), [(3, 4)]),
    "sigmoid": (fn_of("sigmoid"), [(3, 4)]),
    "tanh": (fn_of("tanh"), [(3, 4)]),
    "glu": (fn_of("glu", 1), [(3, 4)]),
    "softmax": (fn_of("softmax", dim=1), [(3, 4)]),
    "softmin": (fn_of("softmin", dim=0), [(3, 4)]),
    "log_softmax": (fn_of("log_softmax", dim=-1), [(2, 3, 4)]),
    "softplus_wide": (fn_of("softplus"), [WIDE]),
    "logsigmoid_wide": (fn_of("logsigmoid"), [WIDE]),
    "silu_wide": (fn_of("silu"), [WIDE]),
    "elu_wide": (fn_of("elu"), [WIDE]),
    "gelu_wide": (fn_of("gelu"), [WIDE]),
    "gelu_tanh_wide": (fn_of("gelu", approximate="tanh"), [WIDE]),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fn,specs", cases(ACTIVATIONS))
def test_activation_matches_torch(fn, specs, device):
    compare(fn, specs, device=device)


@pytest.mark.parametrize("name,args", [("relu", ()), ("leaky_relu", (0.1,)), ("elu", ()),
                                       ("gelu", ()), ("silu", ()), ("softplus", ()),
                                       ("hardtanh", ())])
def test_activation_float32_keeps_dtype(name, args):
    compare(fn_of(name, *args), [normal(4, 5, dtype=np.float32)], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name,args", [("relu", ()), ("leaky_relu", (0.1,)), ("elu", (0.5,)),
                                       ("silu", ()), ("hardtanh", (-0.5, 0.5)), ("selu", ()),
                                       ("relu6", ()), ("mish", ()), ("hardswish", ())])
def test_inplace_activation_overwrites_its_input(name, args):
    # On a non-leaf (x * 1), as torch requires; gradients flow through the overwritten tensor.
    compare(lambda lib, x: getattr(lib.nn.functional, name)(x * 1, *args, inplace=True),
            [(3, 4)])
    x = gradforge.randn(3, 4)
    expected = getattr(F, name)(x, *args)
    out = getattr(F, name)(x, *args, inplace=True)
    assert out is x
    np.testing.assert_allclose(x.numpy(), expected.numpy())


def test_inplace_activation_on_leaf_requiring_grad_raises():
    x = gradforge.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        F.elu(x, inplace=True)


# -- normalisation -------------------------------------------------------------------------------
NORMS = {
    "layer_norm": (lambda lib, x, w, b: lib.nn.functional.layer_norm(x, (4,), w, b),
                   [(3, 2, 4), (4,), (4,)]),
    "layer_norm_2d_shape": (lambda lib, x, w, b: lib.nn.functional.layer_norm(x, [2, 4], w, b),
                            [(3, 2, 4), (2, 4), (2, 4)]),
    "layer_norm_no_affine": (lambda lib, x: lib.nn.functional.layer_norm(x, (5,), eps=1e-3),
                             [(4, 5)]),
    "group_norm": (lambda lib, x, w, b: lib.nn.functional.group_norm(x, 2, w, b),
                   [(3, 4, 5), (4,), (4,)]),
    "group_norm_4d": (lambda lib, x, w, b: lib.nn.functional.group_norm(x, 3, w, b),
                      [(2, 6, 3, 2), (6,), (6,)]),
    "group_norm_no_affine": (lambda lib, x: lib.nn.functional.group_norm(x, 1), [(2, 4, 3)]),
    "batch_norm_train_2d": (lambda lib, x, w, b: lib.nn.functional.batch_norm(
        x, None, None, w, b, training=True), [(5, 3), (3,), (3,)]),
    "batch_norm_train_4d": (lambda lib, x, w, b: lib.nn.functional.batch_norm(
        x, None, None, w, b, training=True, eps=1e-3), [(3, 2, 4, 5), (2,), (2,)]),
    "batch_norm_train_no_affine": (lambda lib, x: lib.nn.functional.batch_norm(
        x, None, None, training=True), [(4, 3, 2)]),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fn,specs", cases(NORMS))
def test_norm_matches_torch(fn, specs, device):
    compare(fn, specs, device=device)


def test_norm_float32():
    compare(lambda lib, x, w, b: lib.nn.functional.layer_norm(x, (6,), w, b),
            [normal(4, 6, dtype=np.float32), normal(6, dtype=np.float32),
             normal(6, dtype=np.float32)], atol=1e-5, rtol=1e-4)
    compare(lambda lib, x: lib.nn.functional.batch_norm(x, None, None, training=True),
            [normal(8, 3, 2, 2, dtype=np.float32)], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_batch_norm_eval_uses_running_stats(device):
    compare(lambda lib, x, w, b, rm, rv: lib.nn.functional.batch_norm(x, rm, rv, w, b),
            [(4, 3, 2), (3,), (3,), (3,), uniform(3)], grad_inputs=[0, 1, 2], device=device)


@pytest.mark.parametrize("fn, specs", [
    (lambda lib, x, w, b: lib.nn.functional.layer_norm(x, (4,), w, b), [(0, 4), (4,), (4,)]),
    (lambda lib, x, w, b: lib.nn.functional.group_norm(x, 2, w, b), [(0, 4, 3), (4,), (4,)]),
    (lambda lib, x, w, b: lib.nn.functional.batch_norm(x, None, None, w, b, training=True),
     [(0, 3, 2), (3,), (3,)]),
], ids=["layer_norm", "group_norm", "batch_norm"])
def test_norm_of_an_empty_batch(fn, specs):
    """An empty output, and zero gradients for weight and bias (torch)."""
    compare(fn, specs)


def test_batch_norm_of_an_empty_batch_leaves_running_stats_alone():
    mean, var = gradforge.zeros(3), gradforge.ones(3)
    F.batch_norm(gradforge.zeros(0, 3), mean, var, training=True)
    assert mean.tolist() == [0.0] * 3 and var.tolist() == [1.0] * 3


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (2, 3, 2, 2)])
def test_batch_norm_updates_running_stats_like_torch(shape):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal(shape)
    t_stats = [torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)]
    g_stats = [gradforge.zeros(3, dtype=gradforge.float64), gradforge.ones(3,
                                                                          dtype=gradforge.float64)]
    for momentum in (0.1, 0.5):
        torch.nn.functional.batch_norm(torch.tensor(x), *t_stats, training=True,
                                       momentum=momentum)
        F.batch_norm(gradforge.tensor(x), *g_stats, training=True, momentum=momentum)
    for t, g in zip(t_stats, g_stats):
        np.testing.assert_allclose(g.numpy(), t.numpy(), rtol=1e-12)


# -- linear, embedding, one_hot, normalize, cosine similarity -----------------------------------
FUNCTIONAL = {
    "linear": (lambda lib, x, w, b: lib.nn.functional.linear(x, w, b), [(4, 3), (5, 3), (5,)]),
    "linear_no_bias": (lambda lib, x, w: lib.nn.functional.linear(x, w), [(4, 3), (5, 3)]),
    "linear_3d_input": (lambda lib, x, w, b: lib.nn.functional.linear(x, w, b),
                        [(2, 4, 3), (5, 3), (5,)]),
    "linear_1d_input": (lambda lib, x, w, b: lib.nn.functional.linear(x, w, b),
                        [(3,), (5, 3), (5,)]),
    "linear_float32": (lambda lib, x, w, b: lib.nn.functional.linear(x, w, b),
                       [normal(4, 3, dtype=np.float32), normal(5, 3, dtype=np.float32),
                        normal(5, dtype=np.float32)]),
    "linear_one_element_bias": (lambda lib, x, w, b: lib.nn.functional.linear(x, w, b),
                                [(2, 4, 3), (5, 3), np.array(0.5)]),
    "bilinear": (lambda lib, x1, x2, w, b: lib.nn.functional.bilinear(x1, x2, w, b),
                 [(4, 2), (4, 3), (5, 2, 3), (5,)]),
    "bilinear_unbatched": (lambda lib, x1, x2, w: lib.nn.functional.bilinear(x1, x2, w),
                           [(2,), (3,), (5, 2, 3)]),
    "embedding": (lambda lib, i, w: lib.nn.functional.embedding(i, w),
                  [integers(2, 3, high=6), (6, 4)]),
    "embedding_padding_idx": (lambda lib, i, w: lib.nn.functional.embedding(i, w, padding_idx=2),
                              [np.array([[2, 0, 2], [1, 2, 5]]), (6, 4)]),
    "embedding_negative_padding_idx": (
        lambda lib, i, w: lib.nn.functional.embedding(i, w, padding_idx=-1),
        [np.array([5, 0, 5, 3]), (6, 2)]),
    "embedding_repeated_rows": (lambda lib, i, w: lib.nn.functional.embedding(i, w) * 2,
                                [np.array([1, 1, 1, 0]), (3, 2)]),
    "normalize": (lambda lib, x: lib.nn.functional.normalize(x), [(3, 4)]),
    "normalize_p1_dim0": (lambda lib, x: lib.nn.functional.normalize(x, p=1, dim=0), [(3, 4)]),
    "cosine_similarity": (lambda lib, a, b: lib.nn.functional.cosine_similarity(a, b),
                          [(3, 4), (3, 4)]),
    "cosine_similarity_dim_eps": (
        lambda lib, a, b: lib.nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-6),
        [(2, 3, 4), (2, 3, 4)]),
    "cosine_similarity_broadcast": (
        lambda lib, a, b: lib.nn.functional.cosine_similarity(a, b, dim=1), [(3, 4), (1, 4)]),
    # Norms below eps: torch's gradient still runs through the unclamped norm.
    "cosine_similarity_clamped": (
        lambda lib, a, b: lib.nn.functional.cosine_similarity(a * 0.05, b, eps=0.5),
        [(3, 4), (3, 4)]),
    "cosine_similarity_zero_rows": (
        lambda lib, a, b: lib.nn.functional.cosine_similarity(a, b),
        [np.array([[0.0, 0.0], [1.0, 2.0]]), np.array([[1.0, 3.0], [0.0, 0.0]])]),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fn,specs", cases(FUNCTIONAL))
def test_functional_matches_torch(fn, specs, device):
    compare(fn, specs, device=device)


def test_embedding_max_norm_renormalises_rows_like_torch():
    torch = pytest.importorskip("torch")
    w = np.random.default_rng(0).standard_normal((5, 3)) * 2
    idx = np.array([[0, 3], [3, 4]])
    tw, gw = torch.tensor(w), gradforge.tensor(w)
    t_out = torch.nn.functional.embedding(torch.tensor(idx), tw, max_norm=1.5)
    g_out = F.embedding(gradforge.tensor(idx), gw, max_norm=1.5)
    np.testing.assert_allclose(g_out.numpy(), t_out.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gw.numpy(), tw.numpy(), rtol=1e-12)  # rows 0, 3, 4 rescaled


def test_one_hot_matches_torch():
    compare(lambda lib, i: lib.nn.functional.one_hot(i), [integers(2, 3, high=4)])
    compare(lambda lib, i: lib.nn.functional.one_hot(i, 6), [integers(5, high=4)])
    compare(lambda lib, i: lib.nn.functional.one_hot(i, 3), [np.zeros((0,), np.int64)])


# -- dropout -------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_dropout_zeroes_a_fraction_p_and_rescales(device):
    gradforge.manual_seed(1)
    x = gradforge.ones(200, 50, requires_grad=True, device=device)
    out = F.dropout(x, p=0.3)
    values = out.detach().cpu().numpy()
    assert out.device == x.device
    assert set(np.unique(values)) == {0.0, np.float32(1 / 0.7)}
    assert abs((values == 0).mean() - 0.3) < 0.02
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.cpu().numpy(), values)  # d out/dx is the scaled mask


def test_dropout_is_seeded_and_off_in_eval():
    x = gradforge.randn(10, 10)
    gradforge.manual_seed(3)
    a = F.dropout(x, 0.5)
    gradforge.manual_seed(3)
    b = F.dropout(x, 0.5)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0).numpy(), np.zeros((10, 10)))


def test_dropout2d_zeroes_whole_channels():
    gradforge.manual_seed(0)
    x = gradforge.ones(8, 16, 3, 3, dtype=gradforge.float64)
    out = F.dropout2d(x, p=0.5).numpy()
    per_channel = out.reshape(8, 16, 9)
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2.0).all(-1))
    assert 0.3 < (per_channel[..., 0] == 0).mean() < 0.7


def test_dropout_inplace_and_bad_p():
    x = gradforge.ones(4, 4)
    assert F.dropout(x, 0.5, inplace=True) is x
    with pytest.raises(ValueError, match="between 0 and 1, but got 1.5"):
        F.dropout(x, 1.5)
    with pytest.raises(ValueError, match="-0.1"):
        F.dropout2d(x.reshape(1, 4, 2, 2), -0.1)


# -- bad input -----------------------------------------------------------------------------------
def test_bad_input_errors_name_shapes_and_dtypes():
    x = gradforge.randn(2, 3, 4)
    with pytest.raises(RuntimeError, match=r"normalized_shape=\[5\].*\[2, 3, 4\]"):
        F.layer_norm(x, (5,))
    with pytest.raises(RuntimeError, match=r"divisible by num_groups.*\[2, 3, 4\].*num_groups=2"):
        F.group_norm(x, 2)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(gradforge.randn(1, 3), None, None, training=True)
    with pytest.raises(RuntimeError, match="running_mean must be defined"):
        F.batch_norm(x, None, None, training=False)
    with pytest.raises(RuntimeError, match="running_mean should contain 3 elements not 4"):
        F.batch_norm(x, gradforge.zeros(4), gradforge.ones(4), training=True)
    with pytest.raises(RuntimeError, match="approximate"):
        F.gelu(x, approximate="fast")
    with pytest.raises(RuntimeError, match="dimension 1 is size 3"):
        F.glu(x, 1)
    with pytest.raises(RuntimeError, match=r"cannot be multiplied \(6x4 and 3x5\).*\(2, 3, 4\)"):
        F.linear(x, gradforge.randn(5, 3))
    with pytest.raises(RuntimeError, match=r"bias of shape \(4,\).*out_features=5"):
        F.linear(x, gradforge.randn(5, 4), gradforge.randn(4))


@pytest.mark.parametrize("shapes, match", [
    ([(3, 3), (3, 2), (5, 4, 2), None], "input1 size does not match weight size: got 3 but "
                                         "expected 4"),
    ([(3, 4), (3, 3), (5, 4, 2), None], "input2 size does not match weight size: got 3"),
    ([(3, 4), (2, 2), (5, 4, 2), None], "batch dimensions do not match at dim 0: got 3 and 2"),
    ([(2, 3, 4), (3, 2), (5, 4, 2), None], "input dimensions do not match: got 3 and 2"),
    ([(3, 4), (3, 2), (5, 4, 2), (4,)], r"bias size does not match weight size: got \[4\]"),
    ([(3, 4), (3, 2), (4, 2), None], r"weight must be 3-dimensional.*\[4, 2\]"),
])
def test_bilinear_bad_shapes(shapes, match):
    """torch's checks, not einsum's message about subscripts; torch refuses them too."""
    with pytest.raises(RuntimeError, match=match):
        F.bilinear(*[None if s is None else gradforge.randn(*s) for s in shapes])
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError):
        torch.nn.functional.bilinear(*[None if s is None else torch.randn(*s) for s in shapes])


def test_embedding_bad_indices():
    w = gradforge.randn(4, 2)
    with pytest.raises(RuntimeError, match="Long, Int; but got gradforge.float32"):
        F.embedding(gradforge.tensor([0.0, 1.0]), w)
    with pytest.raises(IndexError, match=r"\[0, 4\).*\(4, 2\)"):
        F.embedding(gradforge.tensor([0, 4]), w)
    with pytest.raises(IndexError, match="index out of range"):
        F.embedding(gradforge.tensor([-1, 2]), w)
    with pytest.raises(ValueError, match="Padding_idx must be within num_embeddings"):
        F.embedding(gradforge.tensor([0]), w, padding_idx=4)


def test_one_hot_bad_input():
    with pytest.raises(RuntimeError, match="LongTensor"):
        F.one_hot(gradforge.tensor([0.0, 1.0]))
    with pytest.raises(RuntimeError, match="non-negative"):
        F.one_hot(gradforge.tensor([0, -1]), 3)
    with pytest.raises(RuntimeError, match="smaller than num_classes: got class 3"):
        F.one_hot(gradforge.tensor([0, 3]), 3)
    with pytest.raises(RuntimeError, match="empty tensor"):
        F.one_hot(gradforge.zeros(0, dtype=gradforge.int64))


# -- finite-difference cases (run by test_autograd_registry.py): ops/activation, norm, linear --
GRAD_CASES = {
    "Linear": [
        (lambda lib, x, w, b: lib.nn.functional.linear(x, w, b), [(4, 3), (2, 3), (2,)]),
        (lambda lib, x, w: lib.nn.functional.linear(x, w), [(2, 2, 3), (4, 3)]),
        (lambda lib, x, w, b: lib.nn.functional.linear(x, w, b), [(3,), (2, 3), (2,)]),
    ],
    "LeakyRelu": [(fn_of("leaky_relu", 0.2), [(3, 4)])],
    "Elu": [(fn_of("elu", alpha=0.7), [(3, 4)]), (fn_of("selu"), [(2, 3)]),
            (fn_of("celu", alpha=0.5), [(2, 3)])],
    "Gelu": [(fn_of("gelu"), [(3, 4)])],
    "GeluTanh": [(fn_of("gelu", approximate="tanh"), [(3, 4)])],
    "Silu": [(fn_of("silu"), [(3, 4)])],
    "Softplus": [(fn_of("softplus"), [(3, 4)]),
                 (fn_of("softplus", beta=2.0, threshold=1.0), [(3, 4)])],
    "Hardtanh": [(fn_of("hardtanh", -0.8, 0.6), [(3, 4)])],
    "Normalize": [
        (lambda lib, x, w, b: lib.nn.functional.layer_norm(x, (4,), w, b), [(3, 4), (4,), (4,)]),
        (lambda lib, x: lib.nn.functional.layer_norm(x, (2, 3)), [(2, 2, 3)]),
        (lambda lib, x, w, b: lib.nn.functional.group_norm(x, 2, w, b),
         [(2, 4, 3), (4,), (4,)]),
        (lambda lib, x, w, b: lib.nn.functional.batch_norm(x, None, None, w, b, True),
         [(3, 2, 2), (2,), (2,)]),
        # A batch of 8 or more: per-channel operands spread over (1, C, H, W) blocks.
        (lambda lib, x, w, b: lib.nn.functional.batch_norm(x, None, None, w, b, True),
         [(9, 2, 2, 2), (2,), (2,)]),
    ],
}


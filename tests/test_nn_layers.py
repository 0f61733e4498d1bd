"""Every layer against PyTorch with torch's weights (loaded through state_dict, float64):
forward, every parameter gradient and every input gradient; running statistics; default
initialisation and nn.init; nn.utils (gradient clipping, parameter vectors)."""
import math

import numpy as np
import pytest
from module_oracle import check_module, load_torch_weights
from oracle import DEVICES, integers

import gradforge
from gradforge import nn


def call1(lib, m, x):
    return m(x)


LAYERS = {
    "Linear": (lambda lib: lib.nn.Linear(3, 4), [(5, 3)]),
    "Linear_3d_no_bias": (lambda lib: lib.nn.Linear(3, 4, bias=False), [(2, 5, 3)]),
    "Identity": (lambda lib: lib.nn.Identity(7, unused=True), [(2, 3)]),
    "Flatten": (lambda lib: lib.nn.Flatten(), [(2, 3, 2, 2)]),
    "Flatten_dims": (lambda lib: lib.nn.Flatten(0, 1), [(2, 3, 4)]),
    "Unflatten": (lambda lib: lib.nn.Unflatten(1, (2, 3)), [(4, 6)]),
    "LayerNorm": (lambda lib: lib.nn.LayerNorm(4), [(3, 2, 4)]),
    "LayerNorm_2d_no_affine": (lambda lib: lib.nn.LayerNorm([2, 4], elementwise_affine=False),
                               [(3, 2, 4)]),
    "LayerNorm_no_bias": (lambda lib: lib.nn.LayerNorm(4, eps=1e-3, bias=False), [(5, 4)]),
    "GroupNorm": (lambda lib: lib.nn.GroupNorm(2, 4), [(3, 4, 5)]),
    "GroupNorm_4d_no_affine": (lambda lib: lib.nn.GroupNorm(3, 6, affine=False),
                               [(2, 6, 2, 3)]),
    "BatchNorm1d_eval": (lambda lib: lib.nn.BatchNorm1d(3), [(4, 3)]),
    "BatchNorm2d_eval": (lambda lib: lib.nn.BatchNorm2d(3, bias=False), [(2, 3, 2, 2)]),
    "Dropout_eval": (lambda lib: lib.nn.Dropout(0.4), [(3, 4)]),
    "Dropout2d_eval": (lambda lib: lib.nn.Dropout2d(0.4), [(2, 3, 2, 2)]),
    "MLP": (lambda lib: lib.nn.Sequential(lib.nn.Linear(4, 8), lib.nn.ReLU(),
                                          lib.nn.Linear(8, 8), lib.nn.Tanh(),
                                          lib.nn.Linear(8, 3), lib.nn.LogSoftmax(dim=1)),
            [(5, 4)]),
}
for _name, _args in [("ReLU", ()), ("LeakyReLU", (0.2,)), ("ELU", (0.5,)), ("CELU", (0.7,)),
                     ("SELU", ()), ("GELU", ()), ("SiLU", ()), ("Mish", ()), ("Sigmoid", ()),
                     ("Tanh", ()), ("Softplus", (2.0, 1.0)), ("Hardtanh", (-0.5, 0.5)),
                     ("ReLU6", ()), ("Hardsigmoid", ()), ("Hardswish", ()), ("LogSigmoid", ()),
                     ("Softsign", ()), ("Tanhshrink", ()), ("Softmax", (1,)),
                     ("Softmin", (0,)), ("LogSoftmax", (1,)), ("GLU", (1,))]:
    LAYERS[_name] = (lambda lib, n=_name, a=_args: getattr(lib.nn, n)(*a), [(3, 4)])
LAYERS["GELU_tanh"] = (lambda lib: lib.nn.GELU(approximate="tanh"), [(3, 4)])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("make,specs", [pytest.param(m, s, id=n) for n, (m, s) in LAYERS.items()])
def test_layer_matches_torch(make, specs, device):
    t_mod, g_mod = check_module(make, call1, specs, device=device)
    assert repr(g_mod) == repr(t_mod)


@pytest.mark.parametrize("device", DEVICES)
def test_bilinear_matches_torch(device):
    check_module(lambda lib: lib.nn.Bilinear(2, 3, 4), lambda lib, m, a, b: m(a, b),
                 [(5, 2), (5, 3)], device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_embedding_matches_torch(device):
    idx = np.array([[0, 2, 5], [2, 2, 1]])
    _, g = check_module(lambda lib: lib.nn.Embedding(6, 3, padding_idx=2), call1, [idx],
                        device=device)
    assert not g.weight.grad.cpu().numpy()[2].any()  # the padding row gets no gradient
    check_module(lambda lib: lib.nn.Embedding(6, 3), call1, [integers(4, high=6)],
                 device=device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("make,shape", [
    (lambda lib: lib.nn.BatchNorm1d(3), (6, 3)),
    (lambda lib: lib.nn.BatchNorm1d(3, momentum=None), (4, 3, 5)),
    (lambda lib: lib.nn.BatchNorm1d(3, affine=False, momentum=0.3), (5, 3)),
    (lambda lib: lib.nn.BatchNorm2d(3), (2, 3, 4, 4)),
    (lambda lib: lib.nn.BatchNorm2d(3, momentum=None, eps=1e-3), (3, 3, 2, 5)),
], ids=["1d", "1d_3d_input_cumulative", "1d_no_affine", "2d", "2d_cumulative"])
def test_batch_norm_training_and_running_stats(make, shape, device):
    """Three training steps (output, gradients, running statistics), then evaluation."""
    torch = pytest.importorskip("torch")
    t_mod, g_mod = check_module(make, call1, [shape], train=True, device=device)

    def same_output(seed):
        x = np.random.default_rng(seed).standard_normal(shape)
        np.testing.assert_allclose(g_mod(gradforge.tensor(x, device=device)).detach().cpu()
                                   .numpy(), t_mod(torch.tensor(x)).detach().numpy(),
                                   rtol=1e-7, atol=1e-9)

    same_output(1)
    same_output(2)
    for name, t_buf in t_mod.named_buffers():
        g_buf = dict(g_mod.named_buffers())[name]
        assert g_buf.device == g_mod.weight.device if g_mod.weight is not None else True
        assert g_buf.dtype.name == str(t_buf.dtype).removeprefix("torch."), name
        np.testing.assert_allclose(g_buf.cpu().numpy(), t_buf.numpy(), rtol=1e-10, err_msg=name)
    assert g_mod.num_batches_tracked.item() == 3
    t_mod.eval()
    g_mod.eval()
    same_output(9)


def test_batch_norm_without_running_stats_uses_batch_stats_in_eval():
    make = lambda lib: lib.nn.BatchNorm2d(2, track_running_stats=False)  # noqa: E731
    t_mod, g_mod = check_module(make, call1, [(3, 2, 2, 2)], train=False)
    assert g_mod.running_mean is None and list(g_mod.state_dict()) == ["weight", "bias"]
    assert list(g_mod.state_dict()) == list(t_mod.state_dict())


def test_batch_norm_bad_input():
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input\)"):
        nn.BatchNorm1d(3)(gradforge.randn(2, 3, 2, 2))
    with pytest.raises(ValueError, match=r"expected 4D input \(got 2D input\)"):
        nn.BatchNorm2d(3)(gradforge.randn(2, 3))
    with pytest.raises(RuntimeError, match="running_mean should contain 4 elements not 3"):
        nn.BatchNorm1d(3)(gradforge.randn(2, 4))
    with pytest.raises(ValueError, match="num_channels must be divisible by num_groups"):
        nn.GroupNorm(3, 4)
    with pytest.raises(ValueError, match="between 0 and 1, but got 2"):
        nn.Dropout(2)


def test_layer_reprs_equal_torchs():
    torch = pytest.importorskip("torch")
    makers = [
        lambda lib: lib.nn.Linear(3, 4, bias=False),
        lambda lib: lib.nn.Bilinear(2, 3, 4),
        lambda lib: lib.nn.Embedding(10, 3, padding_idx=0, max_norm=1.0, norm_type=1.0),
        lambda lib: lib.nn.BatchNorm1d(4, momentum=None, affine=False),
        lambda lib: lib.nn.BatchNorm2d(3, eps=1e-3, track_running_stats=False),
        lambda lib: lib.nn.LayerNorm([2, 3], elementwise_affine=False),
        lambda lib: lib.nn.GroupNorm(2, 4, affine=False),
        lambda lib: lib.nn.Dropout(0.2, inplace=True),
        lambda lib: lib.nn.Dropout2d(),
        lambda lib: lib.nn.Flatten(0, 2),
        lambda lib: lib.nn.Unflatten(1, (2, 5)),
        lambda lib: lib.nn.ReLU(inplace=True),
        lambda lib: lib.nn.LeakyReLU(0.2, inplace=True),
        lambda lib: lib.nn.ELU(alpha=0.5),
        lambda lib: lib.nn.GELU(approximate="tanh"),
        lambda lib: lib.nn.Hardtanh(-2.0, 2.0),
        lambda lib: lib.nn.ReLU6(inplace=True),
        lambda lib: lib.nn.Softplus(beta=2, threshold=10),
        lambda lib: lib.nn.Softmax(),
        lambda lib: lib.nn.Hardswish(inplace=True),
        lambda lib: lib.nn.MultiheadAttention(4, 2, bias=False),  # out_proj's class name
    ]
    for make in makers:
        assert repr(make(gradforge)) == repr(make(torch))


# -- default initialisation and nn.init -------------------------------------------------------
def test_default_initialisation_follows_torchs_rules():
    gradforge.manual_seed(0)
    lin = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound  # U(-bound, bound)
    assert lin.weight.is_leaf and lin.weight.grad_fn is None
    emb = nn.Embedding(500, 40, padding_idx=3)
    e = emb.weight.detach().numpy()
    assert not e[3].any() and abs(e.std() - 1) < 0.03
    bil = nn.Bilinear(16, 3, 5)
    assert np.abs(bil.weight.detach().numpy()).max() <= 0.25
    bn = nn.BatchNorm1d(4)
    assert (bn.weight.numpy(force=True) == 1).all() and not bn.bias.numpy(force=True).any()


def test_manual_seed_makes_initialisation_reproducible():
    def weights(seed):
        gradforge.manual_seed(seed)
        model = nn.Sequential(nn.Linear(5, 3), nn.Embedding(4, 2))
        return [p.detach().numpy().copy() for p in model.parameters()]

    for a, b in zip(weights(7), weights(7)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(weights(7)[0], weights(8)[0])


def test_calculate_gain_and_fans_equal_torchs():
    torch = pytest.importorskip("torch")
    for name, param in [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None),
                        ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2),
                        ("selu", None)]:
        assert nn.init.calculate_gain(name, param) == torch.nn.init.calculate_gain(name, param)
    for shape in [(4, 3), (8, 3, 5, 5), (2, 6, 3)]:
        assert nn.init._calculate_fan_in_and_fan_out(gradforge.empty(shape)) == \
            torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))


@pytest.mark.parametrize("fill,expected_std", [
    (lambda t: nn.init.kaiming_uniform_(t), math.sqrt(2 / 1.0001) / math.sqrt(300)),
    (lambda t: nn.init.kaiming_uniform_(t, a=math.sqrt(5)), 1 / math.sqrt(3 * 300)),
    (lambda t: nn.init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu"),
     math.sqrt(2) / math.sqrt(200)),
    (lambda t: nn.init.xavier_uniform_(t, gain=2.0), 2 * math.sqrt(2 / 500)),
    (lambda t: nn.init.xavier_normal_(t), math.sqrt(2 / 500)),
    (lambda t: nn.init.normal_(t, 1.0, 0.5), 0.5),
    (lambda t: nn.init.uniform_(t, -3, 3), math.sqrt(3)),
    (lambda t: nn.init.trunc_normal_(t, std=0.02), 0.02),  # bounds +-2 (absolute) cut nothing
    (lambda t: nn.init.trunc_normal_(t), 0.8796),  # N(0, 1) cut at +-2 sigma
], ids=["kaiming_uniform", "kaiming_uniform_a", "kaiming_normal_fan_out", "xavier_uniform",
        "xavier_normal", "normal", "uniform", "trunc_normal_wide", "trunc_normal_2sigma"])
def test_init_statistics(fill, expected_std):
    gradforge.manual_seed(0)
    t = nn.Parameter(gradforge.empty(200, 300, dtype=gradforge.float64))
    assert fill(t) is t and t.grad_fn is None
    assert abs(t.detach().numpy().std() - expected_std) < 0.02 * expected_std


def test_init_bounds_and_constants():
    gradforge.manual_seed(0)
    t = gradforge.empty(50, 40)
    nn.init.trunc_normal_(t, mean=1.0, std=2.0, a=0.0, b=1.5)
    assert t.numpy().min() >= 0.0 and t.numpy().max() <= 1.5
    nn.init.kaiming_uniform_(t, nonlinearity="relu")
    assert np.abs(t.numpy()).max() <= math.sqrt(6 / 40)
    assert (nn.init.constant_(t, 0.25).numpy() == 0.25).all()
    assert (nn.init.ones_(t).numpy() == 1).all() and not nn.init.zeros_(t).numpy().any()
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init.xavier_uniform_(gradforge.empty(5))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        nn.init.kaiming_normal_(t, mode="fan_avg")
    with pytest.raises(ValueError, match="Unsupported nonlinearity softsign"):
        nn.init.calculate_gain("softsign")
    with pytest.warns(UserWarning, match="zero-element"):
        nn.init.kaiming_uniform_(gradforge.empty(0, 3))


# -- nn.utils ------------------------------------------------------------------------------------
def _params_with_grads(lib, grads):
    params = []
    for g in grads:
        p = lib.nn.Parameter(lib.zeros(g.shape, dtype=lib.float64))
        p.grad = lib.tensor(g)
        params.append(p)
    return params


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    t_params, g_params = _params_with_grads(torch, grads), _params_with_grads(gradforge, grads)
    t_total = torch.nn.utils.clip_grad_norm_(t_params, max_norm, norm_type)
    g_total = nn.utils.clip_grad_norm_(g_params, max_norm, norm_type)
    np.testing.assert_allclose(g_total.item(), t_total.item(), rtol=1e-12)
    for t, g in zip(t_params, g_params):
        np.testing.assert_allclose(g.grad.numpy(), t.grad.numpy(), rtol=1e-12)


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # inf * 0, as in torch
def test_clip_grad_norm_non_finite_and_edge_cases():
    torch = pytest.importorskip("torch")
    grads = [np.array([1.0, np.inf]), np.array([2.0])]
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_(_params_with_grads(gradforge, grads), 1.0,
                                 error_if_nonfinite=True)
    t_params, g_params = _params_with_grads(torch, grads), _params_with_grads(gradforge, grads)
    t_total = torch.nn.utils.clip_grad_norm_(t_params, 1.0)
    g_total = nn.utils.clip_grad_norm_(g_params, 1.0)
    assert math.isinf(g_total.item()) and math.isinf(t_total.item())
    for t, g in zip(t_params, g_params):
        np.testing.assert_array_equal(g.grad.numpy(), t.grad.numpy())  # nan and 0 as torch
    assert nn.utils.clip_grad_norm_([nn.Parameter(gradforge.ones(2))], 1.0).item() == 0.0
    single = _params_with_grads(gradforge, [np.array([3.0, 4.0])])[0]
    assert nn.utils.clip_grad_norm_(single, 1.0).item() == 5.0  # one tensor, not a list
    np.testing.assert_allclose(single.grad.numpy(), [0.6, 0.8], rtol=1e-6)


def test_clip_grad_value_and_parameter_vectors_match_torch():
    torch = pytest.importorskip("torch")
    grads = [np.array([[-2.0, 0.3], [0.9, 5.0]]), np.array([-0.1, -0.7])]
    t_params, g_params = _params_with_grads(torch, grads), _params_with_grads(gradforge, grads)
    torch.nn.utils.clip_grad_value_(t_params, 0.5)
    nn.utils.clip_grad_value_(g_params, 0.5)
    for t, g in zip(t_params, g_params):
        np.testing.assert_array_equal(g.grad.numpy(), t.grad.numpy())

    t_mod = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1)).double()
    g_mod = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1)).double()
    load_torch_weights(g_mod, t_mod)
    t_vec = torch.nn.utils.parameters_to_vector(t_mod.parameters())
    g_vec = nn.utils.parameters_to_vector(g_mod.parameters())
    np.testing.assert_array_equal(g_vec.detach().numpy(), t_vec.detach().numpy())
    new = gradforge.arange(11, dtype=gradforge.float64)
    nn.utils.vector_to_parameters(new, g_mod.parameters())
    torch.nn.utils.vector_to_parameters(torch.arange(11, dtype=torch.float64), t_mod.parameters())
    for (n, t), (_, g) in zip(t_mod.named_parameters(), g_mod.named_parameters()):
        np.testing.assert_array_equal(g.detach().numpy(), t.detach().numpy(), err_msg=n)
    with pytest.raises(TypeError, match="expected gradforge.Tensor"):
        nn.utils.vector_to_parameters([1.0] * 11, g_mod.parameters())
    with pytest.raises(RuntimeError, match="11 elements.*\\(12,\\)"):
        nn.utils.vector_to_parameters(gradforge.zeros(12), g_mod.parameters())

"""Every op family gives the same result on ``cuda`` as on ``cpu``; devices do not mix silently.

Each case runs one lambda on CPU tensors and on CUDA tensors made from the same float64 data,
then compares the outputs and the gradient of every input (float64 to round-off, float32
within its precision). ``cuda`` is a real GPU when one is present, else the simulated device.
With two devices the families also run on ``cuda:1`` while device 0 is current: ops, creation,
backward and optimizer steps run on their tensors' device (the simulator, as CuPy without peer
access, refuses arrays of a device other than the current one).
"""
import copy

import numpy as np
import pytest
from oracle import make_inputs

import gradforge
from gradforge.ops import conv, pool
from gradforge.ops.attention import scaled_dot_product_attention

F = gradforge.nn.functional
pytestmark = pytest.mark.cuda

two_devices = pytest.mark.skipif("gradforge.cuda.device_count() < 2", reason="one CUDA device")
# "cuda" is the current device (0); "cuda:1" is another one.
CUDA_DEVICES = ["cuda", pytest.param("cuda:1", marks=two_devices)]


def _array_device(t) -> int:
    return t._data.device.id


def _check_placed(t, device) -> None:
    """``t`` is on ``device``, and so is its array (the GPU that made it)."""
    expected = gradforge.backend.as_device(device)
    assert t.device == expected, f"a tensor of a {expected} op is on {t.device}"
    if expected.type == "cuda":
        assert _array_device(t) == expected.index, \
            f"a {expected} tensor holds an array of cuda:{_array_device(t)}"


@pytest.fixture(autouse=True)
def _device_0_current():
    """Every test starts with device 0 current and must leave it so."""
    if not gradforge.cuda.is_available():
        yield
        return
    gradforge.cuda.set_device(0)
    yield
    assert gradforge.cuda.current_device() == 0, "the current device changed"


def _listed(x):
    return list(x) if isinstance(x, (tuple, list)) else [x]


def _run(fn, arrays, device, grad_inputs, seed):
    inputs = [gradforge.tensor(a, device=device,
                               requires_grad=a.dtype.kind == "f" and i in grad_inputs)
              for i, a in enumerate(arrays)]
    outs = _listed(fn(gradforge, *inputs))
    for o in outs:
        _check_placed(o, device)
    diff = [o for o in outs if o.requires_grad]
    if diff:
        rng = np.random.default_rng(seed + 1)
        loss = sum((o * gradforge.tensor(rng.standard_normal(tuple(o.shape)), dtype=o.dtype,
                                         device=device)).sum() for o in diff)
        loss.backward()
    for t in inputs:
        if t.grad is not None:
            _check_placed(t.grad, device)
    host = [o.detach().cpu().numpy() for o in outs]
    grads = [None if t.grad is None else t.grad.cpu().numpy() for t in inputs]
    return host, grads


def same_on_cuda(fn, specs, *, dtype=np.float64, seed=0, grad_inputs=None, rtol=None,
                 device="cuda"):
    """Assert ``fn(lib, *tensors)`` and its input gradients agree on cpu and ``device``."""
    arrays = make_inputs(specs, seed, dtype)
    grad_inputs = range(len(arrays)) if grad_inputs is None else grad_inputs
    rtol = rtol or (1e-12 if dtype == np.float64 else 2e-5)
    cpu_out, cpu_grads = _run(fn, arrays, "cpu", grad_inputs, seed)
    gpu_out, gpu_grads = _run(fn, arrays, device, grad_inputs, seed)
    for c, g in zip(cpu_out, gpu_out):
        assert c.dtype == g.dtype and c.shape == g.shape
        np.testing.assert_allclose(g, c, rtol=rtol, atol=rtol)
    for i, (c, g) in enumerate(zip(cpu_grads, gpu_grads)):
        assert (c is None) == (g is None), f"input {i}: gradient only on one device"
        if c is not None:
            np.testing.assert_allclose(g, c, rtol=rtol, atol=rtol, err_msg=f"grad of input {i}")


X, Y, V = (3, 4), (3, 4), (4,)
INDEX = np.array([[0, 2, 1, 0], [1, 1, 0, 2]])
CASES = {
    # elementwise, with broadcasting and Python scalars
    "arithmetic": (lambda t, x, y, v: (x + y) * (x - v) / (y.abs() + 1) - 2.5 * x ** 2, [X, Y, V]),
    "exp_log_pow": (lambda t, x: x.exp() + (x.abs() + 0.5).log() + x.abs().log1p()
                    + (x.abs() + 0.1).pow(1.5) + (x.abs() + 0.1).rsqrt() + 2 ** x, [X]),
    "activations": (lambda t, x: x.sin() * x.cos() + x.tanh() + x.sigmoid() + x.relu()
                    + x.erf() + x.sign(), [X]),
    "clamp_where": (lambda t, x, y: t.where(x > y, x, y) + x.clamp(-0.5, 0.5)
                    + t.maximum(x, y) - t.minimum(x, y), [X, Y]),
    "comparisons": (lambda t, x, y: [x > y, x <= y, x == y, t.isfinite(x * float("inf")),
                                     (x > 0) & (y > 0)], [X, Y]),
    # reductions
    "sum_mean_var": (lambda t, x: [x.sum(), x.sum(1, keepdim=True), x.mean(0), x.var(1),
                                   x.std(), x.prod(1), x.norm()], [X]),
    "max_min_arg": (lambda t, x: [*x.max(1), x.min(), x.amax(0), x.argmax(), x.argmin(1)], [X]),
    "softmax_family": (lambda t, x: [x.softmax(1), x.log_softmax(0), x.logsumexp(1),
                                     x.cumsum(1)], [X]),
    "all_any": (lambda t, x: [(x > 0).all(), (x > 0).any(1), t.count_nonzero(x > 0)], [X]),
    # linear algebra
    "matmul": (lambda t, a, b, c: [a @ b, t.bmm(c, c.transpose(1, 2)), t.mm(a, b), a.t(),
                                   t.einsum("ij,jk->ik", a, b), t.outer(a[0], b[:, 0])],
               [(3, 4), (4, 2), (2, 3, 4)]),
    "batched_broadcast_matmul": (lambda t, a, b: a @ b, [(2, 1, 3, 4), (5, 4, 2)]),
    # shape and movement
    "reshape_permute": (lambda t, x: [x.reshape(2, 6), x.view(4, 3).t(), x.permute(1, 0),
                                      x.flatten(), x.unsqueeze(0).squeeze(0), x.T.contiguous()],
                        [X]),
    "expand_repeat": (lambda t, x: [x[:1].expand(3, 4), x.repeat(2, 1), x.unflatten(1, (2, 2))],
                      [X]),
    "cat_stack_split": (lambda t, x, y: [t.cat([x, y], 1), t.stack([x, y]), *x.split(2, 1),
                                         *y.chunk(3, 0), x.narrow(1, 1, 2)], [X, Y]),
    # indexing
    "getitem": (lambda t, x: [x[1], x[:, 1:3], x[..., None], x[[0, 0, 2]], x[x > 0],
                              x[t.tensor([1, 0], device=x.device), 1:]], [X]),
    "gather_scatter": (lambda t, x, i: [x.gather(1, i), t.zeros_like(x).scatter_add(1, i, x[:2]),
                                        x.index_select(0, i[0, :2]), x.scatter(1, i, 0.5)],
                       [X, INDEX]),
    "masked_sort_topk": (lambda t, x: [x.masked_fill(x > 0.5, 0.0), *x.sort(1),
                                       *x.topk(2, 1), x.argsort(0, descending=True)], [X]),
    "setitem": (lambda t, x, y: _setitem(x, y), [X, Y]),
    # convolution and pooling (the CUDA kernels on the GPU path)
    "conv_pool": (lambda t, x, w, b: [
        conv.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2)),
        pool.max_pool2d(x, 3, 2, 1, ceil_mode=True), pool.avg_pool2d(x, 2, padding=1),
        pool.avg_pool2d(x, 3, 1, 1, count_include_pad=False), pool.adaptive_avg_pool2d(x, 2),
        pool.adaptive_max_pool2d(x, (3, 2))], [(2, 3, 7, 6), (4, 3, 3, 2), (4,)]),
    "grouped_transposed_conv": (lambda t, x, w, v: [
        conv.conv2d(x, w, groups=3, padding="same"),
        t.conv_transpose2d(x, v, stride=2, padding=1, output_padding=1)],
        [(1, 3, 5, 5), (6, 1, 3, 3), (3, 2, 3, 3)]),
    # nn.functional
    "linear_losses": (lambda t, x, w, b, y: [F.linear(x, w, b), F.cross_entropy(x, y),
                                             F.mse_loss(x, w[:3]), F.gelu(x), F.silu(x),
                                             F.softplus(x)],
                      [X, X, (3,), np.array([3, 0, 1])]),
    "normalisation": (lambda t, x, w, b: [F.layer_norm(x, (4,), w, b),
                                          F.batch_norm(x, None, None, w, b, training=True),
                                          F.normalize(x), F.cosine_similarity(x, x + 1)],
                      [(5, 4), (4,), (4,)]),
    "embedding_attention": (lambda t, w, q, i: [F.embedding(i, w),
                                                scaled_dot_product_attention(q, q, q)],
                            [(5, 3), (2, 4, 3), np.array([[0, 4], [4, 1]])]),
}


def _setitem(x, y):
    z = x * 1
    z[0] = y[1]
    z[:, 2] = 7.0
    return z


@pytest.mark.parametrize("device", CUDA_DEVICES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_op_family_matches_cpu_in_float64(name, device):
    fn, specs = CASES[name]
    same_on_cuda(fn, specs, device=device)


@pytest.mark.parametrize("name", ["arithmetic", "activations", "matmul", "softmax_family",
                                  "linear_losses", "conv_pool"])
def test_op_family_matches_cpu_in_float32(name):
    fn, specs = CASES[name]
    same_on_cuda(fn, specs, dtype=np.float32)


@pytest.mark.parametrize("device", CUDA_DEVICES)
def test_creation_on_cuda_matches_cpu(device):
    def made(device):
        return [gradforge.zeros(2, 3, device=device), gradforge.ones(4, device=device),
                gradforge.full((2,), 1.5, device=device), gradforge.arange(5, device=device),
                gradforge.arange(0.0, 1.0, 0.25, device=device),
                gradforge.linspace(0, 1, 5, device=device), gradforge.eye(3, device=device),
                gradforge.tensor([[1, 2], [3, 4]], device=device),
                gradforge.zeros_like(gradforge.ones(2, device=device)),
                gradforge.full_like(gradforge.ones(2, 1, device=device), 7),
                gradforge.ones(3, device=device).new_zeros(2)]
    for c, g in zip(made("cpu"), made(device)):
        _check_placed(g, device)
        assert g.dtype == c.dtype
        np.testing.assert_array_equal(g.cpu().numpy(), c.numpy())


@pytest.mark.parametrize("device", CUDA_DEVICES)
def test_in_place_ops_on_cuda(device):
    x = gradforge.arange(6.0, device=device).reshape(2, 3)
    y = gradforge.full((2, 3), 0.5, device=device)
    with gradforge.no_grad():
        x.add_(1).mul_(2).clamp_(0, 9)
        x.masked_fill_(x > 8, -1.0)
        x[1].zero_()
        x.addcmul_(y, y, value=4).addcdiv_(y, y, value=-1).lerp_(y, 0.0).add_(y, alpha=2)
        x.copy_((x * 0.5).cpu() + gradforge.ones(3))  # a CPU source copies in, as in torch
    np.testing.assert_array_equal(x.cpu().numpy(), [[2.5, 3.5, 4.5], [1.5, 1.5, 1.5]])
    _check_placed(x, device)


def test_kernels_on_cuda_match_their_numpy_twins():
    """The CUDA backend's im2col/col2im/pooling (RawModule kernels) against backend/cpu.py."""
    cpu = gradforge.device("cpu").backend
    gpu = gradforge.device("cuda").backend
    x = np.random.default_rng(3).standard_normal((2, 3, 7, 6))
    xd = gpu.asarray(x)
    conv = (3, 2, 2, 1, 1, 0, 1, 2)  # kernel 3x2, stride (2, 1), padding (1, 0), dilation (1, 2)
    cols = cpu.im2col(x, *conv)
    np.testing.assert_array_equal(gpu.to_host(gpu.im2col(xd, *conv)), cols)
    np.testing.assert_allclose(gpu.to_host(gpu.col2im(gpu.asarray(cols), x.shape, *conv)),
                               cpu.col2im(cols, x.shape, *conv), rtol=1e-13)
    pool = (3, 3, 2, 2, 1, 1, 1, 1, True)
    out, idx = cpu.max_pool2d_forward(x, *pool)
    got, got_idx = gpu.max_pool2d_forward(xd, *pool)
    np.testing.assert_array_equal(gpu.to_host(got), out)
    np.testing.assert_array_equal(gpu.to_host(got_idx), idx)
    np.testing.assert_array_equal(
        gpu.to_host(gpu.max_pool2d_backward(gpu.asarray(out), got_idx, x.shape, *pool)),
        cpu.max_pool2d_backward(out, idx, x.shape, *pool))
    avg = (2, 3, 2, 2, 1, 1, False, True, None)
    out = cpu.avg_pool2d_forward(x, *avg)
    np.testing.assert_allclose(gpu.to_host(gpu.avg_pool2d_forward(xd, *avg)), out, rtol=1e-13)
    np.testing.assert_allclose(
        gpu.to_host(gpu.avg_pool2d_backward(gpu.asarray(out), x.shape, *avg)),
        cpu.avg_pool2d_backward(out, x.shape, *avg), rtol=1e-13)


# -- moving between devices -----------------------------------------------------------------
def test_to_and_back_is_differentiable_and_keeps_values():
    x = gradforge.tensor([[1.0, -2.0], [3.0, 0.5]], dtype=gradforge.float64, requires_grad=True)
    y = x.to("cuda", non_blocking=True)
    assert y.is_cuda and y.device == gradforge.device("cuda:0") and y.requires_grad
    assert x.cuda().device == y.device and y.cpu().device.type == "cpu"
    z = y.to(device="cuda", dtype=gradforge.float32)
    assert z.dtype == gradforge.float32 and z.is_cuda
    (y * y).sum().backward()
    assert x.grad.device.type == "cpu"
    np.testing.assert_array_equal(x.grad.numpy(), 2 * x.detach().numpy())
    assert y.to("cuda") is y  # already there: no copy


def test_cuda_tensors_refuse_implicit_numpy_conversion():
    y = gradforge.ones(2, device="cuda")
    message = r"can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu\(\)"
    with pytest.raises(TypeError, match=message):
        y.numpy()
    with pytest.raises(TypeError, match=message):
        np.asarray(y)
    np.testing.assert_array_equal(np.asarray(y.cpu()), [1.0, 1.0])


def test_dlpack_shares_cuda_memory():
    y = gradforge.zeros(3, device="cuda")
    assert y.__dlpack_device__() == (2, 0)  # kDLCUDA, device 0
    z = gradforge.from_dlpack(y)
    z[0] = 5.0
    assert z.is_cuda and float(y[0]) == 5.0


# -- device mismatches ---------------------------------------------------------------------
@pytest.mark.parametrize("op", [
    lambda a, b: a + b, lambda a, b: a @ b.reshape(3, 1), lambda a, b: gradforge.cat([a, b]),
    lambda a, b: gradforge.where(a > 0, a, b), lambda a, b: gradforge.maximum(b, a)])
def test_mixing_devices_raises_naming_both(op):
    a = gradforge.ones(3)
    b = gradforge.ones(3, device="cuda")
    with pytest.raises(RuntimeError, match="cpu.*cuda:0|cuda:0.*cpu"):
        op(a, b)


def test_zero_dim_cpu_tensors_and_scalars_combine_with_cuda_tensors():
    b = gradforge.tensor([1.0, 2.0], device="cuda", requires_grad=True)
    s = gradforge.tensor(3.0)  # zero-dim, on the CPU
    out = b * s + 1 + s
    assert out.is_cuda
    np.testing.assert_array_equal(out.detach().cpu().numpy(), [7.0, 10.0])
    out.sum().backward()
    np.testing.assert_array_equal(b.grad.cpu().numpy(), [3.0, 3.0])
    idx = gradforge.tensor([1, 1, 0])  # CPU indices may index a CUDA tensor
    np.testing.assert_array_equal(b[idx].detach().cpu().numpy(), [2.0, 2.0, 1.0])


def test_a_module_on_cuda_refuses_cpu_input_naming_both_devices():
    layer = gradforge.nn.Linear(3, 2).to("cuda")
    with pytest.raises(RuntimeError, match="cpu.*cuda:0|cuda:0.*cpu"):
        layer(gradforge.ones(1, 3))


# -- several devices (two on the simulator) ---------------------------------------------------
@two_devices
def test_transfers_between_cuda_devices():
    x = gradforge.arange(4.0, device="cuda:0")
    y = x.to("cuda:1")
    assert y.device == gradforge.device("cuda:1") and _array_device(y) == 1
    np.testing.assert_array_equal(y.cpu().numpy(), x.cpu().numpy())
    back = y.to("cuda:0")
    assert _array_device(back) == 0
    np.testing.assert_array_equal(back.cpu().numpy(), [0.0, 1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError, match="cuda:0.*cuda:1|cuda:1.*cuda:0"):
        x + y


@two_devices
def test_copies_between_cuda_devices_go_device_to_device(monkeypatch):
    x = gradforge.arange(6.0, device="cuda:0").reshape(2, 3)
    ints = gradforge.arange(4, device="cuda:1")

    def no_host_copy(*args, **kwargs):
        raise AssertionError("a GPU-to-GPU copy went through host memory")
    array_type = type(x._data)
    monkeypatch.setattr(type(x.device.backend), "to_host", no_host_copy)
    monkeypatch.setattr(array_type, "get", no_host_copy)
    moved = [x.to("cuda:1"), x.t().to("cuda:1"), ints.to("cuda:0")]  # .t(): not contiguous
    monkeypatch.undo()
    for t, device in zip(moved, ("cuda:1", "cuda:1", "cuda:0")):
        _check_placed(t, device)
    np.testing.assert_array_equal(moved[0].cpu().numpy(), [[0, 1, 2], [3, 4, 5]])
    np.testing.assert_array_equal(moved[1].cpu().numpy(), [[0, 3], [1, 4], [2, 5]])
    assert moved[2].dtype == gradforge.int64
    np.testing.assert_array_equal(moved[2].cpu().numpy(), [0, 1, 2, 3])


@two_devices
def test_ops_on_a_second_device_compute_there():
    x = gradforge.ones(3, device="cuda:1", requires_grad=True)
    assert _array_device(x) == 1
    y = (x * 2).sum()
    with gradforge.autograd.detect_anomaly():  # its NaN check reads the gradients too
        y.backward()
    assert _array_device(y) == 1 and _array_device(x.grad) == 1
    assert float(y) == 6.0
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [2.0, 2.0, 2.0])


@two_devices
def test_random_creation_on_a_second_device_repeats_the_first_devices_draws():
    def draws(device):
        gradforge.cuda.manual_seed_all(7)
        base = gradforge.zeros(2, 3, device=device)
        return [gradforge.randn(4, 5, device=device), gradforge.rand(6, device=device),
                gradforge.randint(0, 9, (5,), device=device), gradforge.randperm(7, device=device),
                gradforge.randn_like(base), gradforge.rand_like(base, dtype=gradforge.float64),
                gradforge.empty(3, device=device).normal_(2.0, 0.5),
                gradforge.bernoulli(gradforge.full_like(base, 0.5)),
                gradforge.multinomial(gradforge.tensor([0.2, 0.5, 0.3], device=device), 5,
                                      replacement=True)]
    first, second = draws("cuda:0"), draws("cuda:1")
    for a, b in zip(first, second):
        _check_placed(a, "cuda:0")
        _check_placed(b, "cuda:1")
        # One seed, one draw count: each device's Philox stream gives the same numbers.
        np.testing.assert_array_equal(b.cpu().numpy(), a.cpu().numpy())
    assert sorted(second[3].tolist()) == list(range(7))


@two_devices
def test_gpu_generator_draws_on_its_own_device():
    generator = gradforge.device("cuda:1").backend.new_generator(3)
    for a in (generator.uniform(-1.0, 1.0, (4,)), generator.normal(2.0, 3.0, (5,)),
              generator.integers(0, 5, (3,))):
        assert a.device.id == 1


def _mlp():
    return gradforge.nn.Sequential(gradforge.nn.Linear(5, 8), gradforge.nn.Tanh(),
                                   gradforge.nn.Linear(8, 3))


@two_devices
@pytest.mark.parametrize("make_optimizer", [
    lambda params: gradforge.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-2),
    lambda params: gradforge.optim.Adam(params, lr=0.01, amsgrad=True)], ids=["sgd", "adam"])
def test_training_steps_on_a_second_device_match_the_cpu(make_optimizer):
    rng = np.random.default_rng(0)
    x = gradforge.tensor(rng.standard_normal((4, 5)), dtype=gradforge.float64)
    target = gradforge.tensor([0, 2, 1, 2])
    runs = {}
    for device in ("cpu", "cuda:1"):
        gradforge.manual_seed(0)
        model = _mlp().double().to(device)
        optimizer = make_optimizer(model.parameters())
        for _ in range(3):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x.to(device)), target.to(device))
            loss.backward()
            optimizer.step()
        _check_placed(loss, device)
        runs[device] = (model, optimizer)
    (cpu_model, cpu_opt), (gpu_model, gpu_opt) = runs["cpu"], runs["cuda:1"]
    for p, q in zip(cpu_model.parameters(), gpu_model.parameters()):
        _check_placed(q, "cuda:1")
        _check_placed(q.grad, "cuda:1")
        np.testing.assert_allclose(q.detach().cpu().numpy(), p.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(q.grad.cpu().numpy(), p.grad.numpy(), rtol=1e-12,
                                   atol=1e-15)
        cpu_state, gpu_state = cpu_opt.state[p], gpu_opt.state[q]
        assert sorted(cpu_state) == sorted(gpu_state)
        for name, value in gpu_state.items():
            if name == "step":  # a CPU counter, as in torch
                continue
            _check_placed(value, "cuda:1")
            np.testing.assert_allclose(value.cpu().numpy(), cpu_state[name].numpy(),
                                       rtol=1e-12, atol=1e-15)


@two_devices
def test_conv_and_pool_kernels_run_on_a_second_device():
    rng = np.random.default_rng(1)
    x_host = rng.standard_normal((2, 3, 9, 8))
    results = {}
    for device in ("cpu", "cuda:1"):
        gradforge.manual_seed(0)
        layer = gradforge.nn.Conv2d(3, 4, 3, stride=(2, 1), padding=1).double().to(device)
        x = gradforge.tensor(x_host, device=device, requires_grad=True)
        out = F.max_pool2d(layer(x).relu(), 2, ceil_mode=True)
        (out * out).sum().backward()
        for t in (out, x.grad, layer.weight.grad, layer.bias.grad):
            _check_placed(t, device)
        results[device] = [t.detach().cpu().numpy()
                           for t in (out, x.grad, layer.weight.grad, layer.bias.grad)]
    for c, g in zip(results["cpu"], results["cuda:1"]):
        np.testing.assert_allclose(g, c, rtol=1e-12, atol=1e-12)


@two_devices
def test_ops_on_device_0_under_device_1_still_compute_on_device_0():
    x = gradforge.tensor([1.0, -2.0, 3.0], device="cuda:0", requires_grad=True)
    with gradforge.cuda.device(1):
        y = (x * x).sum()
        zeros = gradforge.zeros(2, device="cuda:0")
        current = gradforge.zeros(2, device="cuda")  # "cuda" is the current device: 1
        y.backward()
        with gradforge.no_grad():
            x.grad.mul_(0.5)
        assert gradforge.cuda.current_device() == 1
    _check_placed(y, "cuda:0")
    _check_placed(zeros, "cuda:0")
    _check_placed(x.grad, "cuda:0")
    _check_placed(current, "cuda:1")
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [1.0, -2.0, 3.0])


@two_devices
def test_gradients_flow_back_across_devices_into_the_leaf():
    x = gradforge.tensor([1.0, 2.0], device="cuda:0", requires_grad=True)
    for _ in range(2):  # the second backward adds into x.grad while the walk is on device 1
        with gradforge.autograd.detect_anomaly():  # the NaN check of a cuda:0 gradient, too
            (x.to("cuda:1") ** 2).sum().backward()
    _check_placed(x.grad, "cuda:0")
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [4.0, 8.0])


@two_devices
def test_data_loading_on_a_second_device():
    data = gradforge.arange(12.0, device="cuda:1").reshape(6, 2)
    loader = gradforge.utils.data.DataLoader(gradforge.utils.data.TensorDataset(data),
                                             batch_size=4)
    (first,), (second,) = list(loader)
    _check_placed(first, "cuda:1")
    np.testing.assert_array_equal(second.cpu().numpy(), [[8.0, 9.0], [10.0, 11.0]])
    stacked = gradforge.utils.data.default_collate([data[0], data[5]])
    _check_placed(stacked, "cuda:1")
    np.testing.assert_array_equal(stacked.cpu().numpy(), [[0.0, 1.0], [10.0, 11.0]])


@two_devices
def test_deepcopy_of_a_second_device_model_stays_there():
    model = _mlp().to("cuda:1")
    twin = copy.deepcopy(model)
    for p, q in zip(model.parameters(), twin.parameters()):
        _check_placed(q, "cuda:1")
        np.testing.assert_array_equal(q.detach().cpu().numpy(), p.detach().cpu().numpy())
    x = gradforge.ones(2, device="cuda:1", requires_grad=True)
    (x * 3).sum().backward()
    y = copy.deepcopy(x)  # a tensor's copy takes its gradient along
    _check_placed(y, "cuda:1")
    _check_placed(y.grad, "cuda:1")
    np.testing.assert_array_equal(y.grad.cpu().numpy(), [3.0, 3.0])

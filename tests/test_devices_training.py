"""Models, optimizers and checkpoints on ``cuda``: the same training steps as on ``cpu``.

A model is built once on the CPU, copied to CUDA through its state_dict, and both copies train
the same steps in float64; parameters, buffers and optimizer state must agree to round-off and
live on the right device. Checkpoints move between devices with ``map_location``.
"""
import importlib

import numpy as np
import pytest

import gradforge
from gradforge import nn

pytestmark = pytest.mark.cuda
F = nn.functional


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(8, 3)).double()


def cnn() -> nn.Module:
    """A small LeNet-style network (needs the convolution layers)."""
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(4, 6, 3), nn.ReLU(), nn.AvgPool2d(2),
                         nn.Flatten(), nn.Linear(6, 3)).double()


def batch(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape), rng.integers(0, 3, shape[0])


def twins(make):
    """The same initial model on cpu and on cuda."""
    gradforge.manual_seed(0)
    cpu = make()
    gpu = make().to("cuda")
    gpu.load_state_dict(cpu.state_dict())
    return cpu, gpu


def train(model, optimizer, x, y, steps, device):
    xs = gradforge.tensor(x, device=device)
    ys = gradforge.tensor(y, device=device)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(xs), ys)
        loss.backward()
        optimizer.step()
    return float(loss)


def assert_same_state(cpu: nn.Module, gpu: nn.Module, rtol=1e-10):
    for (name, c), (_, g) in zip(cpu.state_dict().items(), gpu.state_dict().items()):
        assert g.device.type == "cuda", f"{name} is on {g.device}"
        np.testing.assert_allclose(g.cpu().numpy(), c.numpy(), rtol=rtol, atol=rtol,
                                   err_msg=name)


@pytest.mark.parametrize("make_optimizer", [
    lambda p: gradforge.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda p: gradforge.optim.Adam(p, lr=0.01, amsgrad=True),
    lambda p: gradforge.optim.RMSprop(p, lr=0.01, centered=True, momentum=0.5)],
    ids=["sgd", "adam", "rmsprop"])
def test_mlp_training_steps_match_cpu(make_optimizer):
    cpu, gpu = twins(mlp)
    # Dropout draws from each device's own generator; evaluate its effect-free twin instead.
    cpu[3].p = gpu[3].p = 0.0
    x, y = batch((16, 6))
    opt_cpu, opt_gpu = make_optimizer(cpu.parameters()), make_optimizer(gpu.parameters())
    loss_cpu = train(cpu, opt_cpu, x, y, 3, "cpu")
    loss_gpu = train(gpu, opt_gpu, x, y, 3, "cuda")
    assert loss_gpu == pytest.approx(loss_cpu, rel=1e-10)
    assert_same_state(cpu, gpu)
    for state in opt_gpu.state.values():
        for value in state.values():
            if isinstance(value, gradforge.Tensor) and value.ndim:
                assert value.is_cuda, "optimizer state must live on the parameter's device"


def test_cnn_forward_backward_matches_cpu():
    if not hasattr(nn, "Conv2d") or not hasattr(nn, "MaxPool2d"):
        pytest.skip("nn.Conv2d / nn.MaxPool2d not available yet")
    cpu, gpu = twins(cnn)
    x, y = batch((2, 1, 8, 8))
    opt_cpu = gradforge.optim.SGD(cpu.parameters(), lr=0.1, momentum=0.9)
    opt_gpu = gradforge.optim.SGD(gpu.parameters(), lr=0.1, momentum=0.9)
    assert train(gpu, opt_gpu, x, y, 2, "cuda") == pytest.approx(
        train(cpu, opt_cpu, x, y, 2, "cpu"), rel=1e-10)
    assert_same_state(cpu, gpu)


def test_module_moves_parameters_buffers_and_grads_in_place():
    model = mlp()
    params = list(model.parameters())
    opt = gradforge.optim.SGD(model.parameters(), lr=0.5)  # built before the move, as in torch
    model(gradforge.ones(4, 6, dtype=gradforge.float64)).sum().backward()
    model.cuda()
    assert all(p is q for p, q in zip(model.parameters(), params))
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        assert t.is_cuda, name
    assert all(p.grad.is_cuda for p in params)
    assert model[1].num_batches_tracked.dtype == gradforge.int64
    before = params[0].detach().cpu().numpy()
    opt.step()
    np.testing.assert_allclose(params[0].detach().cpu().numpy(),
                               before - 0.5 * params[0].grad.cpu().numpy())
    model.cpu()
    assert not any(t.is_cuda for t in [*model.parameters(), *model.buffers()])


def test_optimizer_state_follows_the_parameters_when_loaded(tmp_path):
    cpu, gpu = twins(mlp)
    cpu[3].p = gpu[3].p = 0.0
    x, y = batch((8, 6))
    opt_cpu = gradforge.optim.Adam(cpu.parameters(), lr=0.01)
    train(cpu, opt_cpu, x, y, 2, "cpu")
    # Through a checkpoint: as in torch, a loaded state dict shares the CPU "step" tensors
    # with the optimizer it came from.
    gradforge.save({"model": cpu.state_dict(), "optim": opt_cpu.state_dict()}, tmp_path / "c")
    ckpt = gradforge.load(tmp_path / "c")
    gpu.load_state_dict(ckpt["model"])
    opt_gpu = gradforge.optim.Adam(gpu.parameters(), lr=0.01)
    opt_gpu.load_state_dict(ckpt["optim"])
    for state in opt_gpu.state.values():
        assert state["exp_avg"].is_cuda and state["exp_avg_sq"].is_cuda
    train(cpu, opt_cpu, x, y, 1, "cpu")
    train(gpu, opt_gpu, x, y, 1, "cuda")
    assert_same_state(cpu, gpu)


# -- checkpoints ------------------------------------------------------------------------
def test_checkpoints_move_between_devices(tmp_path):
    _, gpu = twins(mlp)
    path = tmp_path / "model.safetensors"
    gradforge.save(gpu.state_dict(), path)
    saved = {k: v.cpu().numpy() for k, v in gpu.state_dict().items()}
    for map_location, device in [(None, "cuda"), ("cpu", "cpu"), ("cuda:0", "cuda"),
                                 ({"cuda:0": "cpu"}, "cpu"),
                                 (lambda t, location: t, "cpu")]:
        loaded = gradforge.load(path, map_location=map_location)
        for key, t in loaded.items():
            assert t.device.type == device, (map_location, key)
            np.testing.assert_array_equal(t.cpu().numpy(), saved[key])
    cpu_model = mlp()
    cpu_model.load_state_dict(gradforge.load(path, map_location="cpu"))
    assert_same_state(cpu_model, gpu, rtol=0)  # the CUDA copy's values, exactly


def test_a_cuda_checkpoint_without_cuda_says_to_map_to_cpu(tmp_path, monkeypatch):
    path = tmp_path / "x.safetensors"
    gradforge.save({"w": gradforge.ones(2, device="cuda")}, path)
    backend = importlib.import_module("gradforge.backend.cuda")
    monkeypatch.setattr(backend, "_status", (False, "CuPy is not installed"))
    monkeypatch.setattr(importlib.import_module("gradforge.backend.device"), "_CANONICAL", {})
    with pytest.raises(RuntimeError, match="CuPy is not installed.*map_location='cpu'"):
        gradforge.load(path)
    assert gradforge.load(path, map_location="cpu")["w"].device.type == "cpu"


def test_resuming_on_cuda_repeats_the_run_bit_for_bit(tmp_path):
    """Model, optimizer and the CUDA generator (dropout masks) saved mid-run, then restored."""
    x, y = batch((16, 6), seed=2)

    def fresh():
        gradforge.manual_seed(3)
        model = mlp().to("cuda")
        return model, gradforge.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    model, opt = fresh()
    train(model, opt, x, y, 2, "cuda")
    gradforge.save({"model": model.state_dict(), "optim": opt.state_dict(),
                    "cuda_rng": gradforge.cuda.get_rng_state()}, tmp_path / "ckpt")
    train(model, opt, x, y, 3, "cuda")
    expected = {k: v.cpu().numpy() for k, v in model.state_dict().items()}

    model, opt = fresh()
    ckpt = gradforge.load(tmp_path / "ckpt")
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optim"])
    gradforge.cuda.set_rng_state(ckpt["cuda_rng"])
    train(model, opt, x, y, 3, "cuda")
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.cpu().numpy(), expected[key], err_msg=key)

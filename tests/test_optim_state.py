"""Optimizer bookkeeping: parameter groups, state_dict / load_state_dict, and bad input."""
import warnings

import numpy as np
import pytest
from oracle import DEVICES
from test_optim import Problem, host

import gradforge
from gradforge import optim

OPTIMIZERS = {
    "sgd": lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    "adam": lambda p: optim.Adam(p, lr=0.05, amsgrad=True),
    "adamw": lambda p: optim.AdamW(p, lr=0.05),
    "rmsprop": lambda p: optim.RMSprop(p, lr=0.01, centered=True, momentum=0.3),
    "adagrad": lambda p: optim.Adagrad(p, lr=0.1, lr_decay=0.01),
    "adadelta": lambda p: optim.Adadelta(p, lr=0.5),
}


def train(problem, params, opt, steps):
    for _ in range(steps):
        opt.zero_grad()
        problem.backward(params)
        opt.step()


def plain(value) -> bool:
    """Whether ``value`` is built only from what a safetensors checkpoint can hold."""
    if isinstance(value, dict):
        return all(isinstance(k, (str, int)) and plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(plain(v) for v in value)
    return value is None or isinstance(value, (gradforge.Tensor, bool, int, float, str))


# -- checkpoints ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_checkpoint_resumes_bit_for_bit(name):
    problem = Problem()
    params = problem.params(gradforge)
    opt = OPTIMIZERS[name](params)
    train(problem, params, opt, 4)
    saved = opt.state_dict()
    assert plain(saved)
    # Copy the checkpoint (tensors included) as a save and a load would.
    copy = {"state": {i: {k: v.clone() if isinstance(v, gradforge.Tensor) else v
                          for k, v in s.items()} for i, s in saved["state"].items()},
            "param_groups": [dict(g) for g in saved["param_groups"]]}
    resumed = [gradforge.tensor(host(p), requires_grad=True) for p in params]
    resumed_opt = OPTIMIZERS[name](resumed)
    resumed_opt.load_state_dict(copy)
    train(problem, params, opt, 4)
    train(problem, resumed, resumed_opt, 4)
    for a, b in zip(params, resumed):
        np.testing.assert_array_equal(host(a), host(b))


@pytest.mark.parametrize("name", ["sgd", "adam", "adagrad"])
def test_state_dict_layout_matches_torch(name):
    torch = pytest.importorskip("torch")
    problem = Problem()
    gp, tp = problem.params(gradforge), problem.params(torch)
    make = {"sgd": lambda lib, p: lib.optim.SGD(p, lr=0.1, momentum=0.9),
            "adam": lambda lib, p: lib.optim.Adam(p, lr=0.1),
            "adagrad": lambda lib, p: lib.optim.Adagrad(p, lr=0.1)}[name]
    gopt = make(gradforge, [{"params": gp[:1]}, {"params": gp[1:], "lr": 0.5}])
    topt = make(torch, [{"params": tp[:1]}, {"params": tp[1:], "lr": 0.5}])
    problem.step_both(gopt, gp, topt, tp)
    gsd, tsd = gopt.state_dict(), topt.state_dict()
    assert gsd["param_groups"] == tsd["param_groups"]
    assert gsd["state"].keys() == tsd["state"].keys()
    for index, tstate in tsd["state"].items():
        assert gsd["state"][index].keys() == tstate.keys()
        if "step" in tstate:
            assert gsd["state"][index]["step"].item() == tstate["step"].item()
            assert gsd["state"][index]["step"].dtype.name == str(tstate["step"].dtype)[6:]


def test_torch_checkpoint_loads_and_continues_like_torch():
    torch = pytest.importorskip("torch")
    problem = Problem()
    gp, tp = problem.params(gradforge), problem.params(torch)
    topt = torch.optim.Adam(tp, lr=0.05, weight_decay=0.01)
    for _ in range(3):
        topt.zero_grad()
        problem.backward(gp)  # only for gradients at the same point
        for g, t in zip(gp, tp):
            t.grad = torch.tensor(host(g.grad))
            g.grad = None
        topt.step()
        with gradforge.no_grad():
            for g, t in zip(gp, tp):
                g.copy_(gradforge.tensor(t.detach().numpy()))
    tsd = topt.state_dict()
    converted = {"state": {i: {k: gradforge.tensor(v.numpy()) for k, v in s.items()}
                           for i, s in tsd["state"].items()},
                 "param_groups": tsd["param_groups"]}
    gopt = gradforge.optim.Adam(gp, lr=0.9)
    gopt.load_state_dict(converted)
    assert gopt.param_groups[0]["lr"] == 0.05 and gopt.param_groups[0]["params"] == gp
    for _ in range(5):
        problem.step_both(gopt, gp, topt, tp)
    for g, t in zip(gp, tp):
        np.testing.assert_allclose(host(g), t.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_load_moves_state_to_the_parameter_dtype_and_device_but_keeps_step(device):
    problem = Problem()
    params = problem.params(gradforge)
    opt = optim.Adam(params, lr=0.1)
    train(problem, params, opt, 2)
    saved = opt.state_dict()
    params32 = [p.detach().float().to(device).requires_grad_() for p in params]
    opt32 = optim.Adam(params32, lr=0.1)
    opt32.load_state_dict(saved)
    state = opt32.state[params32[0]]
    for key in ("exp_avg", "exp_avg_sq"):
        assert state[key].dtype == gradforge.float32
        assert state[key].device == params32[0].device
    assert state["step"] is saved["state"][0]["step"]  # the counter is not cast
    np.testing.assert_allclose(host(state["exp_avg"]), host(saved["state"][0]["exp_avg"]),
                               rtol=1e-6)
    params32[0].grad = gradforge.ones_like(params32[0])
    opt32.step()  # and the update runs on the new device
    assert state["step"].item() == 3.0 and state["exp_avg"].device == params32[0].device


def test_load_accepts_string_indices_and_number_steps():
    problem = Problem()
    params = problem.params(gradforge)
    opt = optim.Adam(params, lr=0.1)
    train(problem, params, opt, 2)
    saved = opt.state_dict()
    saved["state"] = {str(i): {**s, "step": s["step"].item()} for i, s in saved["state"].items()}
    other = optim.Adam([gradforge.tensor(host(p), requires_grad=True) for p in params])
    other.load_state_dict(saved)
    first = other.param_groups[0]["params"][0]
    assert isinstance(other.state[first]["step"], gradforge.Tensor)
    assert other.state[first]["step"].item() == 2.0


def test_load_state_dict_with_mismatched_groups():
    params = [gradforge.zeros(2, requires_grad=True), gradforge.zeros(3, requires_grad=True)]
    saved = optim.SGD([{"params": params[:1]}, {"params": params[1:]}], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="different number of parameter groups: 2 .* 1"):
        optim.SGD(params, lr=0.1).load_state_dict(saved)
    swapped = optim.SGD([{"params": params}, {"params": [gradforge.zeros(1,
                                                                          requires_grad=True)]}])
    swapped_saved = optim.SGD([{"params": params[:1]}, {"params": params[1:]}]).state_dict()
    with pytest.raises(ValueError, match="group 0 has 1 parameters in the state dict and 2"):
        swapped.load_state_dict(swapped_saved)


def test_adamw_stays_decoupled_after_loading_an_adam_checkpoint():
    params = [gradforge.zeros(2, requires_grad=True)]
    saved = optim.Adam(params, weight_decay=0.1).state_dict()
    opt = optim.AdamW(params)
    opt.load_state_dict(saved)
    assert opt.param_groups[0]["decoupled_weight_decay"] is True
    assert opt.param_groups[0]["weight_decay"] == 0.1


def test_adagrad_state_exists_before_the_first_step():
    params = [gradforge.zeros(2, requires_grad=True)]
    opt = optim.Adagrad(params, initial_accumulator_value=0.5)
    np.testing.assert_array_equal(host(opt.state[params[0]]["sum"]), [0.5, 0.5])
    late = gradforge.ones(3, dtype=gradforge.float64, requires_grad=True)
    opt.add_param_group({"params": [late], "lr": 1.0})  # its state starts at its first step
    late.grad = gradforge.ones(3, dtype=gradforge.float64)
    opt.step()
    np.testing.assert_allclose(host(late), 1 - 1 / (1.5 ** 0.5 + 1e-10), rtol=1e-15)


# -- parameter groups -----------------------------------------------------------------------
def test_param_groups_take_defaults_and_overrides():
    a, b = gradforge.zeros(2, requires_grad=True), gradforge.zeros(3, requires_grad=True)
    opt = optim.SGD([{"params": a}, {"params": (b,), "momentum": 0.5}], lr=0.1, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.1]
    assert [g["momentum"] for g in opt.param_groups] == [0.9, 0.5]
    assert opt.param_groups[0]["params"] == [a] and opt.param_groups[1]["params"] == [b]
    c = gradforge.zeros(1, requires_grad=True)
    opt.add_param_group({"params": [c], "lr": 0.01})
    assert opt.param_groups[2]["lr"] == 0.01 and opt.param_groups[2]["nesterov"] is False
    assert opt.state_dict()["param_groups"][2]["params"] == [2]
    assert "Parameter Group 2" in repr(opt) and "lr: 0.01" in repr(opt)


def test_named_parameters_are_recorded():
    a, b = gradforge.zeros(2, requires_grad=True), gradforge.zeros(3, requires_grad=True)
    opt = optim.Adam([("layer.weight", a), ("layer.bias", b)])
    assert opt.param_groups[0]["params"] == [a, b]
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["layer.weight", "layer.bias"]
    with pytest.raises(ValueError, match="with/without names"):
        opt.add_param_group({"params": [gradforge.zeros(1, requires_grad=True)]})


def test_duplicate_parameters():
    a, b = gradforge.zeros(2, requires_grad=True), gradforge.zeros(3, requires_grad=True)
    opt = optim.SGD([a], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [b, a]})
    with pytest.warns(UserWarning, match="duplicate parameters"):
        optim.SGD([b, b], lr=0.1)


@pytest.mark.parametrize("params, error, message", [
    ([], ValueError, "empty parameter list"),
    (gradforge.zeros(2, requires_grad=True), TypeError, "iterable of Tensors or dicts"),
    ({gradforge.zeros(2, requires_grad=True)}, TypeError, "ordered collections"),
    ([gradforge.zeros(2, requires_grad=True), 3.0], TypeError, "one of the params is float"),
])
def test_bad_params(params, error, message):
    with pytest.raises(error, match=message):
        optim.SGD(params if not isinstance(params, set) else [{"params": params}], lr=0.1)


def test_non_leaf_parameter_is_refused():
    leaf = gradforge.ones(2, 3, requires_grad=True)
    with pytest.raises(ValueError, match=r"non-leaf Tensor \(parameter 1, of shape \[2, 3\]"):
        optim.Adam([leaf, leaf * 2])
    retained = leaf * 2
    retained.retain_grad()
    optim.Adam([retained])  # torch allows a non-leaf that retains its grad


@pytest.mark.parametrize("make, message", [
    (lambda p: optim.SGD(p, lr=-0.1), "Invalid learning rate: -0.1"),
    (lambda p: optim.SGD(p, momentum=-0.9), "Invalid momentum value: -0.9"),
    (lambda p: optim.SGD(p, weight_decay=-1.0), "Invalid weight_decay value: -1.0"),
    (lambda p: optim.SGD(p, nesterov=True), "Nesterov momentum requires a momentum"),
    (lambda p: optim.SGD(p, momentum=0.9, dampening=0.1, nesterov=True), "zero dampening"),
    (lambda p: optim.Adam(p, lr=-1e-3), "Invalid learning rate"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    (lambda p: optim.Adam(p, betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    (lambda p: optim.Adam(p, betas=(0, 0.9)), "both floats or both Tensors"),
    (lambda p: optim.Adam(p, eps=-1e-8), "Invalid epsilon value"),
    (lambda p: optim.AdamW(p, weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
    (lambda p: optim.RMSprop(p, alpha=-0.5), "Invalid alpha value: -0.5"),
    (lambda p: optim.RMSprop(p, momentum=-0.5), "Invalid momentum value"),
    (lambda p: optim.Adagrad(p, lr_decay=-0.5), "Invalid lr_decay value: -0.5"),
    (lambda p: optim.Adagrad(p, initial_accumulator_value=-1.0), "initial_accumulator_value"),
    (lambda p: optim.Adadelta(p, rho=1.5), "Invalid rho value: 1.5"),
    (lambda p: optim.SGD(p, lr=gradforge.tensor([0.1, 0.2])), "Tensor lr must be 1-element"),
])
def test_bad_hyperparameters(make, message):
    with pytest.raises(ValueError, match=message):
        make([gradforge.zeros(2, requires_grad=True)])


def test_unsupported_flags():
    p = [gradforge.zeros(2, requires_grad=True)]
    with pytest.raises(NotImplementedError, match="differentiable=True"):
        optim.SGD(p, differentiable=True)
    with pytest.raises(NotImplementedError, match="capturable=True"):
        optim.Adam(p, capturable=True)
    with pytest.raises(RuntimeError, match="cannot be `True` together"):
        optim.Adam(p, foreach=True, fused=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optim.Adam(p, foreach=True)  # an implementation hint: accepted silently


def test_base_optimizer_step_needs_an_update_rule():
    opt = optim.Optimizer([gradforge.zeros(2, requires_grad=True)], {"lr": 0.1})
    with pytest.raises(NotImplementedError, match="must implement step"):
        opt.step()

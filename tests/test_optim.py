"""Optimizer updates against PyTorch: the parameters after every step, to float64 round-off.

Each step, gradforge computes the gradients of a small tanh regression; torch's parameters
get exactly the same gradients, so any difference is the optimizer's update alone.
"""
import numpy as np
import pytest
from oracle import DEVICES

import gradforge

torch = pytest.importorskip("torch")

STEPS = 25


class Problem:
    """``sum((tanh(X @ W.T + b) - Y)**2)`` in float64, the same start for both libraries."""

    def __init__(self, device="cpu", seed=0):
        rng = np.random.default_rng(seed)
        self.start = [rng.standard_normal((4, 3)), rng.standard_normal(4)]
        self.X = gradforge.tensor(rng.standard_normal((6, 3)), device=device)
        self.Y = gradforge.tensor(rng.standard_normal((6, 4)), device=device)
        self.device = device

    def params(self, lib):
        if lib is torch:
            return [torch.tensor(a, requires_grad=True) for a in self.start]
        return [gradforge.tensor(a, device=self.device, requires_grad=True) for a in self.start]

    def loss(self, params):
        W, b = params
        return ((gradforge.tanh(self.X @ W.T + b) - self.Y) ** 2).sum()

    def backward(self, params):
        loss = self.loss(params)
        loss.backward()
        return loss

    def step_both(self, gopt, gp, topt, tp):
        """One step of each optimizer from the same gradients (gradforge's, copied to torch)."""
        gopt.zero_grad()
        topt.zero_grad()
        self.backward(gp)
        for g, t in zip(gp, tp):
            t.grad = torch.tensor(host(g.grad))
        gopt.step()
        topt.step()


def host(t):
    """A gradforge or torch tensor as a NumPy array."""
    if isinstance(t, gradforge.Tensor):
        return t.detach().cpu().numpy()
    return t.detach().numpy()


def run_pair(make, device="cpu", steps=STEPS):
    """Step a gradforge and a torch optimizer side by side; compare after every step."""
    problem = Problem(device)
    gp, tp = problem.params(gradforge), problem.params(torch)
    gopt, topt = make(gradforge, gp), make(torch, tp)
    for step in range(steps):
        problem.step_both(gopt, gp, topt, tp)
        for g, t in zip(gp, tp):
            np.testing.assert_allclose(host(g), host(t), rtol=1e-12, atol=1e-14,
                                       err_msg=f"after step {step + 1}")
    return gopt, topt


def groups(lib, params, **second):
    """Two parameter groups: W with the defaults, b with the hyperparameters ``second``."""
    return [{"params": [params[0]]}, {"params": [params[1]], **second}]


CONFIGS = {
    "sgd": lambda L, p: L.optim.SGD(p, lr=0.05),
    "sgd-momentum-dampening-wd": lambda L, p: L.optim.SGD(p, lr=0.05, momentum=0.9,
                                                          dampening=0.3, weight_decay=0.01),
    "sgd-nesterov-maximize": lambda L, p: L.optim.SGD(p, lr=0.01, momentum=0.8,
                                                      nesterov=True, maximize=True),
    "sgd-groups": lambda L, p: L.optim.SGD(groups(L, p, lr=0.2, momentum=0.5), lr=0.05,
                                           momentum=0.9),
    "adam": lambda L, p: L.optim.Adam(p, lr=0.01),
    "adam-amsgrad-wd": lambda L, p: L.optim.Adam(p, lr=0.02, betas=(0.8, 0.95), eps=1e-6,
                                                 weight_decay=0.1, amsgrad=True),
    "adam-maximize-groups": lambda L, p: L.optim.Adam(groups(L, p, betas=(0.5, 0.9)), lr=0.01,
                                                      maximize=True),
    "adamw": lambda L, p: L.optim.AdamW(p, lr=0.01),
    "adamw-amsgrad": lambda L, p: L.optim.AdamW(p, lr=0.03, weight_decay=0.2, amsgrad=True),
    "rmsprop": lambda L, p: L.optim.RMSprop(p, lr=0.01),
    "rmsprop-centered-momentum-wd": lambda L, p: L.optim.RMSprop(
        p, lr=0.01, alpha=0.9, eps=1e-6, centered=True, momentum=0.5, weight_decay=0.1),
    "rmsprop-momentum-maximize": lambda L, p: L.optim.RMSprop(p, lr=0.001, momentum=0.9,
                                                              maximize=True),
    "adagrad": lambda L, p: L.optim.Adagrad(p, lr=0.1),
    "adagrad-decay-init-wd": lambda L, p: L.optim.Adagrad(
        p, lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.3, eps=1e-8),
    "adadelta": lambda L, p: L.optim.Adadelta(p),
    "adadelta-rho-wd-groups": lambda L, p: L.optim.Adadelta(
        groups(L, p, lr=0.5, rho=0.5), rho=0.8, eps=1e-5, weight_decay=0.1),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_update_matches_torch(name, device):
    gopt, topt = run_pair(CONFIGS[name], device)
    # The state follows as well: same keys, same values, as the checkpoint will hold.
    gstate, tstate = gopt.state_dict()["state"], topt.state_dict()["state"]
    assert gstate.keys() == tstate.keys()
    for index in tstate:
        assert gstate[index].keys() == tstate[index].keys()
        for key, value in tstate[index].items():
            np.testing.assert_allclose(host(gstate[index][key]), host(value), rtol=1e-11,
                                       atol=1e-14, err_msg=f"state[{index}][{key!r}]")


def test_tensor_lr_matches_torch():
    run_pair(lambda L, p: L.optim.SGD(p, lr=L.tensor(0.05), momentum=0.9), steps=5)


def test_step_is_in_place_and_records_no_graph():
    problem = Problem()
    params = problem.params(gradforge)
    arrays = [p._data for p in params]
    opt = gradforge.optim.Adam(params, lr=0.1)
    problem.backward(params)
    versions = [p._version for p in params]
    with gradforge.enable_grad():
        opt.step()
    for p, array, version in zip(params, arrays, versions):
        assert p._data is array  # the parameter's own storage was updated
        assert p._version > version
        assert p.is_leaf and p.requires_grad and p.grad_fn is None


def test_parameter_without_grad_is_skipped():
    problem = Problem()
    gp, tp = problem.params(gradforge), problem.params(torch)
    gopt = gradforge.optim.Adam(gp, lr=0.1)
    topt = torch.optim.Adam(tp, lr=0.1)
    problem.backward(gp)
    gp[1].grad = None
    tp[0].grad = torch.tensor(host(gp[0].grad))
    gopt.step()
    topt.step()
    np.testing.assert_array_equal(host(gp[1]), problem.start[1])
    assert list(gopt.state_dict()["state"]) == list(topt.state_dict()["state"]) == [0]
    np.testing.assert_allclose(host(gp[0]), host(tp[0]), rtol=1e-12)


def test_closure_loss_is_returned_and_evaluated_with_grad():
    problem = Problem()
    gp, tp = problem.params(gradforge), problem.params(torch)
    gopt = gradforge.optim.SGD(gp, lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(tp, lr=0.1, momentum=0.9)
    X, Y = torch.tensor(host(problem.X)), torch.tensor(host(problem.Y))

    def gclosure():
        gopt.zero_grad()
        return problem.backward(gp)

    def tclosure():
        topt.zero_grad()
        loss = ((torch.tanh(X @ tp[0].T + tp[1]) - Y) ** 2).sum()
        loss.backward()
        return loss

    for _ in range(10):
        with gradforge.no_grad():  # the closure re-enables grad for itself
            gloss = gopt.step(gclosure)
        tloss = topt.step(tclosure)
        assert gloss.item() == pytest.approx(tloss.item(), rel=1e-12)
    for g, t in zip(gp, tp):
        np.testing.assert_allclose(host(g), host(t), rtol=1e-11)
    assert gopt.step() is None


def test_zero_grad():
    problem = Problem()
    params = problem.params(gradforge)
    opt = gradforge.optim.SGD(params, lr=0.1)
    problem.backward(params)
    grads = [p.grad for p in params]
    opt.zero_grad(set_to_none=False)
    for p, g in zip(params, grads):
        assert p.grad is g  # zeroed in place, the same tensor
        np.testing.assert_array_equal(host(p.grad), 0.0)
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_float32_parameters_stay_float32():
    params = [gradforge.randn(3, 2, requires_grad=True)]
    tparams = [torch.tensor(host(params[0]), requires_grad=True)]
    opt = gradforge.optim.Adam(params, lr=0.1)
    topt = torch.optim.Adam(tparams, lr=0.1)
    for _ in range(3):
        params[0].grad = gradforge.tensor(host(params[0]) ** 2)
        tparams[0].grad = torch.tensor(host(params[0]) ** 2)
        opt.step()
        topt.step()
    assert params[0].dtype == gradforge.float32
    state = opt.state[params[0]]
    assert state["exp_avg"].dtype == gradforge.float32
    assert state["step"].dtype == gradforge.float32 and state["step"].device.type == "cpu"
    np.testing.assert_allclose(host(params[0]), host(tparams[0]), rtol=1e-6)


def nn_attr(name):
    """``gradforge.nn.<name>``, or a skip while nn (written concurrently) lacks it."""
    value = getattr(pytest.importorskip("gradforge.nn"), name, None)
    if value is None:
        pytest.skip(f"gradforge.nn.{name} is not written yet")
    return value


def test_optimizes_nn_parameters():
    Parameter = nn_attr("Parameter")
    problem = Problem()
    gp = [Parameter(p) for p in problem.params(gradforge)]
    tp = [torch.nn.Parameter(p) for p in problem.params(torch)]
    gopt = gradforge.optim.Adam([("weight", gp[0]), ("bias", gp[1])], lr=0.05)
    topt = torch.optim.Adam([("weight", tp[0]), ("bias", tp[1])], lr=0.05)
    for _ in range(5):
        problem.step_both(gopt, gp, topt, tp)
    assert gopt.state_dict()["param_groups"] == topt.state_dict()["param_groups"]
    for g, t in zip(gp, tp):
        assert isinstance(g, Parameter)
        np.testing.assert_allclose(host(g), host(t), rtol=1e-12)


def test_trains_nn_linear_like_torch():
    Linear = nn_attr("Linear")
    rng = np.random.default_rng(1)
    tlin = torch.nn.Linear(3, 2).double()
    glin = Linear(3, 2).double()
    glin.load_state_dict({k: gradforge.tensor(v.numpy()) for k, v in tlin.state_dict().items()})
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    gopt = gradforge.optim.SGD(glin.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    topt = torch.optim.SGD(tlin.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    for _ in range(10):
        for lin, opt, lib in ((glin, gopt, gradforge), (tlin, topt, torch)):
            opt.zero_grad()
            ((lin(lib.tensor(x)) - lib.tensor(y)) ** 2).mean().backward()
            opt.step()
    for name, value in tlin.state_dict().items():
        np.testing.assert_allclose(host(glin.state_dict()[name]), value.numpy(), rtol=1e-10)

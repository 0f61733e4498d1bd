"""Learning-rate schedulers against PyTorch: the same rates, exactly, at every step."""
import warnings

import numpy as np
import pytest

import gradforge
from gradforge.optim import lr_scheduler

torch = pytest.importorskip("torch")

STEPS = 60


def build(lib, kind="sgd", lr=0.1):
    """An optimizer with two groups (the second with its own lr) over parameters with no grad.

    Without gradients ``optimizer.step()`` changes nothing, but it keeps torch's call order.
    """
    groups = [{"params": [lib.zeros(2, requires_grad=True)]},
              {"params": [lib.zeros(3, requires_grad=True)], "lr": 0.05}]
    if kind == "sgd":
        return lib.optim.SGD(groups, lr=lr, momentum=0.9)
    if kind == "adam":
        return lib.optim.Adam(groups, lr=lr)
    return lib.optim.Adagrad(groups, lr=lr)


def momenta(opt):
    return [(g.get("momentum"), g.get("betas")) for g in opt.param_groups]


def run_pair(make, steps=STEPS, kind="sgd", metrics=None, gopt=None, topt=None):
    """Step both schedulers; compare rates (and momenta) after construction and every step."""
    gopt = gopt or build(gradforge, kind)
    topt = topt or build(torch, kind)
    gsched, tsched = make(gradforge, gopt), make(torch, topt)
    assert gsched.get_last_lr() == tsched.get_last_lr()
    for step in range(steps):
        gopt.step()
        topt.step()
        args = () if metrics is None else (metrics[step],)
        gsched.step(*args)
        tsched.step(*args)
        assert gsched.get_last_lr() == tsched.get_last_lr(), f"after step {step + 1}"
        assert [g["lr"] for g in gopt.param_groups] == [g["lr"] for g in topt.param_groups]
        assert momenta(gopt) == momenta(topt)
    return gsched, tsched


CONFIGS = {
    "lambda": lambda L, o: L.optim.lr_scheduler.LambdaLR(o, lambda e: 0.97 ** e + 0.01 * e),
    "lambda-per-group": lambda L, o: L.optim.lr_scheduler.LambdaLR(
        o, [lambda e: 1 / (1 + e), lambda e: e // 7]),
    "step": lambda L, o: L.optim.lr_scheduler.StepLR(o, step_size=7),
    "step-gamma": lambda L, o: L.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.77),
    "multistep": lambda L, o: L.optim.lr_scheduler.MultiStepLR(o, [5, 12, 40]),
    "multistep-repeated": lambda L, o: L.optim.lr_scheduler.MultiStepLR(
        o, [30, 3, 10, 10], gamma=0.3),
    "exponential": lambda L, o: L.optim.lr_scheduler.ExponentialLR(o, gamma=0.93),
    "cosine": lambda L, o: L.optim.lr_scheduler.CosineAnnealingLR(o, T_max=20),
    "cosine-eta-min-past-t-max": lambda L, o: L.optim.lr_scheduler.CosineAnnealingLR(
        o, T_max=13, eta_min=1e-3),
    "linear": lambda L, o: L.optim.lr_scheduler.LinearLR(o),
    "linear-decay": lambda L, o: L.optim.lr_scheduler.LinearLR(
        o, start_factor=1.0, end_factor=0.05, total_iters=37),
    "linear-warmup": lambda L, o: L.optim.lr_scheduler.LinearLR(
        o, start_factor=0.1, end_factor=0.9, total_iters=17),
    "onecycle": lambda L, o: L.optim.lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=STEPS),
    "onecycle-per-group-linear": lambda L, o: L.optim.lr_scheduler.OneCycleLR(
        o, max_lr=[0.5, 0.2], epochs=6, steps_per_epoch=11, pct_start=0.4,
        anneal_strategy="linear", base_momentum=[0.8, 0.7], max_momentum=0.99),
    "onecycle-three-phase": lambda L, o: L.optim.lr_scheduler.OneCycleLR(
        o, max_lr=0.3, total_steps=STEPS + 5, three_phase=True, div_factor=10.0,
        final_div_factor=100.0),
    "onecycle-no-momentum": lambda L, o: L.optim.lr_scheduler.OneCycleLR(
        o, max_lr=0.3, total_steps=STEPS, cycle_momentum=False),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_schedule_matches_torch(name):
    gsched, tsched = run_pair(CONFIGS[name])
    # The checkpoint holds the same entries as torch's (all plain values).
    assert gsched.state_dict() == tsched.state_dict()


@pytest.mark.parametrize("name", ["onecycle", "onecycle-three-phase"])
def test_onecycle_cycles_adam_beta1(name):
    run_pair(CONFIGS[name], kind="adam")


def plateau_metrics(seed):
    rng = np.random.default_rng(seed)
    # A noisy descent that flattens out: improvements, plateaus and ties.
    return list(np.round(3 * np.exp(-np.arange(STEPS) / 15) + rng.random(STEPS) * 0.2, 2))


PLATEAU = {
    "defaults": {},
    "min-rel": {"patience": 2, "factor": 0.5, "threshold": 0.01},
    "min-abs-cooldown": {"patience": 1, "threshold_mode": "abs", "threshold": 0.05,
                         "cooldown": 3, "factor": 0.3},
    "max-rel": {"mode": "max", "patience": 0, "factor": 0.8},
    "max-abs-min-lrs": {"mode": "max", "threshold_mode": "abs", "patience": 1,
                        "min_lr": [0.03, 0.01], "factor": 0.5},
    "eps-blocks-small-reductions": {"patience": 0, "factor": 0.9, "eps": 1e-3,
                                    "min_lr": 0.004},
}


@pytest.mark.parametrize("name", sorted(PLATEAU))
def test_reduce_on_plateau_matches_torch(name):
    kwargs = PLATEAU[name]
    for seed in range(2):
        gsched, tsched = run_pair(
            lambda L, o: L.optim.lr_scheduler.ReduceLROnPlateau(o, **kwargs),
            metrics=plateau_metrics(seed))
        assert gsched.state_dict() == tsched.state_dict()


def test_plateau_reads_tensor_metrics():
    gopt, topt = build(gradforge), build(torch)
    metrics = plateau_metrics(3)
    gsched = lr_scheduler.ReduceLROnPlateau(gopt, patience=1)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, patience=1)
    for m in metrics:
        gsched.step(gradforge.tensor(m))
        tsched.step(m)
    assert gsched.get_last_lr() == tsched.get_last_lr() != [0.1, 0.05]


@pytest.mark.parametrize("name", ["step", "multistep", "exponential", "cosine", "linear-warmup"])
def test_resume_with_last_epoch_matches_torch(name):
    gopt, topt = build(gradforge), build(torch)
    for opt in (gopt, topt):
        for group in opt.param_groups:
            group["initial_lr"] = group["lr"]
            group["lr"] *= 0.5  # the rate reached when the run stopped
    run_pair(lambda L, o: _with_last_epoch(L, o, name), steps=30, gopt=gopt, topt=topt)


def _with_last_epoch(lib, opt, name):
    sched = lib.optim.lr_scheduler
    return {"step": lambda: sched.StepLR(opt, 7, last_epoch=11),
            "multistep": lambda: sched.MultiStepLR(opt, [5, 12, 40], last_epoch=11),
            "exponential": lambda: sched.ExponentialLR(opt, 0.9, last_epoch=11),
            "cosine": lambda: sched.CosineAnnealingLR(opt, 20, last_epoch=11),
            "linear-warmup": lambda: sched.LinearLR(opt, 0.1, 0.9, 17, last_epoch=11)}[name]()


@pytest.mark.parametrize("name", ["step", "multistep-repeated", "exponential",
                                  "cosine-eta-min-past-t-max", "linear-warmup"])
def test_explicit_epoch_uses_the_closed_form_like_torch(name):
    gopt, topt = build(gradforge), build(torch)
    gsched, tsched = CONFIGS[name](gradforge, gopt), CONFIGS[name](torch, topt)
    for epoch in (3, 10, 11, 25, 4):
        with pytest.warns(UserWarning, match="epoch parameter"):
            gsched.step(epoch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tsched.step(epoch)
        assert gsched.get_last_lr() == tsched.get_last_lr()


def test_tensor_lr_is_updated_in_place():
    gopt = gradforge.optim.SGD([gradforge.zeros(2, requires_grad=True)],
                               lr=gradforge.tensor(0.1))
    topt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=torch.tensor(0.1))
    lr = gopt.param_groups[0]["lr"]
    gsched = lr_scheduler.StepLR(gopt, 2, gamma=0.5)
    tsched = torch.optim.lr_scheduler.StepLR(topt, 2, gamma=0.5)
    for _ in range(5):
        gopt.step()
        topt.step()
        gsched.step()
        tsched.step()
    assert gopt.param_groups[0]["lr"] is lr
    assert lr.item() == topt.param_groups[0]["lr"].item() == pytest.approx(0.025)
    assert gsched.get_last_lr()[0] is not lr  # a copy, never the group's own tensor

"""Scheduler checkpoints (state_dict / load_state_dict) and bad input."""
import math

import pytest

import gradforge
from gradforge import optim
from gradforge.optim import lr_scheduler


def build(kind="sgd"):
    groups = [{"params": [gradforge.zeros(2, requires_grad=True)]},
              {"params": [gradforge.zeros(3, requires_grad=True)], "lr": 0.05}]
    if kind == "sgd":
        return optim.SGD(groups, lr=0.1, momentum=0.9)
    if kind == "adam":
        return optim.Adam(groups, lr=0.1)
    return optim.Adagrad(groups, lr=0.1)


class Warmup:
    """A callable lr_lambda with state: its attributes are checkpointed, unlike a function's."""

    def __init__(self, steps):
        self.steps = steps

    def __call__(self, epoch):
        return min(1.0, (epoch + 1) / self.steps)


SCHEDULERS = {
    "lambda": lambda o: lr_scheduler.LambdaLR(o, [lambda e: 0.9 ** e, Warmup(8)]),
    "step": lambda o: lr_scheduler.StepLR(o, 4, gamma=0.5),
    "multistep": lambda o: lr_scheduler.MultiStepLR(o, [3, 9, 9, 15], gamma=0.5),
    "exponential": lambda o: lr_scheduler.ExponentialLR(o, 0.9),
    "cosine": lambda o: lr_scheduler.CosineAnnealingLR(o, 7, eta_min=0.01),
    "linear": lambda o: lr_scheduler.LinearLR(o, 0.2, 1.0, 12),
    "onecycle": lambda o: lr_scheduler.OneCycleLR(o, 0.5, total_steps=30, three_phase=True),
    "plateau": lambda o: lr_scheduler.ReduceLROnPlateau(o, patience=1, cooldown=1),
}


def metric(step):
    return 1.0 / (1 + step % 4)  # improves, then relapses: a plateau every few steps


def advance(opt, sched, start, stop, plateau):
    rates = []
    for step in range(start, stop):
        opt.step()
        if plateau:
            sched.step(metric(step))
        else:
            sched.step()
        rates.append(sched.get_last_lr())
    return rates


def plain(value) -> bool:
    """Only what a safetensors checkpoint can hold: no optimizer, no functions, no Counter."""
    if isinstance(value, dict):
        return type(value) is dict and all(plain(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(plain(v) for v in value)
    return value is None or isinstance(value, (gradforge.Tensor, bool, int, float, str))


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_checkpoint_resumes_the_same_schedule(name):
    plateau = name == "plateau"
    opt = build()
    sched = SCHEDULERS[name](opt)
    advance(opt, sched, 0, 12, plateau)
    saved_opt, saved_sched = opt.state_dict(), sched.state_dict()
    assert plain(saved_sched) and "optimizer" not in saved_sched
    expected = advance(opt, sched, 12, 28, plateau)

    resumed_opt = build()
    resumed = SCHEDULERS[name](resumed_opt)
    if name == "lambda":
        resumed.lr_lambdas[1].steps = 99  # restored from the checkpoint below
    resumed_opt.load_state_dict(saved_opt)
    resumed.load_state_dict(saved_sched)
    assert advance(resumed_opt, resumed, 12, 28, plateau) == expected


def test_lambda_state_dict_keeps_only_callable_objects():
    opt = build()
    sched = lr_scheduler.LambdaLR(opt, [lambda e: 1.0, Warmup(8)])
    assert sched.state_dict()["lr_lambdas"] == [None, {"steps": 8}]


def test_multistep_milestones_saved_with_string_keys_load():
    opt = build()
    sched = lr_scheduler.MultiStepLR(opt, [2, 4, 4])
    saved = sched.state_dict()
    assert saved["milestones"] == {2: 1, 4: 2}
    saved["milestones"] = {str(k): v for k, v in saved["milestones"].items()}
    other = lr_scheduler.MultiStepLR(build(), [100])
    other.load_state_dict(saved)
    assert other.milestones == {2: 1, 4: 2}


def test_plateau_state_restores_mode_comparisons():
    sched = lr_scheduler.ReduceLROnPlateau(build(), mode="max", threshold_mode="abs")
    saved = sched.state_dict()
    assert saved["best"] == -math.inf and "optimizer" not in saved
    other = lr_scheduler.ReduceLROnPlateau(build())
    other.load_state_dict(saved)
    assert other.mode == "max" and other.mode_worse == -math.inf


def test_initial_lr_is_recorded_and_required_to_resume():
    opt = build()
    lr_scheduler.StepLR(opt, 3)
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.05]
    with pytest.raises(KeyError, match=r"'initial_lr' is not specified in param_groups\[0\]"):
        lr_scheduler.StepLR(build(), 3, last_epoch=5)


def test_get_lr_outside_step_warns():
    sched = lr_scheduler.ExponentialLR(build(), 0.5)
    with pytest.warns(UserWarning, match="get_last_lr"):
        sched.get_lr()


@pytest.mark.parametrize("make, error, message", [
    (lambda o: lr_scheduler.StepLR(object(), 3), TypeError, "object is not an Optimizer"),
    (lambda o: lr_scheduler.LambdaLR(o, [lambda e: 1.0]), ValueError,
     "Expected 2 lr_lambdas, but got 1"),
    (lambda o: lr_scheduler.LinearLR(o, start_factor=0.0), ValueError,
     "Starting multiplicative factor .* got 0.0"),
    (lambda o: lr_scheduler.LinearLR(o, end_factor=1.5), ValueError,
     "Ending multiplicative factor .* got 1.5"),
    (lambda o: lr_scheduler.OneCycleLR(o, 0.1), ValueError,
     "either total_steps OR \\(epochs AND steps_per_epoch\\)"),
    (lambda o: lr_scheduler.OneCycleLR(o, 0.1, total_steps=0), ValueError,
     "positive integer total_steps, but got 0"),
    (lambda o: lr_scheduler.OneCycleLR(o, 0.1, epochs=2, steps_per_epoch=-1), ValueError,
     "positive integer steps_per_epoch, but got -1"),
    (lambda o: lr_scheduler.OneCycleLR(o, 0.1, total_steps=10, pct_start=1.5), ValueError,
     "pct_start, but got 1.5"),
    (lambda o: lr_scheduler.OneCycleLR(o, 0.1, total_steps=10, anneal_strategy="exp"),
     ValueError, "instead got exp"),
    (lambda o: lr_scheduler.OneCycleLR(o, [0.1, 0.2, 0.3], total_steps=10), ValueError,
     "max_lr has 3 values, param_groups has 2"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, factor=1.0), ValueError,
     "Factor should be < 1.0"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, mode="up"), ValueError, "mode up is unknown"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, threshold_mode="pct"), ValueError,
     "threshold mode pct is unknown"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, min_lr=[0.1]), ValueError,
     "expected 2 min_lrs, got 1"),
])
def test_bad_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make(build())


def test_onecycle_refuses_to_step_past_the_cycle():
    opt = build()
    sched = lr_scheduler.OneCycleLR(opt, 0.1, total_steps=3)
    for _ in range(3):
        opt.step()
        sched.step()
    with pytest.raises(ValueError, match="Tried to step 4 times. .* total steps is 3"):
        sched.step()


def test_onecycle_needs_a_momentum_to_cycle():
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
        lr_scheduler.OneCycleLR(build("adagrad"), 0.1, total_steps=10)
    lr_scheduler.OneCycleLR(build("adagrad"), 0.1, total_steps=10, cycle_momentum=False)


def test_plateau_min_lrs_must_follow_new_groups():
    opt = build()
    sched = lr_scheduler.ReduceLROnPlateau(opt, patience=0, min_lr=[0.0, 0.0])
    opt.add_param_group({"params": [gradforge.zeros(1, requires_grad=True)]})
    sched.step(1.0)
    with pytest.raises(RuntimeError, match=r"param groups in the `optimizer` \(3\) differs"):
        sched.step(2.0)

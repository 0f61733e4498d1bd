"""Losses against PyTorch (functional and module forms, every reduction), finite differences
for the fused loss Functions, numerical stability and bad input."""
import numpy as np
import pytest
from oracle import DEVICES, compare, integers, normal, uniform

import gradforge

F = gradforge.nn.functional
REDUCTIONS = ["mean", "sum", "none"]


def cases(table):
    return [pytest.param(fn, specs, id=name) for name, (fn, specs) in table.items()]


def probs(*shape) -> np.ndarray:
    """Rows of class probabilities along dim 1 (for soft cross-entropy targets)."""
    p = np.random.default_rng(7).random(shape) + 0.1
    return p / p.sum(axis=1, keepdims=True)


class _Weight:
    """Stands for the class weights; becomes a tensor of whichever library is called."""


CLASS_WEIGHT = _Weight()
WEIGHT = np.array([0.3, 1.2, 0.7, 2.0])
TARGETS = np.array([0, 3, 1, 3, 2])
TARGETS_IGNORED = np.array([0, -100, 1, 3, -100])
TARGETS_4D = np.array([[[0, 3], [2, 2]], [[1, 0], [3, 1]]])  # (N=2, H=2, W=2), C=4


def loss_fn(name, **kwargs):
    """``lib.nn.functional.<name>(x, t, **kwargs)``, CLASS_WEIGHT made a tensor of ``lib``."""
    def fn(lib, x, t):
        resolved = {k: lib.tensor(WEIGHT, device=x.device) if v is CLASS_WEIGHT else v
                    for k, v in kwargs.items()}
        return getattr(lib.nn.functional, name)(x, t, **resolved)
    return fn


def class_index_cases(name):
    table = {}
    for red in REDUCTIONS:
        table.update({
            f"{red}": (loss_fn(name, reduction=red), [(5, 4), TARGETS]),
            f"{red}-weight": (loss_fn(name, weight=CLASS_WEIGHT, reduction=red),
                              [(5, 4), TARGETS]),
            f"{red}-ignore_index": (loss_fn(name, reduction=red), [(5, 4), TARGETS_IGNORED]),
            f"{red}-custom_ignore_index": (loss_fn(name, ignore_index=3, reduction=red),
                                           [(5, 4), TARGETS]),
            f"{red}-weight-ignore": (loss_fn(name, weight=CLASS_WEIGHT,
                                             reduction=red), [(5, 4), TARGETS_IGNORED]),
            f"{red}-spatial": (loss_fn(name, reduction=red), [(2, 4, 2, 2), TARGETS_4D]),
            f"{red}-spatial-weight": (loss_fn(name, weight=CLASS_WEIGHT,
                                              reduction=red), [(2, 4, 2, 2), TARGETS_4D]),
            f"{red}-unbatched": (loss_fn(name, reduction=red), [(4,), np.array(2)]),
        })
    return table




CROSS_ENTROPY = class_index_cases("cross_entropy")
for _red in REDUCTIONS:
    CROSS_ENTROPY.update({
        f"{_red}-label_smoothing": (loss_fn("cross_entropy", label_smoothing=0.2,
                                            reduction=_red), [(5, 4), TARGETS_IGNORED]),
        f"{_red}-label_smoothing-weight": (
            loss_fn("cross_entropy", label_smoothing=0.3, weight=CLASS_WEIGHT,
                    reduction=_red), [(5, 4), TARGETS_IGNORED]),
        f"{_red}-label_smoothing-spatial": (
            loss_fn("cross_entropy", label_smoothing=0.1, reduction=_red),
            [(2, 4, 2, 2), TARGETS_4D]),
        f"{_red}-probabilities": (loss_fn("cross_entropy", reduction=_red),
                                  [(5, 4), probs(5, 4)]),
        f"{_red}-probabilities-smoothing-weight": (
            loss_fn("cross_entropy", label_smoothing=0.2, weight=CLASS_WEIGHT,
                    reduction=_red), [(5, 4), probs(5, 4)]),
        f"{_red}-probabilities-spatial": (loss_fn("cross_entropy", reduction=_red),
                                          [(2, 4, 3), probs(2, 4, 3)]),
    })
NLL = class_index_cases("nll_loss")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fn,specs", cases(CROSS_ENTROPY))
def test_cross_entropy_matches_torch(fn, specs, device):
    compare(fn, specs, device=device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fn,specs", cases(NLL))
def test_nll_loss_matches_torch(fn, specs, device):
    compare(fn, specs, device=device)


def test_cross_entropy_float32_and_large_logits():
    compare(loss_fn("cross_entropy"), [normal(6, 5, dtype=np.float32), integers(6, high=5)],
            atol=1e-6, rtol=1e-5)
    big = np.array([[1000.0, -1000.0, 0.0], [-500.0, 700.0, 699.0]])
    compare(loss_fn("cross_entropy", reduction="none"), [big, np.array([1, 2])])


def test_soft_cross_entropy_promotes_a_float64_target():
    """Class probabilities in float64 make a float64 loss of float32 logits (torch)."""
    compare(loss_fn("cross_entropy", label_smoothing=0.1),
            [normal(4, 3, dtype=np.float32), uniform(4, 3, dtype=np.float64)], atol=1e-6,
            rtol=1e-5)


def test_all_targets_ignored_is_nan_with_zero_gradient_like_torch():
    compare(loss_fn("cross_entropy"), [(3, 4), np.full(3, -100)])
    compare(loss_fn("cross_entropy", label_smoothing=0.1), [(3, 4), np.full(3, -100)])
    compare(loss_fn("nll_loss"), [(3, 4), np.full(3, -100)])


PAIRWISE = {}
for _red in REDUCTIONS:
    PAIRWISE.update({
        f"mse-{_red}": (loss_fn("mse_loss", reduction=_red), [(3, 4), (3, 4)]),
        f"l1-{_red}": (loss_fn("l1_loss", reduction=_red), [(3, 4), (3, 4)]),
        f"smooth_l1-{_red}": (loss_fn("smooth_l1_loss", reduction=_red), [(3, 4), (3, 4)]),
        f"smooth_l1-beta-{_red}": (loss_fn("smooth_l1_loss", beta=0.4, reduction=_red),
                                   [(3, 4), (3, 4)]),
        f"smooth_l1-beta0-{_red}": (loss_fn("smooth_l1_loss", beta=0.0, reduction=_red),
                                    [(3, 4), (3, 4)]),
        f"huber-{_red}": (loss_fn("huber_loss", reduction=_red), [(3, 4), (3, 4)]),
        f"huber-delta-{_red}": (loss_fn("huber_loss", delta=0.3, reduction=_red),
                                [(3, 4), (3, 4)]),
        f"kl_div-{_red}": (loss_fn("kl_div", reduction=_red), [(3, 4), probs(3, 4)]),
        f"kl_div-log_target-{_red}": (loss_fn("kl_div", log_target=True, reduction=_red),
                                      [(3, 4), (3, 4)]),
        f"bce-{_red}": (loss_fn("binary_cross_entropy", reduction=_red),
                        [uniform(3, 4, low=0.05, high=0.95), uniform(3, 4, low=0, high=1)]),
        f"bce_logits-{_red}": (loss_fn("binary_cross_entropy_with_logits", reduction=_red),
                               [(3, 4), uniform(3, 4, low=0, high=1)]),
    })
PAIRWISE.update({
    "kl_div-batchmean": (loss_fn("kl_div", reduction="batchmean"), [(3, 4), probs(3, 4)]),
    "mse-int_target": (loss_fn("mse_loss"), [(2, 3), integers(2, 3)]),
})


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fn,specs", cases(PAIRWISE))
def test_pairwise_loss_matches_torch(fn, specs, device):
    compare(fn, specs, device=device)


def test_kl_div_zero_targets_contribute_nothing():
    # d/dt of t*log(t) is unbounded at t = 0 (torch returns nan there): compare d/d input only.
    compare(loss_fn("kl_div", reduction="sum"),
            [(2, 3), np.array([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])], grad_inputs=[0])


def test_mse_broadcast_target_warns_like_torch():
    with pytest.warns(UserWarning, match="target size"):
        compare(loss_fn("mse_loss"), [(3, 4), (3, 1)])


@pytest.mark.parametrize("red", REDUCTIONS)
def test_bce_weights_and_pos_weight(red):
    target = uniform(4, 3, low=0, high=1)
    compare(lambda lib, x, t, w: lib.nn.functional.binary_cross_entropy(x, t, w, reduction=red),
            [uniform(4, 3, low=0.05, high=0.95), target, uniform(3)], grad_inputs=[0, 1])
    compare(lambda lib, x, t, w, pw: lib.nn.functional.binary_cross_entropy_with_logits(
        x, t, w, reduction=red, pos_weight=pw), [(4, 3), target, uniform(4, 1), uniform(3)],
        grad_inputs=[0, 1])


def test_bce_with_logits_is_stable_for_large_logits():
    x = np.array([1000.0, -1000.0, 80.0, -80.0, 0.0])
    t = np.array([0.0, 1.0, 1.0, 0.3, 0.5])
    compare(loss_fn("binary_cross_entropy_with_logits", reduction="none"), [x, t])
    compare(lambda lib, x, t, pw: lib.nn.functional.binary_cross_entropy_with_logits(
        x, t, pos_weight=pw), [x, t, uniform(5)], grad_inputs=[0, 1])
    logits = gradforge.tensor(x.astype(np.float32), requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(logits, gradforge.tensor(t.astype(np.float32)))
    loss.backward()
    assert np.isfinite(loss.item()) and np.isfinite(logits.grad.numpy()).all()


def test_bce_clamps_logs_at_minus_100_like_torch():
    compare(loss_fn("binary_cross_entropy", reduction="none"),
            [np.array([0.0, 1.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0, 1.0])], grad=False)


def test_legacy_size_average_and_reduce_flags():
    x, t = gradforge.randn(3, 4), gradforge.randn(3, 4)
    with pytest.warns(UserWarning, match="deprecated"):
        summed = F.mse_loss(x, t, size_average=False)
    np.testing.assert_allclose(summed.item(), F.mse_loss(x, t, reduction="sum").item())
    with pytest.warns(UserWarning):
        assert F.l1_loss(x, t, reduce=False).shape == (3, 4)


# -- loss modules ------------------------------------------------------------------------------
MODULES = {
    "MSELoss": (lambda lib: lib.nn.MSELoss(reduction="sum"), [(3, 4), (3, 4)]),
    "L1Loss": (lambda lib: lib.nn.L1Loss(), [(3, 4), (3, 4)]),
    "SmoothL1Loss": (lambda lib: lib.nn.SmoothL1Loss(beta=0.5), [(3, 4), (3, 4)]),
    "HuberLoss": (lambda lib: lib.nn.HuberLoss(delta=0.5, reduction="none"), [(3, 4), (3, 4)]),
    "KLDivLoss": (lambda lib: lib.nn.KLDivLoss(reduction="batchmean", log_target=True),
                  [(3, 4), (3, 4)]),
    "BCELoss": (lambda lib: lib.nn.BCELoss(weight=lib.tensor([0.5, 2.0, 1.0])),
                [uniform(2, 3, low=0.1, high=0.9), uniform(2, 3, low=0, high=1)]),
    "BCEWithLogitsLoss": (lambda lib: lib.nn.BCEWithLogitsLoss(
        pos_weight=lib.tensor([0.5, 2.0, 1.0])), [(2, 3), uniform(2, 3, low=0, high=1)]),
    "CrossEntropyLoss": (lambda lib: lib.nn.CrossEntropyLoss(
        weight=lib.tensor(WEIGHT), ignore_index=1, label_smoothing=0.1), [(5, 4), TARGETS]),
    "NLLLoss": (lambda lib: lib.nn.NLLLoss(reduction="sum"), [(5, 4), TARGETS]),
}


@pytest.mark.parametrize("make,specs", cases(MODULES))
def test_loss_module_matches_torch(make, specs):
    torch = pytest.importorskip("torch")
    compare(lambda lib, x, t: make(lib)(x, t), specs)
    t_mod, g_mod = make(torch), make(gradforge)
    assert repr(g_mod) == repr(t_mod)
    assert list(g_mod.state_dict()) == list(t_mod.state_dict())  # weight, pos_weight buffers


# -- bad input ---------------------------------------------------------------------------------
def test_class_index_loss_bad_targets():
    x = gradforge.randn(4, 5)
    with pytest.raises(IndexError, match=r"Target 5 is out of bounds.*\[0, 5\).*\(4, 5\)"):
        F.cross_entropy(x, gradforge.tensor([0, 1, 5, 2]))
    with pytest.raises(IndexError, match="Target -2 is out of bounds"):
        F.nll_loss(x, gradforge.tensor([0, 1, -2, 2]))
    with pytest.raises(RuntimeError, match=r"Long or Byte.*\(4, 5\).*float32 target of shape"):
        F.cross_entropy(x, gradforge.rand(4))
    with pytest.raises(RuntimeError, match="int32"):
        F.cross_entropy(x, gradforge.tensor([0, 1, 2, 1], dtype=gradforge.int32))
    with pytest.raises(ValueError, match=r"input batch_size \(4\) to match target batch_size"):
        F.cross_entropy(x, gradforge.tensor([0, 1, 2]))
    with pytest.raises(RuntimeError, match=r"expected target size \[2, 4\].*got \[2, 5\]"):
        F.cross_entropy(gradforge.randn(2, 3, 4), gradforge.zeros(2, 5, dtype=gradforge.int64))
    with pytest.raises(RuntimeError, match=r"all 5 classes.*shape: \[3\]"):
        F.cross_entropy(x, gradforge.tensor([0, 1, 2, 1]), weight=gradforge.ones(3))
    with pytest.raises(RuntimeError, match="label_smoothing must be between 0.0 and 1.0"):
        F.cross_entropy(x, gradforge.tensor([0, 1, 2, 1]), label_smoothing=1.5)
    with pytest.raises(RuntimeError, match="0-d input"):
        F.cross_entropy(gradforge.tensor(1.0), gradforge.tensor(0))
    with pytest.raises(RuntimeError, match="ignore_index is not supported for floating point"):
        F.cross_entropy(x, gradforge.rand(4, 5), ignore_index=0)


def test_binary_and_pairwise_loss_bad_input():
    p = gradforge.rand(4, 5)
    with pytest.raises(ValueError, match=r"target size.*\[4, 1\].*input size.*\[4, 5\]"):
        F.binary_cross_entropy(p, gradforge.ones(4, 1))
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        F.binary_cross_entropy(p * 3 - 1, gradforge.ones(4, 5))
    with pytest.raises(RuntimeError, match="floating-point target.*int64"):
        F.binary_cross_entropy(p, gradforge.ones(4, 5, dtype=gradforge.int64))
    with pytest.raises(ValueError, match=r"Target size.*\[4, 1\].*must be the same as input"):
        F.binary_cross_entropy_with_logits(p, gradforge.ones(4, 1))
    # A weight that broadcasts beyond the input would silently grow the loss (torch refuses).
    with pytest.raises(RuntimeError, match=r"output with shape \[4, 5\].*\[2, 4, 5\]"):
        F.binary_cross_entropy(p, p, gradforge.ones(2, 4, 5), reduction="none")
    with pytest.raises(RuntimeError, match=r"output with shape \[4, 5\].*\[2, 1, 5\]"):
        F.binary_cross_entropy_with_logits(p, p, gradforge.ones(2, 1, 5))
    with pytest.raises(RuntimeError, match=r"size of tensor a \(4\) must match.*\(3\)"):
        F.mse_loss(p, gradforge.ones(3, 5))
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        F.mse_loss(p, p, reduction="avg")
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        gradforge.nn.L1Loss(reduction="avg")(p, p)
    with pytest.raises(RuntimeError, match="negative values for beta"):
        F.smooth_l1_loss(p, p, beta=-1.0)


# -- finite-difference cases (run by test_autograd_registry.py): every Function of ops/loss.py --
GRAD_CASES = {
    "CrossEntropy": [
        (loss_fn("cross_entropy"), [(4, 3), np.array([0, 2, 1, 2])]),
        (loss_fn("cross_entropy", reduction="none", label_smoothing=0.2,
                 weight=CLASS_WEIGHT), [(3, 4), np.array([0, 3, -100])]),
        (loss_fn("cross_entropy", reduction="sum"), [(2, 3, 2), np.array([[0, 2], [1, 1]])]),
    ],
    "NllLoss": [
        (loss_fn("nll_loss", weight=CLASS_WEIGHT), [(3, 4), np.array([0, 3, 1])]),
        (loss_fn("nll_loss", reduction="none"), [(2, 3, 2), np.array([[0, 2], [1, -100]])]),
    ],
    "BinaryCrossEntropy": [
        (loss_fn("binary_cross_entropy"), [uniform(2, 3, low=0.1, high=0.9),
                                           uniform(2, 3, low=0.1, high=0.9)]),
    ],
    "BinaryCrossEntropyWithLogits": [
        (loss_fn("binary_cross_entropy_with_logits", reduction="sum"),
         [(2, 3), uniform(2, 3, low=0, high=1)]),
        (lambda lib, x, t, pw: lib.nn.functional.binary_cross_entropy_with_logits(
            x, t, pos_weight=pw), [(2, 3), uniform(2, 3, low=0, high=1), uniform(3)]),
    ],
}


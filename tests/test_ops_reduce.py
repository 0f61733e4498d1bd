"""Reductions against PyTorch: sum/mean/var/std with dim, keepdim and correction, max/min
(values and indices), amax/amin, arg-extremes, prod, cumsum, logsumexp, norm, all/any,
softmax and log_softmax."""
import math

import numpy as np
import pytest
from oracle import DEVICES, compare, distinct, integers, mask, normal, uniform

import gradforge


def cases(table):
    return [pytest.param(fn, specs, id=name) for name, (fn, specs) in table.items()]


SUM_MEAN = {
    "sum_all": (lambda lib, a: a.sum(), [(2, 3)]),
    "sum_dim": (lambda lib, a: a.sum(1), [(2, 3, 4)]),
    "sum_negative_dim": (lambda lib, a: lib.sum(a, -1), [(2, 3, 4)]),
    "sum_dims_keepdim": (lambda lib, a: a.sum((0, 2), keepdim=True), [(2, 3, 4)]),
    "sum_dim_list": (lambda lib, a: a.sum(dim=[2, 0]), [(2, 3, 4)]),
    "sum_zero_dim": (lambda lib, a: a.sum(), [()]),
    "sum_empty": (lambda lib, a: a.sum(0), [(0, 3)]),
    "sum_int": (lambda lib, a: a.sum(0), [integers(3, 4, dtype=np.int32)]),
    "sum_bool": (lambda lib, a: a.sum(), [mask(3, 4)]),
    "sum_dtype": (lambda lib, a: a.sum(dtype=lib.float64), [normal(3, dtype=np.float32)]),
    "sum_int_dtype_kept": (lambda lib, a: a.sum(1, dtype=lib.int32),
                           [integers(3, 4, dtype=np.int32)]),
    "sum_zero_dim_dim0": (lambda lib, a: a.sum(0) + a.sum(-1, keepdim=True), [()]),
    "mean_zero_dim_dim0": (lambda lib, a: a.mean(0), [()]),
    "sum_to_size": (lambda lib, a: a.sum_to_size(3, 1), [(2, 3, 4)]),
    "mean_all": (lambda lib, a: a.mean(), [(2, 3)]),
    "mean_dim_keepdim": (lambda lib, a: lib.mean(a, 0, keepdim=True), [(2, 3)]),
    "mean_dims": (lambda lib, a: a.mean((-1, -2)), [(2, 3, 4)]),
    "mean_dtype": (lambda lib, a: a.mean(dtype=lib.float64), [integers(4)]),
    "mean_float32": (lambda lib, a: a.mean(1), [normal(2, 3, dtype=np.float32)]),
    "count_nonzero": (lambda lib, a: lib.count_nonzero(a, 1), [integers(3, 4, high=2)]),
}

VAR_STD = {
    "var": (lambda lib, a: a.var(), [(3, 4)]),
    "var_dim": (lambda lib, a: a.var(1), [(3, 4)]),
    "var_biased": (lambda lib, a: a.var(0, unbiased=False), [(3, 4)]),
    "var_keepdim": (lambda lib, a: lib.var(a, (0, 2), keepdim=True), [(3, 4, 2)]),
    "var_correction": (lambda lib, a: a.var(1, correction=2), [(3, 5)]),
    "var_correction_zero": (lambda lib, a: lib.var(a, dim=0, correction=0), [(3, 5)]),
    "std": (lambda lib, a: a.std(), [(3, 4)]),
    "std_dim_keepdim": (lambda lib, a: a.std(-1, keepdim=True), [(3, 4)]),
    "std_unbiased_false": (lambda lib, a: lib.std(a, 1, False), [(3, 4)]),
    "std_correction": (lambda lib, a: a.std(0, correction=0), [(3, 4)]),
    "var_unbiased_positional": (lambda lib, a: a.var(False), [(3, 4)]),
    "std_unbiased_positional": (lambda lib, a: lib.std(a, True), [(3, 4)]),
    "var_mean": (lambda lib, a: lib.var_mean(a, 1), [(3, 4)]),
    "std_mean": (lambda lib, a: lib.std_mean(a, 0, keepdim=True), [(3, 4)]),
}

EXTREMES = {
    "max_all": (lambda lib, a: a.max(), [distinct(3, 4)]),
    "max_dim": (lambda lib, a: a.max(1), [distinct(3, 4)]),
    "max_dim_keepdim": (lambda lib, a: lib.max(a, 0, keepdim=True), [distinct(3, 4)]),
    "max_dim_kwarg": (lambda lib, a: a.max(dim=-1), [distinct(2, 3, 4)]),
    "max_named_fields": (lambda lib, a: (a.max(1).values, a.max(1).indices),
                         [distinct(3, 4)]),
    "min_all": (lambda lib, a: lib.min(a), [distinct(3, 4)]),
    "min_dim": (lambda lib, a: a.min(0), [distinct(3, 4)]),
    "max_zero_dim": (lambda lib, a: a.max(0), [()]),
    "max_ties_all": (lambda lib, a: a.max(), [np.array([1.0, 3.0, 3.0, 2.0])]),
    "max_int": (lambda lib, a: a.max(0), [integers(3, 4, high=100)]),
    "amax": (lambda lib, a: a.amax(1), [distinct(3, 4)]),
    "amax_dims": (lambda lib, a: lib.amax(a, (0, 2), keepdim=True), [distinct(2, 3, 4)]),
    "amax_ties": (lambda lib, a: a.amax(1), [np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])]),
    "amin": (lambda lib, a: a.amin(), [distinct(3, 4)]),
    "amin_ties": (lambda lib, a: lib.amin(a, 0), [np.array([[1.0, 3.0], [1.0, 2.0]])]),
    "argmax": (lambda lib, a: a.argmax(), [distinct(3, 4)]),
    "argmax_dim": (lambda lib, a: lib.argmax(a, 1), [distinct(3, 4)]),
    "argmax_keepdim": (lambda lib, a: a.argmax(0, keepdim=True), [distinct(3, 4)]),
    "argmin": (lambda lib, a: lib.argmin(a), [distinct(3, 4)]),
    "argmin_dim": (lambda lib, a: a.argmin(-1), [distinct(2, 3, 4)]),
    "argmax_ties_first": (lambda lib, a: a.argmax(), [np.array([1.0, 3.0, 3.0])]),
    "argmax_keepdim_no_dim": (lambda lib, a: a.argmax(keepdim=True), [distinct(3, 4)]),
    "amax_empty_kept_dim": (lambda lib, a: a.amax(1) + a.amin(-1), [np.zeros((0, 3))]),
    "max_empty_kept_dim": (lambda lib, a: a.max(1), [np.zeros((0, 3))]),
}

OTHER = {
    "prod_all": (lambda lib, a: a.prod(), [(2, 3)]),
    "prod_dim": (lambda lib, a: lib.prod(a, 1), [(2, 3)]),
    "prod_keepdim": (lambda lib, a: a.prod(0, keepdim=True), [(2, 3)]),
    "prod_one_zero": (lambda lib, a: a.prod(1), [np.array([[1.5, 0.0, 2.0], [1.0, 2.0, 3.0]])]),
    "prod_two_zeros": (lambda lib, a: a.prod(), [np.array([0.0, 2.0, 0.0])]),
    "prod_int": (lambda lib, a: a.prod(), [integers(4, low=1)]),
    "cumsum": (lambda lib, a: a.cumsum(1), [(2, 4)]),
    "cumsum_dim0": (lambda lib, a: lib.cumsum(a, dim=0), [(3, 2)]),
    "cumsum_int": (lambda lib, a: a.cumsum(0), [integers(4, dtype=np.int32)]),
    "cumsum_zero_dim": (lambda lib, a: a.cumsum(0), [()]),
    "logsumexp": (lambda lib, a: a.logsumexp(1), [(3, 4)]),
    "logsumexp_keepdim": (lambda lib, a: lib.logsumexp(a, (0, 1), keepdim=True), [(3, 4)]),
    "logsumexp_large": (lambda lib, a: (a * 1000).logsumexp(0), [(3, 4)]),
    "logsumexp_inf": (lambda lib, a: a.logsumexp(0),
                      [np.array([-math.inf, -math.inf, 1.0])]),
    "logsumexp_zero_dim": (lambda lib, a: a.logsumexp(0), [()]),
    "norm": (lambda lib, a: a.norm(), [(3, 4)]),
    "norm_dim": (lambda lib, a: lib.norm(a, dim=1), [(3, 4)]),
    "norm_p1": (lambda lib, a: a.norm(1, dim=0, keepdim=True), [(3, 4)]),
    "norm_p3": (lambda lib, a: a.norm(3), [(3, 4)]),
    "norm_inf": (lambda lib, a: a.norm(math.inf, dim=1), [distinct(3, 4)]),
    "norm_zero_row": (lambda lib, a: a.norm(dim=1), [np.array([[0.0, 0.0], [3.0, 4.0]])]),
    "all": (lambda lib, a: a.all(), [mask(3, 4)]),
    "all_dim": (lambda lib, a: lib.all(a, 1), [mask(3, 4)]),
    "any": (lambda lib, a: a.any(), [mask(3, 4)]),
    "any_dim_keepdim": (lambda lib, a: a.any(0, keepdim=True), [mask(3, 4)]),
    "all_float": (lambda lib, a: (a > 0).all(1), [(3, 4)]),
    "any_int": (lambda lib, a: a.any(), [integers(4, high=2)]),
}

SOFTMAX = {
    "softmax": (lambda lib, a: a.softmax(1), [(3, 4)]),
    "softmax_dim0": (lambda lib, a: lib.softmax(a, dim=0), [(3, 4)]),
    "softmax_large": (lambda lib, a: (a * 500).softmax(-1), [(3, 4)]),
    "softmax_3d": (lambda lib, a: a.softmax(1), [(2, 3, 4)]),
    "softmax_dtype": (lambda lib, a: lib.softmax(a, 0, dtype=lib.float64),
                      [normal(3, dtype=np.float32)]),
    "log_softmax": (lambda lib, a: a.log_softmax(1), [(3, 4)]),
    "log_softmax_large": (lambda lib, a: lib.log_softmax(a * 500, -1), [(3, 4)]),
    "log_softmax_dim0": (lambda lib, a: a.log_softmax(0), [(3, 4, 2)]),
    "softmax_float32": (lambda lib, a: a.softmax(-1), [normal(2, 5, dtype=np.float32)]),
    "softmax_zero_dim": (lambda lib, a: a.softmax(-1) + a.log_softmax(0), [()]),
    "softmax_empty": (lambda lib, a: (a.softmax(0), a.log_softmax(-1)), [np.zeros(0)]),
}


@pytest.mark.parametrize("fn, specs", cases(SUM_MEAN))
@pytest.mark.parametrize("device", DEVICES)
def test_sum_mean(fn, specs, device):
    compare(fn, specs, rtol=1e-5, device=device)


@pytest.mark.parametrize("fn, specs", cases(VAR_STD))
@pytest.mark.parametrize("device", DEVICES)
def test_var_std(fn, specs, device):
    compare(fn, specs, device=device)


@pytest.mark.parametrize("fn, specs", cases(EXTREMES))
@pytest.mark.parametrize("device", DEVICES)
def test_extremes(fn, specs, device):
    compare(fn, specs, device=device)


@pytest.mark.parametrize("fn, specs", cases(OTHER))
@pytest.mark.parametrize("device", DEVICES)
def test_other_reductions(fn, specs, device):
    compare(fn, specs, device=device)


@pytest.mark.parametrize("fn, specs", cases(SOFTMAX))
@pytest.mark.parametrize("device", DEVICES)
def test_softmax(fn, specs, device):
    compare(fn, specs, atol=1e-6, device=device)


def test_max_returns_named_values_and_indices():
    x = gradforge.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    values, indices = x.max(1)
    assert values.tolist() == [5.0, 7.0] and indices.tolist() == [1, 0]
    out = x.min(dim=0, keepdim=True)
    assert out.values.tolist() == [[1.0, 0.0, 2.0]] and out.indices.tolist() == [[0, 1, 0]]
    assert out.indices.dtype is gradforge.int64 and not out.indices.requires_grad


def test_max_gradient_flows_to_the_selected_element_only():
    x = gradforge.tensor([[1.0, 5.0, 5.0], [7.0, 0.0, 3.0]], requires_grad=True)
    x.max(1).values.sum().backward()
    assert x.grad.tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]


def test_softmax_is_stable_for_huge_inputs():
    x = gradforge.tensor([1e4, 0.0, -1e4])
    assert x.softmax(0).tolist() == [1.0, 0.0, 0.0]
    assert x.log_softmax(0).tolist() == [0.0, -1e4, -2e4]


def test_reduction_errors():
    x = gradforge.zeros(2, 3)
    with pytest.raises(IndexError, match=r"range of \[-2, 1\], but got 2"):
        x.sum(2)
    with pytest.raises(RuntimeError, match="appears multiple times"):
        x.sum((0, 0))
    with pytest.raises(RuntimeError, match="int64"):
        gradforge.tensor([1, 2]).mean()
    with pytest.raises(RuntimeError, match="numel"):
        gradforge.zeros(0).max()


@pytest.mark.parametrize("op, error, message", [
    (lambda x: x.max(), RuntimeError, r"max\(\): Expected reduction dim to be specified"),
    (lambda x: x.amin(), RuntimeError, r"amin\(\): Expected reduction dim to be specified"),
    (lambda x: x.max(0), IndexError, r"max\(\): Expected reduction dim 0 to have non-zero"),
    (lambda x: x.amax((0, 1)), IndexError, "reduction dim 0 to have non-zero size"),
    (lambda x: x.argmax(), IndexError, r"argmax\(\): Expected reduction dim to be specified"),
    (lambda x: x.argmin(0), IndexError, r"argmin\(\): Expected reduction dim 0"),
])
def test_extremes_over_an_empty_dim_raise_as_torch(op, error, message):
    # NumPy's own errors (ValueError, "attempt to get argmax of an empty sequence") name no
    # op and no dim; torch raises these, and reduces an empty tensor over a non-empty dim.
    torch = pytest.importorskip("torch")
    for lib in (torch, gradforge):
        with pytest.raises(error, match=message):
            op(lib.zeros(0, 3))


GRAD_CASES = {
    "Sum": [(lambda lib, a: a.sum(1), [(2, 3)]),
            (lambda lib, a: a.sum((0, 2), keepdim=True) * a.sum(), [(2, 3, 2)])],
    "AMax": [(lambda lib, a: a.amax(1), [distinct(3, 4)]),
             (lambda lib, a: a.max(), [distinct(3, 4)]),
             (lambda lib, a: a.amin((0, 1), keepdim=True), [distinct(2, 3, 2)])],
    "Prod": [(lambda lib, a: a.prod(1), [uniform(2, 3)]),
             (lambda lib, a: a.prod(), [np.array([1.5, 0.0, -2.0, 0.7])])],
    "Cumsum": [(lambda lib, a: a.cumsum(1) * a, [(2, 4)])],
    "LogSumExp": [(lambda lib, a: a.logsumexp(1), [(3, 4)])],
    "Norm2": [(lambda lib, a: a.norm(dim=1), [(3, 4)]), (lambda lib, a: a.norm(), [(5,)])],
    "Softmax": [(lambda lib, a: a.softmax(1), [(3, 4)])],
    "LogSoftmax": [(lambda lib, a: a.log_softmax(0), [(3, 4)])],
}

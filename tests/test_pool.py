"""Max, average and adaptive pooling (1-D and 2-D) against PyTorch: values, returned indices,
input gradients, second order; bad input; GRAD_CASES registers the finite-difference cases
(run by test_autograd_registry.py)."""
import numpy as np
import pytest
from kernel_emulation.cases import AVG_POOL, MAX_POOL
from oracle import DEVICES, Spec, compare, distinct

import gradforge

F = gradforge.nn.functional


def _window_kwargs(case, dilation=True):
    kwargs = case.torch_kwargs()
    if dilation:
        kwargs.update(dilation=(case.dh, case.dw), ceil_mode=case.ceil_mode)
    else:
        kwargs.update(ceil_mode=case.ceil_mode)
    return kwargs


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", MAX_POOL)
def test_max_pool2d_against_torch(case, device):
    kwargs = _window_kwargs(case)
    # A window lying wholly in the padding has no cell to credit: torch's backward refuses it.
    grad = (case.dh, case.dw) != (3, 3)
    compare(lambda lib, x: lib.nn.functional.max_pool2d(x, return_indices=True, **kwargs),
            [distinct(*case.shape)], grad=grad, device=device)


def test_max_pool2d_ties_pick_the_first_maximum():
    """Repeated maxima: the first in row-major window order, as torch (overlapping windows)."""
    compare(lambda lib, x: lib.nn.functional.max_pool2d(x, 3, 2, 1, return_indices=True),
            [Spec((2, 3, 7, 6), lambda rng, s, dt: rng.integers(-2, 2, s).astype(dt))])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape, kwargs", [
    ((2, 3, 9), {"kernel_size": 2}),
    ((1, 2, 10), {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2, "ceil_mode": True}),
    ((3, 7), {"kernel_size": (3,), "stride": [1]}),
], ids=["basic", "stride-pad-dilation-ceil", "unbatched"])
def test_max_pool1d_against_torch(shape, kwargs, device):
    compare(lambda lib, x: lib.nn.functional.max_pool1d(x, return_indices=True, **kwargs),
            [distinct(*shape)], device=device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("count_include_pad, divisor_override",
                         [(True, None), (False, None), (True, 3)])
@pytest.mark.parametrize("case", AVG_POOL)
def test_avg_pool2d_against_torch(case, count_include_pad, divisor_override, device):
    kwargs = _window_kwargs(case, dilation=False)
    compare(lambda lib, x: lib.nn.functional.avg_pool2d(
        x, count_include_pad=count_include_pad, divisor_override=divisor_override, **kwargs),
        [case.shape], device=device)


@pytest.mark.parametrize("shape, kwargs", [
    ((2, 3, 9), {"kernel_size": 2}),
    ((1, 2, 10), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True,
                  "count_include_pad": False}),
    ((3, 7), {"kernel_size": 3, "stride": 1, "padding": 1}),
], ids=["basic", "stride-pad-ceil-exclude-pad", "unbatched"])
def test_avg_pool1d_against_torch(shape, kwargs):
    compare(lambda lib, x: lib.nn.functional.avg_pool1d(x, **kwargs), [shape])


def test_unbatched_2d_and_float32():
    compare(lambda lib, x: lib.nn.functional.max_pool2d(x, 2, return_indices=True),
            [distinct(3, 6, 5)])
    compare(lambda lib, x: lib.nn.functional.avg_pool2d(x, 3, 2, 1), [(2, 3, 7, 6)],
            dtype=np.float32, atol=1e-6, rtol=1e-5)
    compare(lambda lib, x: lib.nn.functional.max_pool2d(x, 2), [distinct(2, 3, 8, 8)],
            dtype=np.float32, atol=0, rtol=0)


ADAPTIVE_2D = [((2, 3, 8, 6), (2, 3)), ((1, 2, 7, 5), (3, 2)), ((2, 2, 5, 7), 1),
               ((1, 2, 3, 4), (5, 7)), ((2, 3, 6, 5), (None, 4)), ((3, 5, 7), (4, 3))]
ADAPTIVE_IDS = ["divisible", "uneven", "global", "larger-than-input", "none-keeps", "unbatched"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape, size", ADAPTIVE_2D, ids=ADAPTIVE_IDS)
def test_adaptive_pool2d_against_torch(shape, size, device):
    compare(lambda lib, x: lib.nn.functional.adaptive_avg_pool2d(x, size), [shape],
            device=device)
    compare(lambda lib, x: lib.nn.functional.adaptive_max_pool2d(x, size, return_indices=True),
            [distinct(*shape)], device=device)


def test_adaptive_pool2d_to_an_empty_output():
    """A zero output size gives an empty result (torch's forward; its backward refuses)."""
    compare(lambda lib, x: lib.nn.functional.adaptive_avg_pool2d(x, (0, 2)), [(1, 2, 3, 4)],
            grad=False)
    compare(lambda lib, x: lib.nn.functional.adaptive_max_pool2d(x, (2, 0), True),
            [(1, 2, 3, 4)], grad=False)
    x = gradforge.randn(1, 2, 3, 4, requires_grad=True)
    F.adaptive_avg_pool2d(x, (0, 2)).sum().backward()
    assert x.grad.abs().sum().item() == 0


@pytest.mark.parametrize("pool", [
    lambda lib, x: lib.nn.functional.max_pool2d(x, 3, 2, 1, ceil_mode=True),
    lambda lib, x: lib.nn.functional.max_pool2d(x, 2, return_indices=True),
    lambda lib, x: lib.nn.functional.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
    lambda lib, x: lib.nn.functional.max_pool1d(x.flatten(2), 2),
    lambda lib, x: lib.nn.functional.avg_pool1d(x.flatten(2), 3, 2, 1),
    lambda lib, x: lib.nn.functional.adaptive_avg_pool2d(x, 2),
    lambda lib, x: lib.nn.functional.adaptive_max_pool2d(x, (2, 3), return_indices=True),
    lambda lib, x: lib.nn.functional.adaptive_max_pool1d(x.flatten(2), 3),
], ids=["max2d", "max2d-indices", "avg2d", "max1d", "avg1d", "adaptive-avg", "adaptive-max",
        "adaptive-max1d"])
def test_empty_batch_pools_to_an_empty_output(pool):
    """Batch size 0 is allowed (torch's "optional 0 dim batch size"), backward included."""
    compare(pool, [(0, 2, 5, 5)])


@pytest.mark.parametrize("shape, size", [((2, 3, 8), 4), ((1, 2, 7), 3), ((3, 5), 8)],
                         ids=["divisible", "uneven", "unbatched-larger"])
def test_adaptive_pool1d_against_torch(shape, size):
    compare(lambda lib, x: lib.nn.functional.adaptive_avg_pool1d(x, size), [shape])
    compare(lambda lib, x: lib.nn.functional.adaptive_max_pool1d(x, size, return_indices=True),
            [distinct(*shape)])


def test_top_level_names_are_torchs():
    assert gradforge.max_pool2d is F.max_pool2d
    assert gradforge.avg_pool1d is F.avg_pool1d
    assert gradforge.adaptive_avg_pool1d is F.adaptive_avg_pool1d


def test_indices_never_require_grad():
    x = gradforge.randn(1, 2, 4, 4, requires_grad=True)
    out, idx = F.max_pool2d(x, 2, return_indices=True)
    assert out.requires_grad and not idx.requires_grad and idx.dtype == gradforge.int64
    out.sum().backward()
    assert x.grad.sum().item() == 8


def _grad_of(pool):
    """``v -> d/dx sum(pool(x) * v)``: the pool's backward Function as a function of v."""
    def fn(lib, x, v):
        return lib.autograd.grad((pool(x) * v).sum(), x, create_graph=True)[0]
    return fn


# Finite differences, first and second order (float64), run by test_autograd_registry.py,
# for every Function of ops/pool.py.
GRAD_CASES = {
    "MaxPool2d": [(lambda lib, x: lib.nn.functional.max_pool2d(x, 3, 2, 1), [distinct(1, 2, 5, 6)]),
                  (lambda lib, x: lib.nn.functional.max_pool1d(x, 2, dilation=2, ceil_mode=True),
                   [distinct(2, 2, 7)])],
    "AdaptiveMaxPool2d": [(lambda lib, x: lib.nn.functional.adaptive_max_pool2d(x, (3, 2)),
                           [distinct(1, 2, 5, 5)])],
    "MaxPoolScatter": [
        (_grad_of(lambda x: F.max_pool2d(x, 2, 1)), [distinct(1, 2, 4, 5), (1, 2, 3, 4)]),
        (_grad_of(lambda x: F.adaptive_max_pool2d(x, 3)), [distinct(1, 1, 4, 5), (1, 1, 3, 3)]),
    ],
    "AvgPool2d": [(lambda lib, x: lib.nn.functional.avg_pool2d(
        x, 3, 2, 1, ceil_mode=True, count_include_pad=False) ** 2, [(1, 2, 6, 5)])],
    "AvgPool2dBackward": [
        (_grad_of(lambda x: F.avg_pool2d(x, (2, 3), 1, divisor_override=4) ** 2),
         [(1, 2, 4, 5), (1, 2, 3, 3)]),
    ],
}


def test_second_order_against_torch():
    """Gradients of gradient norms through max and average pooling."""
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(5).permutation(60).reshape(1, 3, 4, 5) * 0.1
    out = []
    for lib in (torch, gradforge):
        xt = lib.tensor(x, requires_grad=True)
        y = (lib.nn.functional.max_pool2d(xt, 2, 1) ** 2).sum() + (lib.nn.functional.avg_pool2d(
            xt, 3, 1, 1, count_include_pad=False) ** 3).sum()
        (g,) = lib.autograd.grad(y, xt, create_graph=True)
        (g ** 2).sum().backward()
        out.append((g.detach().numpy(), xt.grad.numpy()))
    for a, b in zip(*out):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("call, match", [
    (lambda x: F.max_pool2d(x, 3, padding=2),
     "pad should be at most half of effective kernel size, but got pad=2, kernel_size=3"),
    (lambda x: F.avg_pool2d(x, 3, padding=2), "pad should be at most half"),
    (lambda x: F.max_pool2d(x, 7), (r"Given input size: \(5x5\). Calculated output size: "
                                   r"\(0x0\). Output size is too small")),
    (lambda x: F.avg_pool2d(x, (2, 7)), "Output size is too small"),
    (lambda x: F.max_pool2d(x, 2, stride=0), r"stride should be greater than zero"),
    (lambda x: F.max_pool2d(x, 0), r"kernel size should be greater than zero"),
    (lambda x: F.avg_pool2d(x, 2, divisor_override=0), "divisor must be not zero"),
    (lambda x: F.max_pool2d(x[0, 0], 2), (r"max_pool2d: Expected 3D or 4D \(batch mode\) "
                                         r"tensor with optional 0 dim batch size for input, "
                                         r"but got: \[5, 5\]")),
    (lambda x: F.avg_pool2d(x[:, :0], 2), r"optional 0 dim batch size .* \[2, 0, 5, 5\]"),
    (lambda x: F.max_pool1d(x, 2), r"max_pool1d: .*2D or 3D .* but got: \[2, 4, 5, 5\]"),
    (lambda x: F.avg_pool1d(x, 2), r"avg_pool1d: .*2D or 3D .* but got: \[2, 4, 5, 5\]"),
    (lambda x: F.avg_pool2d(x[0, 0], 2), r"avg_pool2d: .* but got: \[5, 5\]"),
    (lambda x: F.max_pool2d(x, (2, 2, 2)), (r"kernel_size must either be a single int, or a "
                                           r"tuple of 2 ints")),
    (lambda x: F.max_pool2d(x.long(), 2), "expected a floating point input, got gradforge.int64"),
    (lambda x: F.adaptive_avg_pool2d(x[0, 0], 2), r"Expected 3D or 4D tensor, but got \[5, 5\]"),
    (lambda x: F.adaptive_max_pool2d(x[0, 0, 0], 2), r"Expected 3D or 4D tensor, but got \[5\]"),
    (lambda x: F.adaptive_avg_pool2d(x, (2, 2, 2)), "output_size must be 2"),
    (lambda x: F.adaptive_avg_pool1d(x[0, 0, 0], 2), r"Expected 2D or 3D tensor, but got \[5\]"),
    (lambda x: F.adaptive_max_pool2d(x, (-1, 2)), (r"output_size must be greater than or equal "
                                                  r"to 0 but received \(-1, 2\)")),
])
def test_bad_input(call, match):
    with pytest.raises(RuntimeError, match=match):
        call(gradforge.zeros(2, 4, 5, 5))


def test_bad_input_is_refused_by_torch_too():
    torch = pytest.importorskip("torch")
    x = torch.zeros(2, 4, 5, 5)
    tF = torch.nn.functional
    for call in (lambda: tF.max_pool2d(x, 3, padding=2), lambda: tF.avg_pool2d(x, 7),
                 lambda: tF.avg_pool2d(x, 2, divisor_override=0),
                 lambda: tF.max_pool1d(x, 2), lambda: tF.adaptive_avg_pool2d(x, (2, 2, 2))):
        with pytest.raises(RuntimeError):
            call()


def test_changing_returned_indices_leaves_the_gradient_alone():
    x = gradforge.tensor(np.arange(16.0).reshape(1, 1, 4, 4), requires_grad=True)
    out, idx = F.max_pool2d(x, 2, return_indices=True)
    idx.zero_()
    out.sum().backward()
    assert x.grad.reshape(-1).tolist() == [0.0] * 5 + [1.0, 0, 1.0] + [0.0] * 5 + [1.0, 0, 1.0]

"""conv1d/conv2d and conv_transpose1d/2d against PyTorch (forward and every gradient), second
order, batch chunking and bad input; GRAD_CASES registers the finite-difference cases of the
three order-closing Functions (run by test_autograd_registry.py)."""
import numpy as np
import pytest
from oracle import DEVICES, compare, make_inputs

import gradforge
import gradforge.ops.conv as conv_ops

# torch warns that an even 'same' kernel pads a copy of the input (so does gradforge, silently).
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")

# (input shape, weight shape, bias?, kwargs): awkward geometries, float64 against torch.
CONV2D = {
    "batch1-odd-nonsquare": ((1, 3, 5, 7), (4, 3, 3, 3), True, {}),
    "stride-padding": ((2, 2, 7, 6), (3, 2, 3, 2), True, {"stride": (2, 3), "padding": (1, 2)}),
    "dilation": ((2, 2, 8, 9), (3, 2, 3, 3), False, {"dilation": (2, 3), "padding": 1}),
    "groups": ((2, 4, 5, 5), (6, 2, 3, 3), True, {"groups": 2, "padding": 1}),
    "depthwise": ((2, 3, 6, 5), (6, 1, 3, 3), True, {"groups": 3, "stride": 2}),
    "kernel1": ((2, 3, 4, 5), (2, 3, 1, 1), True, {}),
    "kernel1-stride2": ((1, 3, 5, 4), (2, 3, 1, 1), False, {"stride": 2}),
    "kernel-equals-input": ((2, 2, 4, 3), (3, 2, 4, 3), True, {}),
    "kernel-equals-padded-input": ((1, 1, 3, 3), (2, 1, 5, 5), True, {"padding": 1}),
    "stride-gt-kernel": ((1, 2, 9, 8), (2, 2, 2, 3), True, {"stride": (4, 3)}),
    "same-odd": ((2, 2, 5, 6), (3, 2, 3, 3), True, {"padding": "same"}),
    "same-even-kernel": ((2, 2, 5, 6), (3, 2, 4, 2), True, {"padding": "same"}),
    "same-even-dilated": ((1, 2, 7, 6), (2, 2, 2, 3), False, {"padding": "same",
                                                             "dilation": (3, 2)}),
    "valid": ((2, 2, 5, 6), (3, 2, 3, 3), True, {"padding": "valid"}),
    "unbatched": ((3, 5, 6), (2, 3, 3, 3), True, {"padding": 1}),
}

CONV1D = {
    "basic": ((2, 3, 7), (4, 3, 3), True, {}),
    "stride-pad-dilation": ((1, 2, 11), (3, 2, 3), True, {"stride": 2, "padding": 2,
                                                          "dilation": 2}),
    "groups": ((2, 4, 6), (4, 2, 2), False, {"groups": 2}),
    "same-even": ((2, 2, 6), (2, 2, 4), True, {"padding": "same"}),
    "unbatched": ((3, 8), (2, 3, 3), True, {"stride": 3}),
}

# (input shape, weight shape (C_in, C_out/groups, *k), bias?, kwargs)
CONV_TRANSPOSE2D = {
    "basic": ((2, 3, 4, 5), (3, 2, 3, 3), True, {}),
    "stride-padding": ((1, 2, 3, 4), (2, 3, 3, 2), True, {"stride": (2, 3), "padding": (1, 0)}),
    "output-padding": ((2, 2, 3, 3), (2, 2, 3, 3), True, {"stride": 2, "padding": 1,
                                                          "output_padding": 1}),
    "output-padding-ge-stride": ((1, 2, 4, 3), (2, 1, 3, 2), True, {"dilation": 3,
                                                                    "output_padding": (2, 1)}),
    "groups-dilation": ((2, 4, 3, 4), (4, 1, 2, 3), False, {"groups": 2, "dilation": (2, 1),
                                                           "stride": 2}),
    "stride1-padding": ((2, 2, 5, 4), (2, 3, 3, 3), True, {"padding": 1}),
    "stride1-padding-gt-kernel": ((1, 2, 6, 6), (2, 2, 2, 2), True, {"padding": 2}),
    "unbatched": ((2, 3, 3), (2, 2, 2, 2), True, {"stride": 2}),
}

CONV_TRANSPOSE1D = {
    "basic": ((2, 3, 5), (3, 2, 3), True, {"stride": 2, "output_padding": 1}),
    "groups-dilation": ((1, 4, 4), (4, 2, 2), False, {"groups": 2, "dilation": 2, "padding": 1}),
    "unbatched": ((2, 6), (2, 3, 4), True, {}),
}


def _conv_case(op, x_shape, w_shape, bias, kwargs):
    specs = [x_shape, w_shape] + ([(w_shape[0] if "transpose" not in op else
                                    w_shape[1] * kwargs.get("groups", 1),)] if bias else [])

    def fn(lib, x, w, b=None):
        return getattr(lib.nn.functional, op)(x, w, b, **kwargs)
    return fn, specs


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op, case", [("conv2d", c) for c in CONV2D.values()]
                         + [("conv1d", c) for c in CONV1D.values()]
                         + [("conv_transpose2d", c) for c in CONV_TRANSPOSE2D.values()]
                         + [("conv_transpose1d", c) for c in CONV_TRANSPOSE1D.values()],
                         ids=[f"conv2d-{k}" for k in CONV2D] + [f"conv1d-{k}" for k in CONV1D]
                         + [f"conv_transpose2d-{k}" for k in CONV_TRANSPOSE2D]
                         + [f"conv_transpose1d-{k}" for k in CONV_TRANSPOSE1D])
def test_against_torch(op, case, device):
    fn, specs = _conv_case(op, *case)
    compare(fn, specs, atol=1e-10, rtol=1e-9, device=device)


ALL_CASES = ([("conv2d", c) for c in CONV2D.values()] + [("conv1d", c) for c in CONV1D.values()]
             + [("conv_transpose2d", c) for c in CONV_TRANSPOSE2D.values()]
             + [("conv_transpose1d", c) for c in CONV_TRANSPOSE1D.values()])


@pytest.fixture(params=[0, 10 ** 9], ids=["per-sample", "batch-inner"])
def column_layout(request, monkeypatch):
    """The CPU backend with one column layout for every grid size (ops/conv.py)."""
    from gradforge.backend.cpu import CPUBackend
    monkeypatch.setattr(CPUBackend, "batch_inner_pixels", request.param)
    return request.param


@pytest.mark.parametrize("op, case", ALL_CASES)
def test_both_column_layouts_against_torch(op, case, column_layout):
    """The default picks a layout by grid size; each layout alone gives torch's numbers."""
    fn, specs = _conv_case(op, *case)
    compare(fn, specs, atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize("fn, specs", [
    (lambda lib, x, w, b: lib.nn.functional.conv2d(x, w, b, stride=2, padding=1),
     [(0, 3, 5, 5), (4, 3, 3, 3), (4,)]),
    (lambda lib, x, w, b: lib.nn.functional.conv1d(x, w, b, groups=3),
     [(0, 3, 5), (6, 1, 3), (6,)]),
    (lambda lib, x, w, b: lib.nn.functional.conv_transpose2d(x, w, b, stride=2),
     [(0, 3, 4, 4), (3, 2, 3, 3), (2,)]),
    (lambda lib, x, w, b: lib.nn.functional.conv_transpose2d(x, w, b),
     [(0, 3, 4, 4), (3, 2, 3, 3), (2,)]),
], ids=["conv2d", "conv1d-groups", "conv_transpose2d-strided", "conv_transpose2d"])
def test_empty_batch_against_torch(fn, specs, column_layout):
    """Batch size 0: an empty output, zero weight gradient and the bias still in the graph."""
    compare(fn, specs)


def test_layouts_agree_with_each_other_on_a_chunked_batch(monkeypatch):
    """A batch-inner chunked convolution (forward, dX, dW) equals the per-sample one."""
    from gradforge.backend.cpu import CPUBackend
    x, w = make_inputs([(7, 4, 6, 5), (6, 2, 3, 3)], seed=5)
    chunks = conv_ops.column_chunks
    monkeypatch.setattr(conv_ops, "column_chunks",
                        lambda n, per_sample: chunks(n, per_sample, limit=3 * per_sample))
    results = []
    for pixels in (0, 10 ** 9):
        monkeypatch.setattr(CPUBackend, "batch_inner_pixels", pixels)
        xt = gradforge.tensor(x, requires_grad=True)
        wt = gradforge.tensor(w, requires_grad=True)
        y = gradforge.conv2d(xt, wt, stride=(1, 2), padding=1, groups=2)
        (y * gradforge.tensor(np.arange(y.numel()).reshape(y.shape) % 5)).sum().backward()
        results.append((y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
def test_float32_against_torch(op):
    case = (CONV2D if op == "conv2d" else CONV_TRANSPOSE2D)["groups" if op == "conv2d"
                                                          else "output-padding"]
    fn, specs = _conv_case(op, *case)
    compare(fn, specs, dtype=np.float32, atol=1e-5, rtol=1e-4)


def test_torch_api_names():
    """``gradforge.conv2d`` is the functional op, as ``torch.conv2d`` is."""
    assert gradforge.conv2d is gradforge.nn.functional.conv2d
    assert gradforge.conv_transpose1d is gradforge.nn.functional.conv_transpose1d


def test_batch_chunks_bound_the_columns(monkeypatch):
    """A tiny column budget splits the batch into chunks: the results do not change."""
    x, w = make_inputs([(5, 4, 6, 5), (6, 2, 3, 3)], seed=3)
    kwargs = {"padding": 1, "groups": 2}

    def run():
        xt = gradforge.tensor(x, requires_grad=True)
        wt = gradforge.tensor(w, requires_grad=True)
        y = gradforge.conv2d(xt, wt, **kwargs)
        t = gradforge.conv_transpose2d(y, wt, stride=1, padding=1, groups=2)
        (y.sum() + (t * gradforge.tensor(x)).sum()).backward()
        return y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy()

    whole = run()
    pieces = []
    chunks = conv_ops.column_chunks

    def small(n, per_sample):
        pieces.append(chunks(n, per_sample, limit=2 * per_sample))
        return pieces[-1]
    monkeypatch.setattr(conv_ops, "column_chunks", small)
    chunked = run()
    # forward, transposed forward, both input gradients and both weight gradients
    assert len(pieces) >= 4 and all(len(p) == 3 for p in pieces)
    for a, b in zip(whole, chunked):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_second_order_against_torch():
    """d/dx of a gradient norm through conv, conv_transpose and the weight gradient."""
    torch = pytest.importorskip("torch")
    x, w = make_inputs([(2, 4, 5, 5), (6, 2, 3, 3)], seed=4)
    out = []
    for lib in (torch, gradforge):
        xt = lib.tensor(x, requires_grad=True)
        wt = lib.tensor(w, requires_grad=True)
        y = lib.nn.functional.conv2d(xt, wt, stride=2, padding=1, groups=2)
        gx, gw = lib.autograd.grad((y ** 2).sum(), (xt, wt), create_graph=True)
        ((gx ** 2).sum() + (gw ** 3).sum()).backward()
        out.append([t.detach().numpy() for t in (gx, gw, xt.grad, wt.grad)])
    for a, b in zip(*out):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-10)


# Finite differences, first and second order (float64), run by test_autograd_registry.py,
# for every Function of ops/conv*.py.
GRAD_CASES = {
    "Conv2d": [
        (lambda lib, x, w, b: lib.nn.functional.conv2d(x, w, b, stride=(2, 1), padding=1,
                                                      dilation=(1, 2), groups=2),
         [(1, 4, 5, 6), (2, 2, 2, 3), (2,)]),
        (lambda lib, x, w: lib.nn.functional.conv1d(x, w, padding="same"), [(2, 2, 5), (2, 2, 2)]),
        # A batch of 8 or more: the bias is added as a spread (1, C, H, W) block.
        (lambda lib, x, w, b: lib.nn.functional.conv2d(x, w, b, padding=1),
         [(8, 1, 2, 3), (2, 1, 2, 2), (2,)]),
    ],
    "ConvTranspose2d": [
        (lambda lib, x, w, b: lib.nn.functional.conv_transpose2d(
            x, w, b, stride=2, padding=1, output_padding=(1, 0), groups=2),
         [(1, 4, 3, 2), (4, 1, 3, 2), (2,)]),
        (lambda lib, x, w: lib.nn.functional.conv_transpose2d(x, w, dilation=2,
                                                              output_padding=1),
         [(1, 2, 3, 2), (2, 1, 2, 2)]),
    ],
    # The weight gradient as a function of its own: the gradient of sum(y * v) with respect
    # to w is ConvWeightGrad(x, v).
    "Conv2dWeightGrad": [
        (lambda lib, x, w, v: lib.autograd.grad(
            (lib.nn.functional.conv2d(x, w, stride=2, padding=(0, 1)) * v).sum(), w,
            create_graph=True)[0], [(1, 2, 5, 4), (2, 2, 3, 2), (1, 2, 2, 3)]),
        (lambda lib, x, w, v: lib.autograd.grad(
            (lib.nn.functional.conv_transpose2d(x, w, dilation=2, output_padding=1) * v).sum(),
            w, create_graph=True)[0], [(1, 2, 2, 2), (2, 1, 2, 2), (1, 1, 5, 5)]),
    ],
}


def test_weight_grad_closes_under_differentiation():
    """The weight gradient's own backward is conv / conv_transpose: no other node appears."""
    x = gradforge.randn(1, 2, 5, 5, dtype=gradforge.float64, requires_grad=True)
    w = gradforge.randn(3, 2, 3, 3, dtype=gradforge.float64, requires_grad=True)
    (gw,) = gradforge.autograd.grad(gradforge.conv2d(x, w, padding=1).sum(), w,
                                    create_graph=True)
    assert type(gw.grad_fn).__name__ == "Conv2dWeightGrad"
    (gx,) = gradforge.autograd.grad((gw ** 2).sum(), x, create_graph=True)
    assert gx.shape == x.shape and gx.requires_grad


# -- bad input ------------------------------------------------------------------------------
F = gradforge.nn.functional


@pytest.mark.parametrize("call, error, match", [
    (lambda x: F.conv2d(gradforge.zeros(4, 5), gradforge.zeros(6, 2, 3, 3)), RuntimeError,
     (r"Expected 3D \(unbatched\) or 4D \(batched\) input to conv2d, but got input of size: "
     r"\[4, 5\]")),
    (lambda x: F.conv1d(x, gradforge.zeros(6, 4, 3)), RuntimeError,
     (r"Expected 2D \(unbatched\) or 3D \(batched\) input to conv1d, but got input of size: "
     r"\[2, 4, 5, 5\]")),
    (lambda x: F.conv2d(x, gradforge.zeros(6, 2, 3, 3)), RuntimeError,
     (r"Given groups=1, weight of size \[6, 2, 3, 3\], expected input\[2, 4, 5, 5\] to have 2 "
     r"channels, but got 4 channels instead")),
    (lambda x: F.conv2d(x, gradforge.zeros(6, 4, 3, 3), groups=3), RuntimeError,
     (r"Given groups=3, weight of size \[6, 4, 3, 3\], expected input\[2, 4, 5, 5\] to have 12 "
     r"channels, but got 4 channels instead")),
    (lambda x: F.conv2d(x, gradforge.zeros(5, 2, 3, 3), groups=2), RuntimeError,
     (r"expected weight to be divisible by 2 at dimension 0, but got weight of size "
     r"\[5, 2, 3, 3\]")),
    (lambda x: F.conv2d(x, gradforge.zeros(6, 4, 7, 7)), RuntimeError,
     r"padded input size per channel: \(5 x 5\). Kernel size: \(7 x 7\)"),
    (lambda x: F.conv2d(x, gradforge.zeros(6, 4, 3, 3), dilation=3), RuntimeError,
     r"Kernel size: \(7 x 7\)"),
    (lambda x: F.conv2d(x, gradforge.zeros(6, 4, 3, 3), padding="same", stride=2), RuntimeError,
     "padding='same' is not supported for strided convolutions"),
    (lambda x: F.conv2d(x, gradforge.zeros(6, 4, 3, 3), padding="full"), RuntimeError,
     "Invalid padding string: 'full'"),
    (lambda x: F.conv2d(x, gradforge.zeros(6, 4, 3, 3), padding=-1), RuntimeError,
     "negative padding"),
    (lambda x: F.conv2d(x, gradforge.zeros(6, 4, 3, 3), stride=0), RuntimeError,
     "non-positive stride"),
    (lambda x: F.conv2d(x, gradforge.zeros(6, 4, 3, 3), groups=0), RuntimeError,
     "non-positive groups"),
    (lambda x: F.conv2d(x, gradforge.zeros(6, 4, 3, 3), stride=(1, 1, 1)), RuntimeError,
     r"list of 2 values .* but got stride=\[1, 1, 1\]"),
    (lambda x: F.conv2d(x, gradforge.zeros(6, 4, 3, 3), gradforge.zeros(5)), RuntimeError,
     r"expected bias to be 1-dimensional with 6 elements, but got bias of size \[5\]"),
    (lambda x: F.conv2d(x, gradforge.zeros(6, 4, 3)), RuntimeError,
     r"expected a 4-D weight, but got weight of size \[6, 4, 3\]"),
    (lambda x: F.conv2d(x.double(), gradforge.zeros(6, 4, 3, 3)), RuntimeError,
     "input gradforge.float64 and weight gradforge.float32"),
    (lambda x: F.conv_transpose2d(x, gradforge.zeros(3, 2, 3, 3)), RuntimeError,
     (r"Given transposed=1, weight of size \[3, 2, 3, 3\], expected input\[2, 4, 5, 5\] to have "
     r"3 channels, but got 4 channels instead")),
    (lambda x: F.conv_transpose2d(x, gradforge.zeros(4, 2, 3, 3), output_padding=1),
     RuntimeError, r"output padding must be smaller than either stride or dilation"),
    (lambda x: F.conv_transpose2d(x, gradforge.zeros(4, 2, 3, 3), groups=3), RuntimeError,
     r"expected weight to be divisible by 3 at dimension 0"),
    (lambda x: F.conv_transpose2d(gradforge.zeros(1, 4, 1, 1), gradforge.zeros(4, 2, 3, 3),
                                  padding=2), RuntimeError,
     (r"Given input size per channel: \(1 x 1\). Calculated output size per channel: "
     r"\(-1 x -1\). Output size is too small")),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call(gradforge.zeros(2, 4, 5, 5))


def test_bad_input_is_refused_by_torch_too():
    """Each refused call above is refused by torch as well (same error type)."""
    torch = pytest.importorskip("torch")
    x = torch.zeros(2, 4, 5, 5)
    tF = torch.nn.functional
    for call in (lambda: tF.conv2d(x, torch.zeros(6, 2, 3, 3)),
                 lambda: tF.conv2d(x, torch.zeros(6, 4, 7, 7)),
                 lambda: tF.conv2d(x, torch.zeros(6, 4, 3, 3), padding="same", stride=2),
                 lambda: tF.conv_transpose2d(x, torch.zeros(4, 2, 3, 3), output_padding=1)):
        with pytest.raises(RuntimeError):
            call()

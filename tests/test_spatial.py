"""pad, interpolate, unfold and fold against PyTorch (values and gradients), finite
differences of first and second order, and bad input."""
import numpy as np
import pytest
from module_oracle import check_module
from oracle import DEVICES, Spec, check_grad, compare

import gradforge

F = gradforge.nn.functional

PAD = {
    "constant-last-dim": ((2, 3, 4), (1, 2), "constant", None),
    "constant-two-dims-value": ((2, 3, 4, 5), (1, 2, 0, 3), "constant", 1.5),
    "constant-crop": ((2, 3, 4, 5), (-1, 2, 1, -2), "constant", None),
    "constant-three-dims": ((2, 3, 4), (1, 0, 0, 1, 2, 1), "constant", -2.0),
    "constant-1d": ((5,), (2, 1), "constant", None),
    "reflect-1d": ((2, 3, 6), (2, 5), "reflect", None),
    "reflect-2d": ((1, 2, 4, 5), (3, 1, 2, 3), "reflect", None),
    "reflect-2d-unbatched": ((2, 4, 5), (1, 1, 3, 0), "reflect", None),
    "reflect-3d": ((1, 1, 3, 4, 3), (1, 2, 3, 0, 2, 1), "reflect", None),
    "replicate-1d": ((2, 5), (3, 1), "replicate", None),
    "replicate-2d": ((2, 2, 3, 4), (2, 5, 4, 1), "replicate", None),
    "circular-2d": ((1, 2, 4, 5), (5, 2, 1, 4), "circular", None),
    "circular-3d": ((1, 1, 3, 4, 3), (1, 2, 3, 0, 2, 1), "circular", None),
    # Negative pads crop in every mode; circular wraps around the cropped axis (torch).
    "reflect-crop": ((2, 3, 5), (-1, 2), "reflect", None),
    "replicate-crop-2d": ((1, 2, 4, 5), (2, -3, -1, 1), "replicate", None),
    "circular-crop": ((2, 3, 5), (-2, 1), "circular", None),
    "circular-crop-2d": ((1, 2, 4, 5), (1, -2, -1, -1), "circular", None),
    "replicate-empty-batch": ((0, 2, 4), (1, 2), "replicate", None),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape, pads, mode, value", PAD.values(), ids=PAD.keys())
def test_pad_against_torch(shape, pads, mode, value, device):
    compare(lambda lib, x: lib.nn.functional.pad(x, pads, mode=mode, value=value), [shape],
            device=device)


INTERPOLATE = {
    "nearest-up-1d": ((2, 3, 5), {"size": 12}),
    "nearest-down-2d": ((1, 2, 7, 9), {"size": (4, 5)}),
    "nearest-scale-2": ((1, 2, 3, 4), {"scale_factor": 2}),
    "nearest-scale-fractional": ((1, 2, 5, 4), {"scale_factor": (1.7, 0.6)}),
    "nearest-recompute-scale": ((1, 2, 5, 4), {"scale_factor": 1.7,
                                               "recompute_scale_factor": True}),
    "nearest-3d": ((1, 1, 3, 4, 2), {"size": (5, 3, 4)}),
    "nearest-exact": ((1, 2, 5, 7), {"size": (8, 3), "mode": "nearest-exact"}),
    "linear": ((2, 2, 5), {"size": 9, "mode": "linear"}),
    "linear-align": ((2, 2, 5), {"size": 3, "mode": "linear", "align_corners": True}),
    "bilinear-up": ((1, 2, 4, 5), {"size": (7, 9), "mode": "bilinear"}),
    "bilinear-down": ((1, 2, 7, 9), {"size": (3, 4), "mode": "bilinear"}),
    "bilinear-align": ((1, 2, 4, 5), {"size": (7, 3), "mode": "bilinear",
                                      "align_corners": True}),
    "bilinear-scale": ((2, 1, 3, 4), {"scale_factor": (2.5, 1.5), "mode": "bilinear"}),
    "bilinear-to-one": ((1, 1, 4, 5), {"size": (1, 5), "mode": "bilinear",
                                       "align_corners": True}),
    "trilinear": ((1, 1, 3, 4, 2), {"size": (5, 3, 4), "mode": "trilinear"}),
    "area": ((1, 2, 7, 6), {"size": (3, 4), "mode": "area"}),
    "area-1d": ((1, 2, 9), {"scale_factor": 0.5, "mode": "area"}),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape, kwargs", INTERPOLATE.values(), ids=INTERPOLATE.keys())
def test_interpolate_against_torch(shape, kwargs, device):
    """Values and gradients; ``view(-1)`` also checks the result is contiguous, as torch's."""
    compare(lambda lib, x: lib.nn.functional.interpolate(x, **kwargs).view(-1), [shape],
            device=device)


@pytest.mark.parametrize("kwargs", [
    {"scale_factor": 1.7}, {"size": (5, 3), "mode": "nearest-exact"},
    {"size": (9, 7), "mode": "bilinear"}, {"scale_factor": 0.7, "mode": "bilinear",
                                           "align_corners": True}])
def test_interpolate_float32_indices_match_torch(kwargs):
    """Sampling positions are computed in float32 as torch does, so no pixel differs."""
    compare(lambda lib, x: lib.nn.functional.interpolate(x, **kwargs), [(1, 2, 11, 13)],
            dtype=np.float32, atol=1e-6, rtol=1e-5)


FOLD = {
    "basic": ((2, 2, 5, 6), {"kernel_size": 3}),
    "stride-padding-dilation": ((1, 3, 7, 6), {"kernel_size": (2, 3), "stride": (2, 1),
                                               "padding": (1, 2), "dilation": (2, 1)}),
    "kernel1": ((2, 2, 3, 4), {"kernel_size": 1}),
    "unbatched": ((2, 4, 5), {"kernel_size": 2, "stride": 2}),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape, kwargs", FOLD.values(), ids=FOLD.keys())
def test_unfold_fold_against_torch(shape, kwargs, device):
    compare(lambda lib, x: lib.nn.functional.unfold(x, **kwargs), [shape], device=device)
    cols = gradforge.nn.functional.unfold(gradforge.zeros(shape), **kwargs)
    compare(lambda lib, c: lib.nn.functional.fold(c, shape[-2:], **kwargs), [tuple(cols.shape)],
            device=device)


def test_nearest_keeps_integer_dtypes():
    compare(lambda lib, x: lib.nn.functional.interpolate(x, scale_factor=2),
            [Spec((1, 2, 3, 3), lambda rng, s, dt: rng.integers(0, 255, s).astype(np.uint8))])


def test_unfold_of_a_1x1_window_is_a_tensor_of_its_own():
    x = gradforge.randn(1, 2, 3, 3)
    cols = F.unfold(x, 1)
    cols.add_(1.0)
    np.testing.assert_allclose(cols.numpy(), x.reshape(1, 2, 9).numpy() + 1.0)


# Finite differences, first and second order (float64), run by test_autograd_registry.py,
# for every Function of ops/spatial.py.
GRAD_CASES = {
    "ConstantPad": [(lambda lib, x: lib.nn.functional.pad(x, (1, -1, 2, 0), value=0.5) ** 2,
                     [(1, 2, 3, 4)])],
    "Unfold": [(lambda lib, x: lib.nn.functional.unfold(x, 2, dilation=(1, 2), padding=1,
                                                        stride=2) ** 2, [(1, 2, 4, 5)])],
    "Fold": [(lambda lib, c: lib.nn.functional.fold(c, (4, 5), (2, 3), padding=(1, 0),
                                                    stride=(1, 2)) ** 2, [(1, 12, 10)])],
}

# Compositions of tensor ops (gathers and blends): checked the same way.
COMPOSITES = [
    (lambda lib, x: lib.nn.functional.pad(x, (2, 1, 1, 2), mode="reflect") ** 2, [(1, 1, 3, 4)]),
    (lambda lib, x: lib.nn.functional.pad(x, (2, 1), mode="replicate") ** 2, [(1, 2, 3)]),
    (lambda lib, x: lib.nn.functional.pad(x, (2, 1, 1, 2), mode="circular") ** 2,
     [(1, 1, 3, 4)]),
    (lambda lib, x: lib.nn.functional.interpolate(x, scale_factor=1.5) ** 2, [(1, 1, 3, 4)]),
    (lambda lib, x: lib.nn.functional.interpolate(x, size=(5, 3), mode="bilinear") ** 2,
     [(1, 1, 3, 4)]),
    (lambda lib, x: lib.nn.functional.interpolate(x, size=4, mode="linear",
                                                  align_corners=True) ** 2, [(1, 2, 3)]),
]


@pytest.mark.parametrize("fn, specs", COMPOSITES)
def test_finite_differences_of_composites(fn, specs):
    check_grad(fn, specs)


@pytest.mark.parametrize("call, error, match", [
    (lambda x: F.pad(x, (1,)), RuntimeError, "Padding length must be divisible by 2"),
    (lambda x: F.pad(x, (1,) * 10), RuntimeError,
     ("Padding length should be less than or equal to two times the input dimension but got "
     "padding length 10 and input of dimension 4")),
    (lambda x: F.pad(x, (-6, 1)), RuntimeError,
     r"crops more than the input holds: padding \(-6, 1\) for input of size \[2, 4, 5, 5\]"),
    (lambda x: F.pad(x, (5, 5, 1, 1), mode="reflect"), RuntimeError,
     (r"Padding size should be less than the corresponding input dimension, but got: padding "
     r"\(5, 5\) at dimension 3 of input \[2, 4, 5, 5\]")),
    (lambda x: F.pad(x, (1, 1), mode="reflect"), NotImplementedError,
     "Padding size 2 is not supported for 4D input tensor."),
    (lambda x: F.pad(x[0, 0, 0], (1, 1), mode="replicate"), NotImplementedError,
     "Padding size 2 is not supported for 1D input tensor."),
    (lambda x: F.pad(x, (1, 1, 1, 1), mode="wrap"), NotImplementedError,
     "Unrecognised padding mode wrap"),
    (lambda x: F.pad(x, (1, 1, 1, 1), mode="replicate", value=1.0), RuntimeError,
     'Padding mode "replicate" doesn\'t take in value argument'),
    (lambda x: F.pad(x, (6, 1, 1, 1), mode="circular"), RuntimeError,
     "wrapping around more than once"),
    (lambda x: F.pad(x[:, :, :, :0], (1, 1, 1, 1), mode="replicate"), RuntimeError,
     r"possibly 0 batch size and other non-zero dimensions for input, but got: \[2, 4, 5, 0\]"),
    (lambda x: F.interpolate(x, size=3, scale_factor=2), ValueError,
     "only one of size or scale_factor should be defined"),
    (lambda x: F.interpolate(x), ValueError, "either size or scale_factor should be defined"),
    (lambda x: F.interpolate(x, size=3, align_corners=True), ValueError,
     "align_corners option can only be set with the interpolating modes"),
    (lambda x: F.interpolate(x[0], size=3, mode="bilinear"), NotImplementedError,
     "Got 3D input, but bilinear mode needs 4D input"),
    (lambda x: F.interpolate(x, size=(3, 3, 3)), ValueError,
     r"spatial dimensions of \[5, 5\] and output size of \(3, 3, 3\)"),
    (lambda x: F.interpolate(x, scale_factor=0.1), RuntimeError,
     (r"Input and output sizes should be greater than 0, but got input \(5, 5\) output "
     r"\(0, 0\)")),
    (lambda x: F.interpolate(x.long(), size=3, mode="bilinear"), RuntimeError,
     "mode 'bilinear' needs a floating point input, got gradforge.int64"),
    (lambda x: F.interpolate(x, size=3, mode="bicubic"), NotImplementedError,
     "mode 'bicubic' is not supported"),
    (lambda x: F.unfold(x[0, 0], 2), RuntimeError,
     r"Only 3D or 4D input Tensors are supported \(got 2D input of size \[5, 5\]\)"),
    (lambda x: F.unfold(x, 7), RuntimeError,
     r"Given input with spatial size \(5, 5\), kernel_size=\(7, 7\).*as \(-1, -1\)"),
    (lambda x: F.fold(gradforge.zeros(2, 7, 9), 4, 2), RuntimeError,
     (r"divisible by the product of kernel_size, but got input.size\(1\)=7 and "
     r"kernel_size=\(2, 2\)")),
    (lambda x: F.fold(gradforge.zeros(2, 8, 8), 4, 2), RuntimeError,
     r"calculated number of sliding blocks 3 \* 3 = 9, but got input.size\(2\)=8"),
    (lambda x: F.fold(x, 4, 2), RuntimeError,
     r"Expected 2D or 3D \(batch mode\) tensor .* but got: \[2, 4, 5, 5\]"),
    (lambda x: F.fold(gradforge.zeros(2, 8, 9), (4, 4, 4), 2), RuntimeError,
     "It is expected output_size equals to 2, but got size 3"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call(gradforge.zeros(2, 4, 5, 5))


def test_bad_input_is_refused_by_torch_too():
    torch = pytest.importorskip("torch")
    x = torch.zeros(2, 4, 5, 5)
    tF = torch.nn.functional
    for call, error in (
            (lambda: tF.pad(x, (5, 5, 1, 1), mode="reflect"), RuntimeError),
            (lambda: tF.pad(x, (1, 1), mode="reflect"), NotImplementedError),
            (lambda: tF.pad(x[:, :, :, :0], (1, 1, 1, 1), mode="replicate"), RuntimeError),
            (lambda: tF.interpolate(x, size=3, align_corners=True), ValueError),
            (lambda: tF.interpolate(x, scale_factor=0.1), RuntimeError),
            (lambda: tF.fold(torch.zeros(2, 8, 8), 4, 2), RuntimeError)):
        with pytest.raises(error):
            call()


UPSAMPLE = {
    "scale": lambda nn: nn.Upsample(scale_factor=2),
    "size-bilinear": lambda nn: nn.Upsample(size=(5, 7), mode="bilinear"),
    "scale-tuple-align": lambda nn: nn.Upsample(scale_factor=(1.5, 2), mode="bilinear",
                                                align_corners=True),
    "nearest2d": lambda nn: nn.UpsamplingNearest2d(size=6),
    "bilinear2d": lambda nn: nn.UpsamplingBilinear2d(scale_factor=2),
}


@pytest.mark.parametrize("make", UPSAMPLE.values(), ids=UPSAMPLE.keys())
def test_upsample_modules_match_torch(make):
    torch = pytest.importorskip("torch")
    assert repr(make(gradforge.nn)) == repr(make(torch.nn))
    check_module(lambda lib: make(lib.nn), lambda lib, m, x: m(x), [(2, 2, 3, 4)])

"""Pooling layers: repr equal to torch's, no parameters, forward and input gradients."""
import pytest
from module_oracle import check_module
from oracle import DEVICES, distinct

import gradforge

LAYERS = {
    "max2d": (lambda nn: nn.MaxPool2d(2), (2, 3, 6, 5)),
    "max2d-all-args": (lambda nn: nn.MaxPool2d((3, 2), stride=(2, 1), padding=1, dilation=(1, 2),
                                               ceil_mode=True), (2, 2, 7, 8)),
    "max1d": (lambda nn: nn.MaxPool1d(3, stride=2, padding=1), (2, 3, 9)),
    "avg2d": (lambda nn: nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
              (2, 2, 7, 6)),
    "avg2d-divisor": (lambda nn: nn.AvgPool2d((2, 3), divisor_override=5), (1, 2, 6, 6)),
    "avg1d": (lambda nn: nn.AvgPool1d(2, padding=1), (2, 2, 7)),
    "adaptive-avg2d": (lambda nn: nn.AdaptiveAvgPool2d((3, None)), (2, 2, 7, 5)),
    "adaptive-avg1d": (lambda nn: nn.AdaptiveAvgPool1d(4), (2, 2, 9)),
    "adaptive-max2d": (lambda nn: nn.AdaptiveMaxPool2d(3), (2, 2, 7, 5)),
    "adaptive-max1d": (lambda nn: nn.AdaptiveMaxPool1d(2), (2, 2, 5)),
}


@pytest.mark.parametrize("make, shape", LAYERS.values(), ids=LAYERS.keys())
def test_repr_matches_torch_and_no_state(make, shape):
    torch = pytest.importorskip("torch")
    g, t = make(gradforge.nn), make(torch.nn)
    assert repr(g) == repr(t)
    assert not g.state_dict() and not t.state_dict()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("make, shape", LAYERS.values(), ids=LAYERS.keys())
def test_forward_and_input_gradient_match_torch(make, shape, device):
    check_module(lambda lib: make(lib.nn), lambda lib, m, x: m(x), [distinct(*shape)],
                 device=device)


def test_return_indices():
    for make in (lambda nn: nn.MaxPool2d(2, return_indices=True),
                 lambda nn: nn.AdaptiveMaxPool2d((2, 3), return_indices=True)):
        check_module(lambda lib, make=make: make(lib.nn), lambda lib, m, x: m(x)[0],
                     [distinct(1, 2, 4, 6)])
        torch = pytest.importorskip("torch")
        x = torch.randn(1, 2, 4, 6)
        expected = make(torch.nn)(x)[1]
        got = make(gradforge.nn)(gradforge.tensor(x.numpy()))[1]
        assert got.tolist() == expected.tolist()

"""Conv1d, Conv2d, ConvTranspose1d and ConvTranspose2d: torch's parameters, state_dict,
initialisation and repr; forward and gradients with torch's weights; bad arguments."""
import math

import numpy as np
import pytest
from module_oracle import check_module
from oracle import DEVICES

import gradforge

LAYERS = {
    "conv2d": lambda nn: nn.Conv2d(3, 6, 5),
    "conv2d-all-args": lambda nn: nn.Conv2d(4, 8, (3, 2), stride=(2, 1), padding=(1, 2),
                                            dilation=2, groups=2, bias=False),
    "conv2d-same": lambda nn: nn.Conv2d(2, 3, 4, padding="same", dilation=(1, 2)),
    "conv2d-valid": lambda nn: nn.Conv2d(2, 3, 3, padding="valid"),
    "conv2d-depthwise": lambda nn: nn.Conv2d(4, 8, 3, padding=1, groups=4),
    "conv2d-reflect": lambda nn: nn.Conv2d(2, 3, 3, padding=(1, 2), padding_mode="reflect"),
    "conv2d-replicate": lambda nn: nn.Conv2d(2, 3, 3, stride=2, padding=1,
                                             padding_mode="replicate"),
    "conv2d-circular-same": lambda nn: nn.Conv2d(2, 2, (2, 3), padding="same",
                                                 padding_mode="circular"),
    "conv1d": lambda nn: nn.Conv1d(3, 4, 3, stride=2, padding=1),
    "conv1d-reflect": lambda nn: nn.Conv1d(2, 2, 3, padding=2, dilation=2,
                                           padding_mode="reflect", bias=False),
    "conv-transpose2d": lambda nn: nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1,
                                                      output_padding=1),
    "conv-transpose2d-groups": lambda nn: nn.ConvTranspose2d(4, 6, (2, 3), groups=2,
                                                             dilation=(2, 1), bias=False),
    "conv-transpose1d": lambda nn: nn.ConvTranspose1d(3, 2, 4, stride=3),
}
INPUTS = {"conv1d": (2, 3, 9), "conv1d-reflect": (2, 2, 7), "conv-transpose1d": (2, 3, 5)}


def _input_shape(name, layer):
    if name in INPUTS:
        return INPUTS[name]
    return (2, layer.in_channels, 7, 6)


@pytest.mark.parametrize("make", LAYERS.values(), ids=LAYERS.keys())
def test_repr_and_state_dict_match_torch(make):
    torch = pytest.importorskip("torch")
    g, t = make(gradforge.nn), make(torch.nn)
    assert repr(g) == repr(t)
    g_state, t_state = g.state_dict(), t.state_dict()
    assert list(g_state) == list(t_state)
    for key in t_state:
        assert tuple(g_state[key].shape) == tuple(t_state[key].shape), key


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", LAYERS.keys())
def test_forward_and_gradients_with_torch_weights(name, device):
    make = LAYERS[name]
    shape = _input_shape(name, make(gradforge.nn))
    check_module(lambda lib: make(lib.nn), lambda lib, m, x: m(x), [shape], device=device)


def test_unbatched_input_and_transposed_output_size():
    check_module(lambda lib: lib.nn.Conv2d(3, 2, 3, padding=1), lambda lib, m, x: m(x),
                 [(3, 5, 4)])
    check_module(lambda lib: lib.nn.ConvTranspose2d(2, 3, 3, stride=2),
                 lambda lib, m, x: m(x, output_size=(2, 3, 10, 9)), [(2, 2, 4, 4)])
    check_module(lambda lib: lib.nn.ConvTranspose1d(2, 3, 3, stride=3),
                 lambda lib, m, x: m(x, output_size=[13]), [(2, 4)])


@pytest.mark.parametrize("layer, fan_in", [
    (lambda: gradforge.nn.Conv2d(8, 16, 3), 8 * 9),
    (lambda: gradforge.nn.Conv1d(6, 33, 5, groups=3), 2 * 5),
    (lambda: gradforge.nn.ConvTranspose2d(8, 12, 3, groups=2), 6 * 9),
])
def test_default_init_is_kaiming_uniform_with_torchs_bound(layer, fan_in):
    """kaiming_uniform_(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in)); so does bias.

    NOTE: torch's fan_in of a transposed weight (in, out/groups, k) is out/groups * k.
    """
    gradforge.manual_seed(0)
    m = layer()
    bound = 1 / math.sqrt(fan_in)
    w = m.weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert abs(w.mean()) < 0.1 * bound and abs(w.std() - bound / math.sqrt(3)) < 0.1 * bound
    b = m.bias.detach().numpy()
    assert np.abs(b).max() <= bound
    gradforge.manual_seed(0)
    np.testing.assert_array_equal(layer().weight.detach().numpy(), w)


def test_dtype_and_device_arguments():
    m = gradforge.nn.Conv2d(2, 3, 3, dtype=gradforge.float64)
    assert m.weight.dtype == gradforge.float64 and m.bias.dtype == gradforge.float64
    assert m(gradforge.zeros(1, 2, 4, 4, dtype=gradforge.float64)).dtype == gradforge.float64
    assert m.weight.requires_grad and m.weight.is_leaf


@pytest.mark.parametrize("make, match", [
    (lambda: gradforge.nn.Conv2d(4, 6, 3, groups=0), "groups must be a positive integer"),
    (lambda: gradforge.nn.Conv2d(3, 6, 3, groups=2), "in_channels must be divisible by groups"),
    (lambda: gradforge.nn.Conv2d(4, 5, 3, groups=2), "out_channels must be divisible by groups"),
    (lambda: gradforge.nn.Conv2d(4, 6, 3, padding="full"), "Invalid padding string 'full'"),
    (lambda: gradforge.nn.Conv2d(4, 6, 3, stride=2, padding="same"),
     "padding='same' is not supported for strided convolutions"),
    (lambda: gradforge.nn.Conv2d(4, 6, 3, padding_mode="mirror"),
     "padding_mode must be one of .* but got padding_mode='mirror'"),
    (lambda: gradforge.nn.ConvTranspose2d(4, 6, 3, padding_mode="reflect"),
     'Only "zeros" padding mode is supported for ConvTranspose2d'),
])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_output_size():
    m = gradforge.nn.ConvTranspose2d(2, 3, 3, stride=2)
    x = gradforge.zeros(1, 2, 4, 4)
    with pytest.raises(ValueError, match=r"requested an output size of \(11, 9\), but valid "
                                         r"sizes range from \[9, 9\] to \[10, 10\]"):
        m(x, output_size=(11, 9))
    with pytest.raises(ValueError, match="output_size must have 2 or 4 elements"):
        m(x, output_size=(9,))

"""The fast paths of the training step agree bit for bit with the plain ones.

``backend.where`` (a bitwise select on the CPU), the engine's gradient accumulation without a
copy, and the in-place optimizer ops under ``no_grad`` take shortcuts for speed; these tests
pin their results to ``np.where`` and to the out-of-place formulas, including nan, inf and
-0.0, non-contiguous operands and repeated gradients.
"""
from __future__ import annotations

import numpy as np
import pytest

import gradforge as gf
from gradforge.backend.cpu import CPUBackend


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint8)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("case", ["x_zero", "zero_x", "minus_zero", "one", "strided", "transposed",
                                  "int_array"])
def test_cpu_where_matches_numpy_bitwise(dtype, case):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 7)).astype(dtype)
    x[0, 0], x[1, 1], x[2, 2] = np.nan, -0.0, np.inf
    c = rng.random((5, 7)) > 0.5
    c[0, 0], c[1, 1], c[2, 2] = False, True, True
    args = {"x_zero": (c, x, 0.0), "zero_x": (c, 0, x), "minus_zero": (c, x, -0.0),
            "one": (c, x, 1.0), "strided": (c[:, ::2], x[:, ::2], 0.0),
            "transposed": (c.T, x.T, 0), "int_array": (c, np.arange(35, dtype=np.int32).reshape(5, 7), 0)}[case]
    got, expected = CPUBackend().where(*args), np.where(*args)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(_bits(got), _bits(expected))


def test_relu_backward_masks_nan_gradient():
    x = gf.tensor([-1.0, 2.0, 0.0, 3.0], requires_grad=True)
    y = gf.relu(x)
    y.backward(gf.tensor([np.nan, np.inf, np.nan, -0.0]))
    np.testing.assert_array_equal(_bits(x.grad.numpy()),
                                  _bits(np.array([0.0, np.inf, 0.0, -0.0], np.float32)))

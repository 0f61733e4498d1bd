"""Elementwise ops against PyTorch: arithmetic with broadcasting and promotion, unary math,
clamp/maximum/minimum/where, comparisons and predicates."""
import math

import numpy as np
import pytest
from oracle import DEVICES, compare, distinct, integers, mask, normal, uniform

import gradforge


def cases(table):
    return [pytest.param(fn, specs, id=name) for name, (fn, specs) in table.items()]


ARITHMETIC = {
    "add": (lambda lib, a, b: a + b, [(2, 3), (2, 3)]),
    "add_broadcast_row": (lambda lib, a, b: a + b, [(2, 3), (3,)]),
    "add_broadcast_both": (lambda lib, a, b: a + b, [(2, 1), (1, 3)]),
    "add_broadcast_rank": (lambda lib, a, b: lib.add(a, b), [(4, 1, 3), (2, 1)]),
    "add_alpha": (lambda lib, a, b: lib.add(a, b, alpha=-2.5), [(2, 3), (3,)]),
    "add_scalar_right": (lambda lib, a: a + 2, [(2, 3)]),
    "add_scalar_left": (lambda lib, a: 1.5 + a, [(2, 3)]),
    "add_zero_dim": (lambda lib, a, b: a + b, [(2, 3), ()]),
    "sub": (lambda lib, a, b: a - b, [(2, 3), (2, 1)]),
    "sub_alpha": (lambda lib, a, b: lib.sub(a, b, alpha=3), [(3,), (2, 3)]),
    "sub_scalar_left": (lambda lib, a: 2.5 - a, [(2, 3)]),
    "sub_scalar_right": (lambda lib, a: a - 1, [(4,)]),
    "mul": (lambda lib, a, b: a * b, [(2, 3), (2, 3)]),
    "mul_broadcast": (lambda lib, a, b: a * b, [(3, 1, 2), (4, 1)]),
    "mul_same_tensor": (lambda lib, a: a * a, [(5,)]),
    "mul_scalar_left": (lambda lib, a: -3 * a, [(2, 3)]),
    "div": (lambda lib, a, b: a / b, [(2, 3), uniform(3)]),
    "div_scalar_left": (lambda lib, a: 2 / a, [uniform(2, 3)]),
    "div_scalar_right": (lambda lib, a: a / 4, [(2, 3)]),
    "pow_tensor_tensor": (lambda lib, a, b: a ** b, [uniform(2, 3), (2, 3)]),
    "pow_broadcast": (lambda lib, a, b: lib.pow(a, b), [uniform(2, 3), (3,)]),
    "pow_int_exponent": (lambda lib, a: a ** 3, [(2, 3)]),
    "pow_float_exponent": (lambda lib, a: a ** 0.5, [uniform(2, 3)]),
    "pow_negative_exponent": (lambda lib, a: a ** -2, [uniform(4)]),
    "pow_zero_exponent": (lambda lib, a: a ** 0, [(4,)]),
    "pow_scalar_base": (lambda lib, a: 2 ** a, [(2, 3)]),
    "pow_zero_base": (lambda lib, a, b: a ** b, [np.zeros(3), uniform(3)]),
    "neg": (lambda lib, a: -a, [(2, 3)]),
    "neg_method": (lambda lib, a: a.neg(), [(2, 3)]),
    "square": (lambda lib, a: lib.square(a), [(2, 3)]),
    "remainder": (lambda lib, a: a % 0.7, [(2, 3)]),
    "remainder_tensor": (lambda lib, a, b: lib.remainder(a, b), [(2, 3), uniform(3)]),
    "div_floor": (lambda lib, a, b: lib.div(a, b, rounding_mode="floor"), [(4,), uniform(4)]),
    "div_trunc": (lambda lib, a, b: lib.div(a, b, rounding_mode="trunc"), [(4,), uniform(4)]),
}

PROMOTION = {
    "int_plus_float_scalar": (lambda lib, a: a + 2.5, [integers(2, 3)]),
    "float_scalar_times_int": (lambda lib, a: 2.5 * a, [integers(2, 3)]),
    "int_plus_int_scalar": (lambda lib, a: a + 3, [integers(2, 3)]),
    "int32_plus_int_scalar": (lambda lib, a: a + 3, [integers(2, 3, dtype=np.int32)]),
    "int_div_int": (lambda lib, a, b: a / b, [integers(2, 3), integers(3, low=1)]),
    "int_floordiv_int": (lambda lib, a, b: a // b, [integers(2, 3), integers(3, low=1)]),
    "int_plus_bool": (lambda lib, a, b: a + b, [integers(2, 3), mask(2, 3)]),
    "bool_plus_bool": (lambda lib, a, b: a + b, [mask(2, 3), mask(2, 3)]),
    "bool_times_float": (lambda lib, a, b: a * b, [mask(2, 3), (2, 3)]),
    "bool_plus_int_scalar": (lambda lib, a: a + 1, [mask(4)]),
    "int32_plus_int64": (lambda lib, a, b: a + b, [integers(3, dtype=np.int32), integers(3)]),
    "float32_plus_float64": (lambda lib, a, b: a + b, [normal(3, dtype=np.float32), (3,)]),
    "float32_plus_float_scalar": (lambda lib, a: a * 1.5, [normal(3, dtype=np.float32)]),
    "float32_plus_float64_zero_dim": (lambda lib, a, b: a + b,
                                      [normal(2, 3, dtype=np.float32), ()]),
    "int_plus_float64_zero_dim": (lambda lib, a, b: a + b, [integers(2, 3), ()]),
    "int_plus_int32_zero_dim": (lambda lib, a, b: a + b,
                                [integers(2, 3, dtype=np.int32), np.array(4, np.int64)]),
    "zero_dims_float32_float64": (lambda lib, a, b: a * b, [normal(dtype=np.float32), ()]),
    "float16_plus_float_scalar": (lambda lib, a: a + 0.25, [normal(4, dtype=np.float16)]),
    "int_pow_float": (lambda lib, a: a ** 0.5, [integers(4, low=1)]),
    "int_pow_int": (lambda lib, a: a ** 2, [integers(4)]),
    "int_exp": (lambda lib, a: a.exp(), [integers(4)]),
    "int_sqrt": (lambda lib, a: lib.sqrt(a), [integers(4)]),
    "int_sigmoid": (lambda lib, a: lib.sigmoid(a), [integers(4)]),
    "int_abs": (lambda lib, a: a.abs(), [integers(4, low=-3)]),
    "int_neg": (lambda lib, a: -a, [integers(4)]),
    "int_sign": (lambda lib, a: a.sign(), [integers(4, low=-3)]),
    "int_relu": (lambda lib, a: a.relu(), [integers(4, low=-3)]),
    "int_clamp_float": (lambda lib, a: lib.clamp(a, 0.5, 2.5), [integers(5, low=-3)]),
    "int_clamp_int": (lambda lib, a: lib.clamp(a, 0, 2), [integers(5, low=-3)]),
    "int_maximum_float": (lambda lib, a, b: lib.maximum(a, b), [integers(3), (3,)]),
    "int_where_float": (lambda lib, c, a, b: lib.where(c, a, b),
                        [mask(3), integers(3), (3,)]),
    "int_compare_float": (lambda lib, a: a < 2.5, [integers(4)]),
    "scalar_mod_int": (lambda lib, a: 7 % a, [np.array([3, -3, 2, -5])]),
    "bool_square": (lambda lib, a: lib.square(a), [mask(4)]),
    "bool_sign": (lambda lib, a: a.sign(), [mask(4)]),
    "float32_mean": (lambda lib, a: a.mean(), [normal(4, dtype=np.float32)]),
}

UNARY = {
    "exp": (lambda lib, a: a.exp(), [(2, 3)]),
    "log": (lambda lib, a: a.log(), [uniform(2, 3)]),
    "log1p": (lambda lib, a: lib.log1p(a), [uniform(2, 3)]),
    "sqrt": (lambda lib, a: a.sqrt(), [uniform(2, 3)]),
    "rsqrt": (lambda lib, a: lib.rsqrt(a), [uniform(2, 3)]),
    "abs": (lambda lib, a: abs(a), [(2, 3)]),
    "abs_fn": (lambda lib, a: lib.abs(a), [(2, 3)]),
    "sign": (lambda lib, a: a.sign(), [(2, 3)]),
    "sin": (lambda lib, a: a.sin(), [(2, 3)]),
    "cos": (lambda lib, a: lib.cos(a), [(2, 3)]),
    "tanh": (lambda lib, a: a.tanh(), [(2, 3)]),
    "sigmoid": (lambda lib, a: a.sigmoid(), [(2, 3)]),
    "sigmoid_extreme": (lambda lib, a: lib.sigmoid(a * 400), [(2, 3)]),
    "relu": (lambda lib, a: a.relu(), [(2, 3)]),
    "erf": (lambda lib, a: lib.erf(a), [(2, 3)]),
    "erf_zero_dim": (lambda lib, a: a.erf(), [()]),
    "floor": (lambda lib, a: (a * 3).floor(), [(2, 3)]),
    "ceil": (lambda lib, a: lib.ceil(a * 3), [(2, 3)]),
    "round": (lambda lib, a: (a * 3).round(), [(2, 3)]),
    "round_decimals": (lambda lib, a: lib.round(a * 3, decimals=1), [(2, 3)]),
    "trunc": (lambda lib, a: lib.trunc(a * 3), [(2, 3)]),
    "exp_float32": (lambda lib, a: a.exp(), [normal(2, 3, dtype=np.float32)]),
    "sigmoid_float32": (lambda lib, a: a.sigmoid(), [normal(2, 3, dtype=np.float32)]),
}

CLAMP_WHERE = {
    "clamp_both": (lambda lib, a: a.clamp(-0.5, 0.5), [(3, 4)]),
    "clamp_min": (lambda lib, a: lib.clamp(a, min=0.1), [(3, 4)]),
    "clamp_max": (lambda lib, a: lib.clamp(a, max=0.1), [(3, 4)]),
    "clip": (lambda lib, a: lib.clip(a, -0.2, 0.3), [(3, 4)]),
    "clamp_tensors": (lambda lib, a, lo, hi: a.clamp(lo, hi), [(3, 4), (4,), (3, 1)]),
    "clamp_tensor_min": (lambda lib, a, lo: lib.clamp(a, min=lo), [(3, 4), (4,)]),
    "maximum": (lambda lib, a, b: lib.maximum(a, b), [(2, 3), (2, 3)]),
    "maximum_broadcast": (lambda lib, a, b: a.maximum(b), [(2, 3), (3,)]),
    "maximum_ties": (lambda lib, a, b: lib.maximum(a, b), [np.arange(4.0), np.ones(4)]),
    "minimum": (lambda lib, a, b: lib.minimum(a, b), [(2, 3), (2, 1)]),
    "minimum_ties": (lambda lib, a, b: a.minimum(b), [np.arange(4.0), np.full(4, 2.0)]),
    "max_binary": (lambda lib, a, b: lib.max(a, b), [(2, 3), (2, 3)]),
    "min_binary": (lambda lib, a, b: lib.min(a, b), [(2, 3), (3,)]),
    "where": (lambda lib, c, a, b: lib.where(c, a, b), [mask(2, 3), (2, 3), (2, 3)]),
    "where_broadcast": (lambda lib, c, a, b: lib.where(c, a, b), [mask(2, 1), (3,), (2, 3)]),
    "where_scalar_other": (lambda lib, c, a: lib.where(c, a, 0.0), [mask(2, 3), (2, 3)]),
    "where_scalar_input": (lambda lib, c, a: lib.where(c, -1.0, a), [mask(2, 3), (2, 3)]),
    "where_condition_from_compare": (lambda lib, a: lib.where(a > 0, a, a * 0.1), [(3, 4)]),
    "where_method": (lambda lib, c, a, b: a.where(c, b), [mask(3), (3,), (3,)]),
}

COMPARISON = {
    "eq": (lambda lib, a, b: a == b, [integers(3, 4), integers(3, 4)]),
    "ne": (lambda lib, a, b: a != b, [integers(3, 4), integers(4)]),
    "lt": (lambda lib, a, b: a < b, [(3, 4), (3, 4)]),
    "le": (lambda lib, a, b: lib.le(a, b), [integers(3, 4), integers(3, 1)]),
    "gt": (lambda lib, a: a > 0, [(3, 4)]),
    "ge": (lambda lib, a: a.ge(0.5), [(3, 4)]),
    "scalar_left": (lambda lib, a: 0 < a, [(3, 4)]),
    "isnan": (lambda lib, a: lib.isnan(a), [np.array([1.0, math.nan, math.inf, -math.inf])]),
    "isinf": (lambda lib, a: a.isinf(), [np.array([1.0, math.nan, math.inf, -math.inf])]),
    "isfinite": (lambda lib, a: a.isfinite(), [np.array([1.0, math.nan, math.inf, -math.inf])]),
    "isclose": (lambda lib, a, b: lib.isclose(a, b), [np.array([1.0, 2.0]),
                                                      np.array([1.0 + 1e-9, 2.1])]),
    "allclose_true": (lambda lib, a, b: lib.allclose(a, b),
                      [np.array([1.0, 2.0]), np.array([1.0 + 1e-9, 2.0])]),
    "allclose_false": (lambda lib, a, b: a.allclose(b, atol=1e-3),
                       [np.array([1.0, 2.0]), np.array([1.0, 2.01])]),
    "allclose_nan": (lambda lib, a: lib.allclose(a, a, equal_nan=True),
                     [np.array([1.0, math.nan])]),
    "equal_true": (lambda lib, a: lib.equal(a, a.clone()), [(2, 3)]),
    "equal_false": (lambda lib, a, b: lib.equal(a, b), [(2, 3), (2, 3)]),
    "equal_shapes": (lambda lib, a, b: a.equal(b), [(2, 3), (3,)]),
    "logical_and": (lambda lib, a, b: lib.logical_and(a, b), [mask(3, 4), mask(4)]),
    "logical_or": (lambda lib, a, b: a | b, [mask(3, 4), mask(3, 4)]),
    "logical_not": (lambda lib, a: ~a, [mask(3, 4)]),
    "logical_xor": (lambda lib, a, b: a ^ b, [mask(3, 4), mask(3, 4)]),
    "bool_and_scalar_left": (lambda lib, a: True & a, [mask(3, 4)]),
    "bool_or_int_scalar": (lambda lib, a: a | 2, [mask(4)]),
    # On integers & | ^ ~ are bitwise and keep the dtype (logical_* would give bool).
    "bitwise_and_int": (lambda lib, a, b: a & b, [integers(3, 4, high=8), integers(4, high=8)]),
    "bitwise_or_int_scalar": (lambda lib, a: 1 | a, [integers(4, high=8)]),
    "bitwise_xor_int_bool": (lambda lib, a, b: a ^ b, [integers(4, high=8), mask(4)]),
    "bitwise_not_int": (lambda lib, a: ~a, [integers(4, low=-3, dtype=np.int32)]),
    "bitwise_fns": (lambda lib, a, b: (lib.bitwise_and(a, b), a.bitwise_or(b),
                                       lib.bitwise_xor(a, 3), a.bitwise_not()),
                    [integers(4, high=8), integers(4, high=8)]),
}


@pytest.mark.parametrize("fn, specs", cases(ARITHMETIC))
@pytest.mark.parametrize("device", DEVICES)
def test_arithmetic(fn, specs, device):
    compare(fn, specs, device=device)


@pytest.mark.parametrize("fn, specs", cases(PROMOTION))
@pytest.mark.parametrize("device", DEVICES)
def test_promotion(fn, specs, device):
    compare(fn, specs, atol=1e-6, rtol=1e-3, device=device)


@pytest.mark.parametrize("fn, specs", cases(UNARY))
@pytest.mark.parametrize("device", DEVICES)
def test_unary(fn, specs, device):
    compare(fn, specs, atol=1e-6, device=device)


@pytest.mark.parametrize("fn, specs", cases(CLAMP_WHERE))
@pytest.mark.parametrize("device", DEVICES)
def test_clamp_where(fn, specs, device):
    compare(fn, specs, device=device)


@pytest.mark.parametrize("fn, specs", cases(COMPARISON))
@pytest.mark.parametrize("device", DEVICES)
def test_comparison(fn, specs, device):
    compare(fn, specs, device=device)


def test_floor_divide_matches_torch_and_has_zero_gradient():
    # torch raises at backward for floor_divide; gradforge gives the zero gradient of
    # div(rounding_mode="floor").
    compare(lambda lib, a, b: a // b, [(2, 3), uniform(3)], grad=False)
    compare(lambda lib, a: 7 // a, [uniform(4)], grad=False)
    x = gradforge.tensor([-1.5, 2.5], requires_grad=True)
    (x // 0.7).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0]


def test_comparisons_do_not_require_grad():
    x = gradforge.randn(3, requires_grad=True)
    for out in (x > 0, x == x.detach(), x.isnan(), x.sign() != 0):
        assert not out.requires_grad and out.grad_fn is None and out.dtype is gradforge.bool


def test_sigmoid_extreme_values_are_finite_and_saturate():
    x = gradforge.tensor([-1000.0, 0.0, 1000.0], requires_grad=True)
    y = x.sigmoid()
    y.sum().backward()
    assert y.tolist() == [0.0, 0.5, 1.0]
    assert x.grad.tolist() == [0.0, 0.25, 0.0]


@pytest.mark.parametrize("op", [lambda lib, x, y: lib.maximum(x, y),
                                lambda lib, x, y: lib.minimum(-x, -y),
                                lambda lib, x, y: x.clamp(min=2.0) + y * 0,
                                lambda lib, x, y: (x - 2).relu() + y * 0])
def test_nan_gradient_does_not_leak_into_the_masked_side(op):
    torch = pytest.importorskip("torch")
    grads = []
    for lib in (torch, gradforge):
        x = lib.tensor([1.0, 3.0], dtype=lib.float64, requires_grad=True)
        y = lib.tensor([2.0, 2.0], dtype=lib.float64, requires_grad=True)
        g = lib.tensor([float("nan"), 1.0], dtype=lib.float64)
        grads.append([t.tolist() for t in lib.autograd.grad(op(lib, x, y), (x, y), g)])
    np.testing.assert_equal(grads[1], grads[0])


def test_pow_zero_base_has_finite_gradients():
    torch = pytest.importorskip("torch")
    for lib in (torch, gradforge):
        x = lib.tensor([0.0, 2.0], requires_grad=True)
        (x ** 0).sum().backward()
        assert x.grad.tolist() == [0.0, 0.0]
        x.grad = None
        (x ** 2).sum().backward()
        assert x.grad.tolist() == [0.0, 4.0]


def test_bool_subtraction_and_negation_raise():
    b = gradforge.tensor([True, False])
    for op in (lambda: b - b, lambda: 1 - b, lambda: b - 1.5, lambda: -b):
        with pytest.raises(RuntimeError, match="bool tensor"):
            op()


def test_bitwise_ops_and_integer_alpha_refuse_floats():
    x, n = gradforge.tensor([1.5]), gradforge.tensor([1, 2])
    for op in (lambda: x & x, lambda: n | 1.5, lambda: ~x):
        with pytest.raises(RuntimeError, match="bitwise.*float32"):
            op()
    # NumPy would scale the int operand by the float alpha and return float64.
    for op in (lambda: gradforge.add(n, n, alpha=0.5), lambda: gradforge.sub(n, 1, alpha=1.5)):
        with pytest.raises(RuntimeError, match="alpha must not be a floating point number"):
            op()


@pytest.mark.parametrize("op", [
    lambda lib: lib.tensor([5, 3]) // 0,
    lambda lib: lib.tensor([5, 3]) % lib.tensor([2, 0]),
    lambda lib: 7 % lib.tensor([0, 2]),
    lambda lib: lib.tensor([5, -3]).div(lib.tensor([0, 1]), rounding_mode="trunc"),
    lambda lib: lib.remainder(lib.tensor([5], dtype=lib.int32), 0),
], ids=["floordiv-scalar", "mod-tensor", "rmod", "trunc-div", "remainder-int32"])
def test_integer_division_by_zero_raises_as_torch(op):
    """NumPy gives 0 (a wrong answer, its warning silenced); torch raises. Floats give inf."""
    torch = pytest.importorskip("torch")
    for lib in (torch, gradforge):
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            op(lib)
    assert (gradforge.tensor([5.0]) // 0).tolist() == [float("inf")]
    assert (gradforge.tensor([5, -3]) // 2).tolist() == [2, -2]


def test_binary_op_needs_a_tensor():
    with pytest.raises(TypeError, match="int and float"):
        gradforge.add(1, 2.0)


# Finite-difference cases (float64, first and second order) for the registry test.
GRAD_CASES = {
    "Add": [(lambda lib, a, b: lib.add(a, b, alpha=2) + 1.5, [(2, 3), (3,)])],
    "Sub": [(lambda lib, a, b: lib.sub(a, b, alpha=0.5) - 2, [(2, 3), (2, 1)]),
            (lambda lib, a: 1 - a, [(3,)])],
    "Mul": [(lambda lib, a, b: a * b * 3, [(2, 3), (3,)])],
    "Div": [(lambda lib, a, b: a / b, [(2, 3), uniform(3)]),
            (lambda lib, a: 2 / a, [uniform(3)])],
    "Pow": [(lambda lib, a, b: a ** b, [uniform(2, 2), (2, 2)]),
            (lambda lib, a: a ** 3 + 2 ** a, [(3,)])],
    "Neg": [(lambda lib, a: -a, [(3,)])],
    "Exp": [(lambda lib, a: a.exp(), [(2, 3)])],
    "Log": [(lambda lib, a: a.log(), [uniform(2, 3)])],
    "Log1p": [(lambda lib, a: a.log1p(), [uniform(2, 3)])],
    "Sqrt": [(lambda lib, a: a.sqrt(), [uniform(2, 3)])],
    "Rsqrt": [(lambda lib, a: a.rsqrt(), [uniform(2, 3)])],
    "Abs": [(lambda lib, a: a.abs(), [distinct(2, 3)])],
    "PiecewiseConstant": [(lambda lib, a: a.sign() * a + (a * 3).floor() + a.round(),
                           [distinct(2, 3)]),
                          (lambda lib, a, b: (a // b) * a + lib.div(a, b, rounding_mode="trunc"),
                           [distinct(2, 3), uniform(3)])],
    "Remainder": [(lambda lib, a, b: lib.remainder(a, b) * a, [distinct(2, 3), uniform(3)]),
                  (lambda lib, a: (a * 3) % 0.7, [distinct(2, 3)])],
    "Sin": [(lambda lib, a: a.sin(), [(2, 3)])],
    "Cos": [(lambda lib, a: a.cos(), [(2, 3)])],
    "Tanh": [(lambda lib, a: a.tanh(), [(2, 3)])],
    "Sigmoid": [(lambda lib, a: a.sigmoid(), [(2, 3)])],
    "Relu": [(lambda lib, a: a.relu() * a, [distinct(2, 3)])],
    "Erf": [(lambda lib, a: a.erf(), [(2, 3)])],
    "Clamp": [(lambda lib, a: a.clamp(-0.35, 0.35), [distinct(3, 3)])],
    "Maximum": [(lambda lib, a, b: lib.maximum(a, b), [(2, 3), (3,)])],
    "Minimum": [(lambda lib, a, b: lib.minimum(a, b), [(2, 3), (2, 3)])],
    "Where": [(lambda lib, c, a, b: lib.where(c, a, b), [mask(2, 3), (2, 3), (3,)])],
}

"""The op library, grouped by family; every public op is re-exported here.

``TENSOR_METHODS`` lists the ops bound as ``Tensor`` methods of the same name.
"""
# ruff: noqa: F401, I001  (re-exports, kept compact by hand)
from .activation import (celu, elu, gelu, hardtanh, leaky_relu, relu6, selu, silu,
                         softplus)
from .conversion import clone, contiguous, is_contiguous, to
from .conv import conv1d, conv2d
from .conv_transpose import conv_transpose1d, conv_transpose2d
from .creation import (arange, as_tensor, bernoulli, empty, empty_like, eye, from_dlpack,
                       from_numpy, full, full_like, linspace, multinomial, normal_, ones,
                       ones_like, rand, rand_like, randint, randint_like, randn, randn_like,
                       randperm, tensor, uniform_, zeros, zeros_like)
from .comparison import (allclose, bitwise_and, bitwise_not, bitwise_or, bitwise_xor, eq,
                         equal, ge, greater, greater_equal, gt, isclose, isfinite, isinf, isnan,
                         le, less, less_equal, logical_and, logical_not, logical_or, logical_xor,
                         lt, ne, not_equal)
from .elementwise import (abs, add, clamp, clip, cos, div, erf, exp, log, log1p, maximum, minimum,
                          mul, neg, pow, relu, remainder, rsqrt, sigmoid, sin, sqrt, square, sub,
                          tanh, where)
from .rounding import (ceil, floor, floor_divide, round, sign, trunc)
from .indexing import (gather, getitem, index_put, index_select, masked_fill, nonzero,
                       scatter, scatter_add, setitem, sort, argsort, take_along_dim, topk)
from .inplace import (abs_, add_, addcdiv_, addcmul_, bitwise_and_, bitwise_or_, bitwise_xor_,
                      clamp_, clip_, copy_, div_, exp_, fill_, lerp_, masked_fill_, mul_, neg_,
                      pow_, relu_, sigmoid_, sqrt_, sub_, tanh_, zero_)
from .loss import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy,
                   huber_loss, kl_div, l1_loss, mse_loss, nll_loss, smooth_l1_loss)
from .matmul import bmm, dot, einsum, matmul, mm, outer
from .movement import (broadcast_to, cat, chunk, concat, concatenate, expand, expand_as,
                       flatten, narrow, permute, repeat, reshape, reshape_as, split, squeeze,
                       stack, swapaxes, t, transpose, unbind, unflatten, unsqueeze, view,
                       view_as)
from .norm import batch_norm, group_norm, layer_norm
from .pool import adaptive_avg_pool1d, adaptive_max_pool1d, avg_pool1d, max_pool1d, max_pool2d
from .printing import tensor_repr
from .reduce import (all, amax, amin, any, argmax, argmin, count_nonzero, cumsum, log_softmax,
                     logsumexp, max, mean, min, norm, prod, softmax, std, std_mean, sum,
                     sum_to_size, var, var_mean)

subtract, multiply, divide, true_divide, negative, absolute = sub, mul, div, div, neg, abs

TENSOR_METHODS = (
    # elementwise
    "add", "sub", "mul", "div", "pow", "neg", "exp", "log", "log1p", "sqrt", "rsqrt", "abs",
    "sign", "sin", "cos", "tanh", "sigmoid", "relu", "erf", "clamp", "clip", "maximum",
    "minimum", "eq", "ne", "lt", "le", "gt", "ge", "isnan", "isinf", "isfinite", "allclose",
    "isclose", "equal", "logical_not", "logical_and", "logical_or", "bitwise_and", "bitwise_or",
    "bitwise_xor", "bitwise_not", "square", "floor", "ceil",
    "round", "trunc", "remainder", "floor_divide", "subtract", "multiply", "divide",
    # reductions
    "sum", "mean", "var", "std", "max", "min", "amax", "amin", "argmax", "argmin", "prod",
    "cumsum", "logsumexp", "norm", "all", "any", "softmax", "log_softmax", "sum_to_size",
    "count_nonzero",
    # shape
    "reshape", "view", "view_as", "reshape_as", "flatten", "unflatten", "transpose", "permute",
    "squeeze", "unsqueeze", "expand", "expand_as", "repeat", "split", "chunk", "narrow", "t",
    "unbind", "swapaxes", "broadcast_to",
    # indexing
    "gather", "scatter", "scatter_add", "index_select", "masked_fill", "topk", "sort",
    "argsort", "nonzero", "take_along_dim",
    # linear algebra
    "matmul", "mm", "bmm", "dot", "outer",
    # copies
    "clone", "contiguous", "is_contiguous",
    # in place
    "add_", "sub_", "mul_", "div_", "pow_", "bitwise_and_", "bitwise_or_", "bitwise_xor_",
    "zero_", "fill_", "copy_", "clamp_", "clip_",
    "masked_fill_", "relu_", "exp_", "sqrt_", "neg_", "sigmoid_", "tanh_", "abs_", "addcmul_",
    "addcdiv_", "lerp_", "uniform_", "normal_",
)

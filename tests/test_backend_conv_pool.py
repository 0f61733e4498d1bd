"""The NumPy twins of the conv/pool kernels (CPUBackend) against PyTorch and naive loops.

Float64 throughout, on the awkward geometries of ``kernel_emulation.cases``; max pooling
compares the argmax indices exactly (ties, -inf, NaN and padding follow torch).
"""
import itertools

import numpy as np
import pytest
from kernel_emulation.cases import AVG_POOL, CONV, MAX_POOL, make_input

from gradforge.backend import shapes
from gradforge.backend.cpu import BACKEND as CPU

# ---- naive references: torch's CPU algorithms, one output element at a time ---------------


def naive_im2col(x, kh, kw, sh, sw, ph, pw, dh, dw):
    n, c, h, w = x.shape
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    cols = np.zeros((n, c, kh, kw, oh, ow), x.dtype)
    for ci, i, j, y, z in itertools.product(range(c), range(kh), range(kw), range(oh),
                                            range(ow)):
        r, q = y * sh - ph + i * dh, z * sw - pw + j * dw
        if 0 <= r < h and 0 <= q < w:
            cols[:, ci, i, j, y, z] = x[:, ci, r, q]
    return cols.reshape(n, c * kh * kw, oh * ow)


def naive_max_pool(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    n, c, h, w = x.shape
    out = np.empty((n, c, oh, ow), x.dtype)
    idx = np.empty((n, c, oh, ow), np.int64)
    for b, ci, y, z in itertools.product(range(n), range(c), range(oh), range(ow)):
        h0, w0 = y * sh - ph, z * sw - pw
        h1, w1 = min(h0 + (kh - 1) * dh + 1, h), min(w0 + (kw - 1) * dw + 1, w)
        while h0 < 0:
            h0 += dh
        while w0 < 0:
            w0 += dw
        best, arg = -np.inf, h0 * w + w0
        for r in range(h0, h1, dh):
            for q in range(w0, w1, dw):
                v = x[b, ci, r, q]
                if v > best or np.isnan(v):
                    best, arg = v, r * w + q
        out[b, ci, y, z], idx[b, ci, y, z] = best, arg
    return out, idx


def naive_max_pool_backward(grad, idx, x_shape, kh, kw, sh, sw, ph, pw, dh, dw):
    """Credit each output's gradient to its index when that is a cell of its window.

    Returns ``(grad_x, every_window_credited)``; torch cannot run the backward otherwise.
    """
    n, c, h, w = x_shape
    grad_x = np.zeros(x_shape, grad.dtype)
    credited = True
    for b, ci, y, z in itertools.product(range(n), range(c), *map(range, grad.shape[2:])):
        r, q = divmod(int(idx[b, ci, y, z]), w)
        i, j = (r - y * sh + ph) / dh, (q - z * sw + pw) / dw
        if 0 <= r < h and i in range(kh) and j in range(kw):
            grad_x[b, ci, r, q] += grad[b, ci, y, z]
        else:
            credited = False
    return grad_x, credited


def naive_avg_pool(x, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad, divisor_override):
    n, c, h, w = x.shape
    out = np.empty((n, c, oh, ow), x.dtype)
    for y, z in itertools.product(range(oh), range(ow)):
        h0, w0 = y * sh - ph, z * sw - pw
        h1, w1 = min(h0 + kh, h + ph), min(w0 + kw, w + pw)
        size = (h1 - h0) * (w1 - w0)
        h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
        if divisor_override:
            size = divisor_override
        elif not count_include_pad:
            size = (h1 - h0) * (w1 - w0)
        out[:, :, y, z] = x[:, :, h0:h1, w0:w1].sum(axis=(2, 3)) / size
    return out


# ---- output sizes and validation -----------------------------------------------------------


def test_pool_output_size_matches_torch_everywhere():
    torch = pytest.importorskip("torch")
    for size, k, s, d, ceil in itertools.product(range(1, 8), range(1, 5), range(1, 5),
                                                 range(1, 3), (False, True)):
        for p in range(k // 2 + 1):
            x = torch.zeros(1, 1, 1, size)
            try:
                expected = torch.nn.functional.max_pool2d(
                    x, (1, k), (1, s), (0, p), (1, d), ceil_mode=ceil).shape[-1]
            except RuntimeError:
                with pytest.raises(RuntimeError, match="Output size is too small"):
                    shapes.pool_output_shape((1, size), (1, k), (1, s), (0, p), (1, d), ceil)
                continue
            assert shapes.pool_output_size(size, k, s, p, d, ceil) == expected, (size, k, s, p,
                                                                                 d, ceil)


def test_conv_output_size_matches_unfold():
    torch = pytest.importorskip("torch")
    for size, k, s, p, d in itertools.product(range(1, 7), range(1, 4), range(1, 4), range(3),
                                              range(1, 3)):
        if d * (k - 1) + 1 > size + 2 * p:
            continue
        x = torch.zeros(1, 1, 1, size)
        cols = torch.nn.functional.unfold(x, (1, k), (1, d), (0, p), (1, s))
        assert shapes.conv_output_size(size, k, s, p, d) == cols.shape[-1]


def test_bad_window_arguments_raise_naming_the_sizes():
    with pytest.raises(RuntimeError, match=r"padded input size per channel: \(5 x 6\).*"
                                           r"Kernel size: \(7 x 3\)"):
        shapes.conv_output_shape((3, 4), (4, 3), (1, 1), (1, 1), (2, 1))
    with pytest.raises(RuntimeError, match="pad should be at most half.*pad=2, kernel_size=3"):
        shapes.pool_output_shape((8, 8), (3, 3), (1, 1), (2, 0), (1, 1), False)
    with pytest.raises(RuntimeError, match=r"input size: \(3x4\).*output size: \(-1x0\)"):
        shapes.pool_output_shape((3, 4), (5, 5), (1, 1), (0, 0), (1, 1), False)
    with pytest.raises(RuntimeError, match=r"stride should be greater than zero.*\(0, 1\)"):
        shapes.conv_output_shape((4, 4), (2, 2), (0, 1), (0, 0), (1, 1))
    with pytest.raises(RuntimeError, match="padding should be non-negative"):
        shapes.pool_output_shape((4, 4), (2, 2), (1, 1), (-1, 0), (1, 1), False)
    # The backends validate too, with the same errors.
    with pytest.raises(RuntimeError, match="Kernel size can't be greater"):
        CPU.im2col(np.zeros((1, 1, 3, 4)), 5, 5, 1, 1, 0, 0, 1, 1)
    with pytest.raises(ValueError, match=r"gradient has shape \(1, 1, 3, 3\), expected "
                                         r"\(1, 1, 2, 2\) for input \(1, 1, 4, 4\)"):
        CPU.avg_pool2d_backward(np.zeros((1, 1, 3, 3)), (1, 1, 4, 4), 2, 2, 2, 2, 0, 0,
                                False, True, None)


def test_torch_refuses_what_we_refuse():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = torch.zeros(1, 1, 3, 4)
    for call in (lambda: F.unfold(x, 5), lambda: F.max_pool2d(x, 3, padding=2),
                 lambda: F.avg_pool2d(x, 2, padding=2), lambda: F.max_pool2d(x, 5)):
        with pytest.raises(RuntimeError):
            call()


def test_column_chunks_bound_the_buffer():
    assert shapes.column_chunks(32, 10, limit=1000) == [slice(0, 32)]
    assert shapes.column_chunks(0, 10, limit=1000) == [slice(0, 0)]
    assert shapes.column_chunks(10, 300, limit=1000) == [slice(0, 3), slice(3, 6), slice(6, 9),
                                                         slice(9, 10)]
    # A single sample larger than the limit still makes progress, one at a time.
    assert shapes.column_chunks(2, 5000, limit=1000) == [slice(0, 1), slice(1, 2)]


# ---- im2col / col2im -------------------------------------------------------------------------


@pytest.mark.parametrize("case", CONV)
def test_im2col_matches_unfold_and_naive(case):
    torch = pytest.importorskip("torch")
    x = make_input(case.shape)
    cols = CPU.im2col(x, *case.conv_args)
    np.testing.assert_array_equal(cols, naive_im2col(x, *case.conv_args))
    expected = torch.nn.functional.unfold(torch.tensor(x), (case.kh, case.kw), (case.dh, case.dw),
                                          (case.ph, case.pw), (case.sh, case.sw))
    np.testing.assert_array_equal(cols, expected.numpy())


@pytest.mark.parametrize("case", CONV)
def test_col2im_is_the_adjoint_and_matches_fold(case):
    torch = pytest.importorskip("torch")
    x = make_input(case.shape, seed=1)
    cols = make_input(CPU.im2col(x, *case.conv_args).shape, seed=2)
    back = CPU.col2im(cols, case.shape, *case.conv_args)
    assert back.shape == case.shape and back.dtype == cols.dtype
    # <im2col(x), cols> == <x, col2im(cols)>
    np.testing.assert_allclose(np.vdot(naive_im2col(x, *case.conv_args), cols), np.vdot(x, back),
                               rtol=1e-12)
    expected = torch.nn.functional.fold(torch.tensor(cols), (case.h, case.w), (case.kh, case.kw),
                                        (case.dh, case.dw), (case.ph, case.pw), (case.sh, case.sw))
    np.testing.assert_allclose(back, expected.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CONV)
def test_batch_inner_columns_are_the_per_sample_ones_transposed(case):
    """im2col_batch_inner is im2col with the batch moved innermost, bit for bit, and
    col2im_batch_inner is col2im of the same columns (the same sums in the same order)."""
    x = make_input(case.shape)
    n = case.shape[0]
    cols = CPU.im2col(x, *case.conv_args)
    inner = CPU.im2col_batch_inner(x, *case.conv_args)
    assert inner.shape == (cols.shape[1], cols.shape[2] * n)
    np.testing.assert_array_equal(inner.reshape(cols.shape[1], cols.shape[2], n),
                                  cols.transpose(1, 2, 0))
    grads = make_input(cols.shape, seed=3)
    back = CPU.col2im_batch_inner(np.ascontiguousarray(grads.transpose(1, 2, 0)).reshape(
        inner.shape), case.shape, *case.conv_args)
    assert back.flags.c_contiguous and back.shape == case.shape
    np.testing.assert_array_equal(back, CPU.col2im(grads, case.shape, *case.conv_args))


def test_im2col_takes_non_contiguous_input_and_keeps_float32():
    x = make_input((3, 7, 6, 2), np.float32).transpose(3, 0, 2, 1)  # (2, 3, 6, 7), strided
    cols = CPU.im2col(x, 3, 2, 2, 1, 1, 0, 1, 2)
    assert cols.dtype == np.float32
    np.testing.assert_array_equal(cols, naive_im2col(np.ascontiguousarray(x), 3, 2, 2, 1, 1, 0,
                                                     1, 2))
    assert CPU.col2im(cols, x.shape, 3, 2, 2, 1, 1, 0, 1, 2).dtype == np.float32


# ---- max pooling -----------------------------------------------------------------------------


def _torch_max_pool(torch, x, case, grad=None):
    xt = torch.tensor(x, requires_grad=True)
    out, idx = torch.nn.functional.max_pool2d(xt, dilation=(case.dh, case.dw),
                                              ceil_mode=case.ceil_mode, return_indices=True,
                                              **case.torch_kwargs())
    if grad is not None:
        out.backward(torch.tensor(grad))
    return out.detach().numpy(), idx.numpy(), None if grad is None else xt.grad.numpy()


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("case", MAX_POOL)
def test_max_pool_matches_torch_and_naive(case, ties):
    torch = pytest.importorskip("torch")
    x = make_input(case.shape, ties=ties)
    out, idx = CPU.max_pool2d_forward(x, *case.max_pool_args)
    assert idx.dtype == np.int64
    ref_out, ref_idx = naive_max_pool(x, *case.conv_args, *out.shape[2:])
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(idx, ref_idx)
    grad = make_input(out.shape, seed=3)
    grad_x = CPU.max_pool2d_backward(grad, idx, case.shape, *case.max_pool_args)
    ref_grad, credited = naive_max_pool_backward(grad, idx, case.shape, *case.conv_args)
    np.testing.assert_allclose(grad_x, ref_grad, rtol=1e-12, atol=1e-12)
    # torch aborts the process on a backward through an index outside its window.
    t_out, t_idx, t_grad = _torch_max_pool(torch, x, case, grad if credited else None)
    np.testing.assert_array_equal(out, t_out)
    np.testing.assert_array_equal(idx, t_idx)
    if credited:
        np.testing.assert_allclose(grad_x, t_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", MAX_POOL)
def test_max_pool_nan_and_inf_follow_torch(case):
    torch = pytest.importorskip("torch")
    x = make_input(case.shape, seed=4, ties=True)
    flat = x.reshape(-1)
    flat[::5], flat[2::7], flat[3::11] = np.nan, -np.inf, np.inf
    out, idx = CPU.max_pool2d_forward(x, *case.max_pool_args)
    t_out, t_idx, _ = _torch_max_pool(torch, x, case)
    np.testing.assert_array_equal(out, t_out)  # NaNs compare equal here
    np.testing.assert_array_equal(idx, t_idx)
    np.testing.assert_array_equal(idx, naive_max_pool(x, *case.conv_args, *out.shape[2:])[1])


def test_max_pool_all_minus_inf_window_picks_its_first_cell():
    x = np.full((1, 1, 4, 5), -np.inf)
    out, idx = CPU.max_pool2d_forward(x, 3, 3, 2, 2, 1, 1, 1, 1, True)
    ref_out, ref_idx = naive_max_pool(x, 3, 3, 2, 2, 1, 1, 1, 1, *out.shape[2:])
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(idx, ref_idx)


def test_max_pool_float32_and_non_contiguous():
    x = make_input((2, 9, 7, 3), np.float32).transpose(0, 3, 2, 1)  # (2, 3, 7, 9), strided
    out, idx = CPU.max_pool2d_forward(x, 3, 2, 2, 2, 1, 0, 1, 1, True)
    assert out.dtype == np.float32
    ref_out, ref_idx = naive_max_pool(np.ascontiguousarray(x), 3, 2, 2, 2, 1, 0, 1, 1,
                                      *out.shape[2:])
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(idx, ref_idx)
    assert CPU.max_pool2d_backward(out, idx, x.shape, 3, 2, 2, 2, 1, 0, 1, 1,
                                   True).dtype == np.float32


# ---- average pooling -------------------------------------------------------------------------


@pytest.mark.parametrize("divisor_override", [None, 3])
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", AVG_POOL)
def test_avg_pool_matches_torch_and_naive(case, count_include_pad, divisor_override):
    torch = pytest.importorskip("torch")
    x = make_input(case.shape)
    flags = (count_include_pad, divisor_override)
    out = CPU.avg_pool2d_forward(x, *case.avg_pool_args, *flags)
    ref = naive_avg_pool(x, *case.avg_pool_args[:6], *out.shape[2:], *flags)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-15)
    xt = torch.tensor(x, requires_grad=True)
    t_out = torch.nn.functional.avg_pool2d(xt, ceil_mode=case.ceil_mode,
                                           count_include_pad=count_include_pad,
                                           divisor_override=divisor_override,
                                           **case.torch_kwargs())
    grad = make_input(out.shape, seed=5)
    t_out.backward(torch.tensor(grad))
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-12, atol=1e-15)
    grad_x = CPU.avg_pool2d_backward(grad, case.shape, *case.avg_pool_args, *flags)
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=1e-12, atol=1e-15)

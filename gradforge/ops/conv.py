"""Convolution: ``conv1d`` and ``conv2d`` by im2col and one GEMM per group.

Three Functions are closed under differentiation, so gradients of any order exist:

- ``Conv``: ``y = conv(x, w) + b``;
- ``ConvTranspose2d`` (ops/conv_transpose.py): the adjoint of ``conv(., w)``, which is the
  gradient of ``Conv`` with respect to ``x``;
- ``Conv2dWeightGrad``: ``dW = d<conv(x, w), g>/dw``, bilinear in ``x`` and ``g``.

Each one's backward is written with the other two. Arrays are NCHW; a 1-D convolution is
the 2-D one over a height-1 image. The im2col column buffer (``C*kh*kw`` rows per output
pixel) is bounded by processing the batch in chunks (``shapes.column_chunks``).

Two column layouts: per sample (N, C*kh*kw, OH*OW), whose GEMM result is already NCHW, and
batch-innermost (C*kh*kw, OH*OW*N) for small output grids, where the per-sample GEMMs would
be only OH*OW columns wide (16 at ResNet's 4x4 stage) and BLAS runs them several times
slower than one wide GEMM; the backend says below which grid size it prefers the second
(``batch_inner_pixels``; never on the GPU, whose kernels are per sample).
"""
from __future__ import annotations

from typing import NamedTuple

from ..autograd.function import Function
from ..backend.shapes import column_chunks, conv_output_shape
from ..tensor import Tensor
from ._util import spread_over_batch

__all__ = ["conv1d", "conv2d"]


class ConvGeometry(NamedTuple):
    """Stride, padding and dilation as (height, width) pairs, and the number of groups."""

    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int

    def window(self, kh: int, kw: int) -> tuple[int, ...]:
        """``kh, kw, sh, sw, ph, pw, dh, dw``: the arguments of the backend's im2col/col2im."""
        return (kh, kw, *self.stride, *self.padding, *self.dilation)

    def output_shape(self, size, kh: int, kw: int) -> tuple[int, int]:
        return conv_output_shape(tuple(size), (kh, kw), self.stride, self.padding,
                                 self.dilation)


# -- array kernels: NumPy or CuPy through the backend's im2col/col2im and xp.matmul ------------
class Columns(NamedTuple):
    """im2col columns kept from the forward pass for the weight gradient, and their layout."""

    array: object
    batch_inner: bool


def batch_inner(backend, oh: int, ow: int) -> bool:
    """Whether convolutions producing (or reading) an (oh, ow) grid use batch-inner columns."""
    return oh * ow <= backend.batch_inner_pixels


def batch_inner_rows(backend, x, groups: int):
    """(N, C, H, W) as (G, C/G, H*W*N): the batch innermost, the layout of batch-inner columns."""
    n, c, h, w = x.shape
    return backend.move_batch_last(x).reshape(groups, c // groups, h * w * n)


def _chunked(xp, n: int, bytes_per_sample: int, compute, shape, dtype):
    """``compute(batch_slice)`` over chunks of the batch, each within the column budget."""
    chunks = column_chunks(n, bytes_per_sample)
    if len(chunks) == 1:
        return compute(chunks[0])
    out = xp.empty(shape, dtype)
    for sl in chunks:
        out[sl] = compute(sl)
    return out


def conv_array(backend, x, weight, geom: ConvGeometry, keep_columns: bool = False):
    """``conv2d(x, weight)`` on arrays: per group, ``W (Og, Cg*kh*kw) @ cols (.., L)``.

    The batched matmul's result is already (N, G, Og, OH*OW), i.e. NCHW: no transpose.
    Returns ``(y, columns)``: with ``keep_columns`` and a batch built in one piece, the
    ``Columns`` for the weight gradient, else None.
    """
    xp = backend.xp
    n, c = x.shape[:2]
    o, cg, kh, kw = weight.shape
    g = geom.groups
    oh, ow = geom.output_shape(x.shape[2:], kh, kw)
    if x.size == 0 or weight.size == 0:
        # An empty batch, or no channels: nothing to gather (im2col needs a sample).
        return xp.zeros((n, o, oh, ow), x.dtype), None
    k = cg * kh * kw
    w_mat = weight.reshape(g, o // g, k)
    window = geom.window(kh, kw)
    chunks = column_chunks(n, c * kh * kw * oh * ow * x.itemsize)
    if batch_inner(backend, oh, ow):
        def product(part):
            cols = backend.im2col_batch_inner(part, *window).reshape(g, k, -1)
            return cols, xp.matmul(w_mat, cols).reshape(o, oh, ow, part.shape[0])
        if len(chunks) == 1:
            cols, y = product(x)
            columns = Columns(cols, True) if keep_columns else None
            return backend.move_batch_first(y), columns
        y = xp.empty((n, o, oh, ow), x.dtype)
        for sl in chunks:
            y[sl] = product(x[sl])[1].transpose(3, 0, 1, 2)
        return y, None
    if len(chunks) == 1:
        cols = backend.im2col(x, *window).reshape(n, g, k, oh * ow)
        y = xp.matmul(w_mat, cols).reshape(n, o, oh, ow)
        return y, (Columns(cols, False) if keep_columns else None)
    y = xp.empty((n, g, o // g, oh * ow), x.dtype)
    for sl in chunks:
        xp.matmul(w_mat, backend.im2col(x[sl], *window).reshape(-1, g, k, oh * ow), out=y[sl])
    return y.reshape(n, o, oh, ow), None


def weight_grad_array(backend, x, grad_y, geom: ConvGeometry, weight_shape, columns=None):
    """``dW[o, c, i, j] = sum_n sum_p g[n, o, p] * cols(x)[n, (c, i, j), p]`` on arrays.

    ``columns`` are x's columns when the forward pass kept them (else they are rebuilt,
    chunk by chunk). ``grad_y`` may be smaller than the convolution's output (a transposed
    convolution's output_padding crops it): the missing outputs have zero gradient.
    """
    xp = backend.xp
    n, c = x.shape[:2]
    o, cg, kh, kw = weight_shape
    g = geom.groups
    oh, ow = geom.output_shape(x.shape[2:], kh, kw)
    if x.size == 0 or grad_y.size == 0:
        return xp.zeros(weight_shape, x.dtype)
    if grad_y.shape[2:] != (oh, ow):
        padded = xp.zeros((n, o, oh, ow), grad_y.dtype)
        padded[:, :, :grad_y.shape[2], :grad_y.shape[3]] = grad_y
        grad_y = padded
    k = cg * kh * kw
    window = geom.window(kh, kw)
    chunks = [slice(0, n)] if columns is not None else \
        column_chunks(n, c * kh * kw * oh * ow * x.itemsize)
    total = None
    if batch_inner(backend, oh, ow):
        for sl in chunks:
            cols = columns.array if columns is not None else \
                backend.im2col_batch_inner(x[sl], *window).reshape(g, k, -1)
            # One GEMM per group over every pixel of every sample: (K, L*N) @ (L*N, Og).
            part = xp.matmul(cols, batch_inner_rows(backend, grad_y[sl], g).transpose(0, 2, 1))
            total = part if total is None else total + part
        return total.transpose(0, 2, 1).reshape(weight_shape)
    gy = grad_y.reshape(n, g, o // g, oh * ow)
    for sl in chunks:
        cols = columns.array if columns is not None else \
            backend.im2col(x[sl], *window).reshape(-1, g, k, oh * ow)
        # One batched GEMM per sample and group, summed over the batch. cols @ g^T (K, Og)
        # rather than g @ cols^T (Og, K): the large operand is read in its own row-major
        # layout, which OpenBLAS runs faster (up to 2x on small images).
        part = xp.matmul(cols, gy[sl].transpose(0, 1, 3, 2)).sum(axis=0)
        total = part if total is None else total + part
    return total.transpose(0, 2, 1).reshape(weight_shape)


def conv_transpose_array(backend, x, weight, geom: ConvGeometry, out_hw):
    """The adjoint of ``conv_array`` in its input, onto an (OH, OW) = ``out_hw`` grid.

    ``weight`` is (Cin, Cout/G, kh, kw): the weight of the convolution from the output grid
    back to ``x``. Per group ``cols = W^T x``, then col2im sums the overlapping windows. With
    stride 1 it is also a plain convolution of ``x`` with the spatially flipped,
    channel-swapped kernel, whose im2col buffer has Cin*kh*kw rows per output pixel against
    Cout*kh*kw per input pixel for col2im's: the convolution is taken when its buffer is no
    larger (then it is the faster formulation on NumPy: one copy instead of kh*kw additions).
    """
    xp = backend.xp
    n, cin, h, w = x.shape
    _, cout_g, kh, kw = weight.shape
    g = geom.groups
    (sh, sw), (ph, pw), (dh, dw) = geom.stride, geom.padding, geom.dilation
    out_hw = tuple(out_hw)
    if x.size == 0 or weight.size == 0:
        return xp.zeros((n, g * cout_g) + out_hw, x.dtype)
    natural = ((h - 1) * sh - 2 * ph + dh * (kh - 1) + 1, (w - 1) * sw - 2 * pw + dw * (kw - 1) + 1)
    if ((sh, sw) == (1, 1) and out_hw == natural and ph <= dh * (kh - 1)
            and pw <= dw * (kw - 1) and cin * out_hw[0] * out_hw[1] <= g * cout_g * h * w):
        flipped = weight.reshape(g, cin // g, cout_g, kh, kw).transpose(0, 2, 1, 3, 4)
        flipped = flipped[..., ::-1, ::-1].reshape(g * cout_g, cin // g, kh, kw)
        full = ConvGeometry((1, 1), (dh * (kh - 1) - ph, dw * (kw - 1) - pw), geom.dilation, g)
        return conv_array(backend, x, flipped, full)[0]
    # The convolution over the output grid has at least h x w windows; with an output_padding
    # of a stride or more it has more, which x (zero-padded) does not feed.
    ch, cw = geom.output_shape(out_hw, kh, kw)
    if (ch, cw) != (h, w):
        padded = xp.zeros((n, cin, ch, cw), x.dtype)
        padded[:, :, :h, :w] = x
        x = padded
    k = cout_g * kh * kw
    w_mat = weight.reshape(g, cin // g, k).transpose(0, 2, 1)
    window = geom.window(kh, kw)
    if batch_inner(backend, ch, cw):
        def compute(sl):
            cols = xp.matmul(w_mat, batch_inner_rows(backend, x[sl], g))
            return backend.col2im_batch_inner(cols.reshape(g * k, -1), (cols.shape[2] // (ch * cw),
                                              g * cout_g) + out_hw, *window)
        return _chunked(xp, n, g * k * ch * cw * x.itemsize, compute, (n, g * cout_g) + out_hw,
                        x.dtype)

    def compute(sl):
        cols = xp.matmul(w_mat, x[sl].reshape(-1, g, cin // g, ch * cw))
        return backend.col2im(cols.reshape(-1, g * k, ch * cw), (cols.shape[0], g * cout_g)
                              + out_hw, *window)

    return _chunked(xp, n, g * k * ch * cw * x.itemsize, compute, (n, g * cout_g) + out_hw,
                    x.dtype)


def crop(t: Tensor, hw) -> Tensor:
    """The top-left (H, W) block of an NCHW tensor (itself when it already has that size)."""
    if tuple(t.shape[2:]) == tuple(hw):
        return t
    return t[:, :, :hw[0], :hw[1]]


# -- Functions -------------------------------------------------------------------------------
class Conv2d(Function):
    """y = conv(x, w) + b; d x = conv_transpose(g, w), d w = Conv2dWeightGrad(x, g), d b = sum g.

    NOTE: when the weight needs a gradient, the im2col columns of x (when built in one piece,
    i.e. within ``shapes.COLUMN_BUFFER_BYTES``) are saved for backward, as torch's own im2col
    convolution saves them: the weight gradient then costs one GEMM and no second im2col.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, geom):
        keep = len(ctx.needs_input_grad) > 1 and ctx.needs_input_grad[1]
        y, columns = conv_array(ctx.device.backend, x._data, weight._data, geom, keep)
        # Saved beside the tensors: freed with them after backward.
        ctx.save_for_backward(x, weight, columns)
        ctx.geom = geom
        if bias is not None:
            y += spread_over_batch(ctx.xp, bias._data.reshape(1, -1, 1, 1), y.shape)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        # Imported here: ops/conv_transpose.py builds on this module.
        from .conv_transpose import ConvTranspose2d
        x, weight, columns = ctx.saved_tensors
        needs = ctx.needs_input_grad
        geom = ctx.geom
        grad_x = ConvTranspose2d.apply(grad_output, weight, None, geom, tuple(x.shape[2:])) \
            if needs[0] else None
        grad_w = Conv2dWeightGrad.apply(x, grad_output, geom, tuple(weight.shape), columns) \
            if needs[1] else None
        grad_b = grad_output.sum((0, 2, 3)) if needs[2] else None
        return grad_x, grad_w, grad_b, None


class Conv2dWeightGrad(Function):
    """dW = sum_n g_n cols(x_n)^T; with H its gradient: d x = conv_transpose(g, H),
    d g = conv(x, H)."""

    @staticmethod
    def forward(ctx, x, grad_y, geom, weight_shape, columns=None):
        ctx.save_for_backward(x, grad_y)
        ctx.geom = geom
        return weight_grad_array(ctx.device.backend, x._data, grad_y._data, geom, weight_shape,
                                 columns)

    @staticmethod
    def backward(ctx, grad_output):
        from .conv_transpose import ConvTranspose2d
        x, grad_y = ctx.saved_tensors
        needs = ctx.needs_input_grad
        geom = ctx.geom
        grad_x = ConvTranspose2d.apply(grad_y, grad_output, None, geom, tuple(x.shape[2:])) \
            if needs[0] else None
        grad_g = crop(Conv2d.apply(x, grad_output, None, geom), grad_y.shape[2:]) \
            if needs[1] else None
        return grad_x, grad_g, None, None, None


# -- argument handling shared with conv_transpose ------------------------------------------
def expand_param(value, n: int, name: str) -> tuple[int, ...]:
    """An int or a sequence of 1 or ``n`` ints as ``n`` ints (torch's conv argument rule)."""
    if isinstance(value, int):
        return (value,) * n
    values = tuple(int(v) for v in value)
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise RuntimeError(f"expected {name} to be a single integer value or a list of {n} "
                           "values to match the convolution dimensions, but got "
                           f"{name}={list(values)}")
    return values


def as_batched(input: Tensor, nd: int, name: str) -> tuple[Tensor, bool]:
    """``(input with a batch dim, whether one was added)``; torch's error for other ranks."""
    if input.ndim == nd + 1:
        return input.unsqueeze(0), True
    if input.ndim != nd + 2:
        raise RuntimeError(f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input to "
                           f"{name}, but got input of size: {list(input.shape)}")
    return input, False


def check_operands(name: str, input: Tensor, weight: Tensor, bias, nd: int) -> None:
    """Floating operands of one dtype and a weight of rank ``nd + 2``."""
    if weight.ndim != nd + 2:
        raise RuntimeError(f"{name}: expected a {nd + 2}-D weight, but got weight of size "
                           f"{list(weight.shape)}")
    for t in (weight, bias):
        if t is not None and t.dtype != input.dtype:
            raise RuntimeError(f"{name}: expected input, weight and bias of one dtype, but got "
                               f"input {input.dtype} and {'weight' if t is weight else 'bias'} "
                               f"{t.dtype}")
    if not input.is_floating_point():
        raise RuntimeError(f"{name}: expected a floating point input, got {input.dtype}")


def check_geometry(stride, padding, dilation, groups: int) -> None:
    if groups <= 0:
        raise RuntimeError(f"non-positive groups is not supported (got groups={groups})")
    if any(s <= 0 for s in stride):
        raise RuntimeError(f"non-positive stride is not supported (got stride={list(stride)})")
    if any(p < 0 for p in padding):
        raise RuntimeError(f"negative padding is not supported (got padding={list(padding)})")
    if any(d <= 0 for d in dilation):
        raise RuntimeError(f"dilation should be greater than zero (got dilation="
                           f"{list(dilation)})")


def check_bias(weight_shape, bias, channels: int) -> None:
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != channels):
        raise RuntimeError(f"Given weight of size {list(weight_shape)}, expected bias to be "
                           f"1-dimensional with {channels} elements, but got bias of size "
                           f"{list(bias.shape)} instead")


def lift_1d(*tensors):
    """(N, C, L) tensors (or None) as (N, C, 1, L): a 1-D op is the 2-D one at height 1."""
    return tuple(None if t is None else t.unsqueeze(2) for t in tensors)


def _same_padding(x: Tensor, kernel, dilation, stride, nd: int):
    """torch's ``padding='same'``: total ``d*(k-1)``, the odd one on the right (by a pad)."""
    from .spatial import pad
    if any(s != 1 for s in stride):
        raise RuntimeError("padding='same' is not supported for strided convolutions")
    total = [d * (k - 1) for k, d in zip(kernel, dilation)]
    left = tuple(t // 2 for t in total)
    extra = [t - 2 * (t // 2) for t in total]
    if any(extra):
        spec = []
        for e in reversed(extra):  # pad() lists the last dim first
            spec += [0, e]
        x = pad(x, tuple(spec))
    return x, left


def _conv(name: str, nd: int, input, weight, bias, stride, padding, dilation, groups):
    check_operands(name, input, weight, bias, nd)
    x, unbatched = as_batched(input, nd, name)
    stride = expand_param(stride, nd, "stride")
    dilation = expand_param(dilation, nd, "dilation")
    kernel = tuple(weight.shape[2:])
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0,) * nd
        elif padding == "same":
            check_geometry(stride, (0,) * nd, dilation, groups)
            x, padding = _same_padding(x, kernel, dilation, stride, nd)
        else:
            raise RuntimeError(f"Invalid padding string: {padding!r}")
    padding = expand_param(padding, nd, "padding")
    check_geometry(stride, padding, dilation, groups)
    out_channels, in_per_group = weight.shape[0], weight.shape[1]
    if out_channels % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} "
                           f"at dimension 0, but got weight of size {list(weight.shape)} instead")
    if x.shape[1] != in_per_group * groups:
        raise RuntimeError(f"Given groups={groups}, weight of size {list(weight.shape)}, expected "
                           f"input{list(x.shape)} to have {in_per_group * groups} channels, but "
                           f"got {x.shape[1]} channels instead")
    check_bias(weight.shape, bias, out_channels)
    if nd == 1:
        x, weight = lift_1d(x, weight)
        stride, padding, dilation = (1, *stride), (0, *padding), (1, *dilation)
    # Validates the window against the padded input, with torch's message.
    conv_output_shape(tuple(x.shape[2:]), tuple(weight.shape[2:]), stride, padding, dilation)
    out = Conv2d.apply(x, weight, bias, ConvGeometry(stride, padding, dilation, groups))
    if nd == 1:
        out = out.squeeze(2)
    return out.squeeze(0) if unbatched else out


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation, as in torch) over an (N, C, H, W) input.

    Args:
        input: (N, C_in, H, W) or unbatched (C_in, H, W).
        weight: (C_out, C_in/groups, kH, kW).
        bias: (C_out,) or None.
        stride, dilation: an int or an (h, w) pair.
        padding: an int, an (h, w) pair, ``'valid'`` (none) or ``'same'`` (output size equal
            to the input's; stride 1 only).
        groups: split the channels into groups convolved separately (C_in for depthwise).
    """
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """1-D convolution over an (N, C_in, L) or (C_in, L) input with a (C_out, C_in/groups, k)
    weight; arguments as ``conv2d``."""
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)

"""The CPU backend: NumPy arrays, NumPy's PCG64 generator, vectorised NumPy twins of the kernels.

Where NumPy and CuPy differ, the backend exposes a named method (``add_at``, ``im2col`` ...)
that ops call without branching; ``backend/cuda.py`` implements the same names.
"""
from __future__ import annotations

import ctypes
import functools
import math
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .device import CPU
from .shapes import (COLUMN_BUFFER_BYTES, conv_output_shape, keepdim_shape,
                     pool2d_grad_output_shape, pool_output_shape, sum_subscripts)


class CPUBackend:
    """NumPy on the host."""

    name = "cpu"
    xp = np
    device = CPU
    batch_inner_pixels = 196
    """Convolutions whose output grid has at most this many pixels (14x14) use batch-inner
    columns (ops/conv.py): measured faster for ResNet's 14x14, 7x7 and 4x4 stages and
    LeNet's 10x10 layer, slower from 16x16 up."""

    def asarray(self, data, dtype=None):
        """Host data (a NumPy array, list or scalar) as an array of this backend."""
        return np.asarray(data, dtype=dtype)

    def to_host(self, array) -> np.ndarray:
        return np.asarray(array)

    def synchronize(self) -> None:
        """Nothing to wait for: NumPy runs synchronously."""

    def activate(self) -> None:
        """Nothing to make current on the host (``CUDABackend.activate`` switches GPUs)."""
        return None

    def new_generator(self, seed: int):
        """A bit generator for ``gradforge.Generator`` on this device."""
        return np.random.Generator(np.random.PCG64(seed))

    def rng_state_bytes(self, rng, seed: int) -> bytes:
        """Serialise a PCG64 generator (seed, 128-bit state and increment, cached half-word)."""
        st = rng.bit_generator.state
        return (int(seed).to_bytes(8, "little") + st["state"]["state"].to_bytes(16, "little")
                + st["state"]["inc"].to_bytes(16, "little") + bytes([st["has_uint32"]])
                + int(st["uinteger"]).to_bytes(4, "little"))

    def rng_from_state_bytes(self, data: bytes):
        """``(seed, generator)`` from ``rng_state_bytes``; a clear error for foreign bytes."""
        if len(data) != 45:
            raise RuntimeError(f"invalid CPU RNG state: expected 45 bytes, got {len(data)}")
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": int.from_bytes(data[8:24], "little"),
                      "inc": int.from_bytes(data[24:40], "little")},
            "has_uint32": data[40], "uinteger": int.from_bytes(data[41:45], "little")}
        return int.from_bytes(data[:8], "little"), rng

    def workspace(self, shape, dtype):
        """An uninitialised array for transient use (im2col columns, padded copies).

        A large fresh array costs the kernel's zero-fill of its pages on first touch: for
        the 72 MiB columns of a 64-channel 3x3 convolution at batch 32, 7 ms of a 12 ms
        im2col. Large buffers are therefore kept (``_WORKSPACE_BYTES`` at most) and handed
        out again once nothing refers to them any more, as a caching allocator does.
        """
        return _WORKSPACE.take(shape, np.dtype(dtype))

    def add_at(self, target, index, values) -> None:
        """``target[index] += values`` with repeated indices accumulating (unbuffered)."""
        np.add.at(target, index, values)

    def axpy(self, y, alpha, x) -> None:
        """``y += alpha * x`` in place (``x`` broadcasts to ``y``; ``y``'s dtype is kept).

        NumPy has no fused multiply-add: ``alpha * x`` is a temporary as large as ``x``. For
        contiguous operands of one dtype the product goes through a small buffer, block by
        block, and stays in cache: 155 us instead of 216 us for 512x784 float32.
        """
        if (y.dtype.kind == "f" and x.dtype == y.dtype and x.shape == y.shape
                and x.size > _AXPY_BLOCK
                and x.flags.c_contiguous and y.flags.c_contiguous):
            flat_x, flat_y = x.reshape(-1), y.reshape(-1)
            buffer = np.empty(_AXPY_BLOCK, y.dtype)
            for start in range(0, flat_y.size, _AXPY_BLOCK):
                stop = min(start + _AXPY_BLOCK, flat_y.size)
                part, scaled = flat_y[start:stop], buffer[:stop - start]
                np.multiply(flat_x[start:stop], alpha, out=scaled)
                np.add(part, scaled, out=part)
            return
        np.add(y, np.multiply(x, alpha), out=y, casting="unsafe")

    def where(self, condition, x, y):
        """``np.where(condition, x, y)``; a bitwise select when one side is +0 and the other a
        floating array of the condition's shape (ReLU's backward, gradient masks).

        NumPy's ``where`` branches per element: on a random mask it runs about 14x slower
        (240 us for 128x512 float32) than ANDing the float's bits with an all-ones/zero mask,
        which gives the same bits (nan, inf and -0.0 pass through unchanged).
        """
        if _plus_zero(y) and _float_like(x, condition):
            return _keep_bits(condition, x)
        if _plus_zero(x) and _float_like(y, condition):
            return _keep_bits(~condition, y)
        return np.where(condition, x, y)

    def sum(self, x, axis: tuple, keepdims: bool = False, dtype=None):
        """``np.sum``, by ``einsum`` where NumPy's reduction loop is slow: floats summed over
        some axes including the last (a bias gradient's (0, 2, 3), a softmax's last axis),
        2.5-3x faster at LeNet and ResNet sizes. Not for a full reduction, or more than
        ``_EINSUM_MAX_COUNT`` values per result: einsum adds in one running sum per result
        (with SIMD partial sums), NumPy pairwise, which stays accurate for long sums."""
        ndim, kept_shape = x.ndim, keepdim_shape(x.shape, axis)
        if (dtype is not None or x.dtype.char not in "fd" or x.size < 4096
                or not axis or len(axis) == ndim or ndim - 1 not in axis
                or x.size // math.prod(kept_shape) > _EINSUM_MAX_COUNT):
            return np.sum(x, axis=axis, keepdims=keepdims, dtype=dtype)
        out = np.einsum(sum_subscripts(ndim, axis), x)
        return out.reshape(kept_shape) if keepdims else out

    def relu(self, x, out=None):
        """``max(x, 0)`` (NaN stays NaN). NumPy's ``maximum`` has no vector loop for an array
        against a scalar: a contiguous float array is compared, in rows of
        ``_ZERO_ROW`` values, with one row of zeros broadcast down (an array-array loop),
        3x faster on a LeNet-size activation (301 K values: 146 -> 44 us)."""
        if x.dtype.kind != "f" or x.size < _ZERO_ROW or not x.flags.c_contiguous or (
                out is not None and not out.flags.c_contiguous):
            return np.maximum(x, 0, out=out)
        if out is None:
            out = np.empty_like(x)
        zeros, src, dst = _zero_row(x.dtype), x.reshape(-1), out.reshape(-1)
        whole = x.size - x.size % _ZERO_ROW
        np.maximum(src[:whole].reshape(-1, _ZERO_ROW), zeros,
                   out=dst[:whole].reshape(-1, _ZERO_ROW))
        np.maximum(src[whole:], zeros[0, :x.size - whole], out=dst[whole:])
        return out

    def erf(self, x):
        """The error function; NumPy has none, so math.erf elementwise (exact to round-off)."""
        return _ERF(x).astype(x.dtype, copy=False) if x.ndim else np.asarray(
            math.erf(float(x)), dtype=x.dtype)

    # -- convolution and pooling: NumPy twins of kernels/im2col.cu and kernels/pool2d.cu ----
    # Python loops run over kernel offsets only; each offset is one strided slice of the image
    # against one block of the output. col2im and average pooling add the offsets in (i, j)
    # order, the order in which the kernels sum, so both agree to the last bit.

    def im2col(self, x, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int, dh: int,
               dw: int):
        """Columns of ``x`` as ``torch.nn.functional.unfold``: (N, C*kh*kw, OH*OW).

        One padded copy of ``x`` (when padding) and one copy into the column layout, both in
        workspace buffers, or a view of ``x`` where none is needed (a 1x1 window with stride 1
        and no padding). The buffer is ``C*kh*kw*OH*OW`` elements per sample: callers bound it
        with ``shapes.column_chunks``. The result is for reading: it may be a view of ``x``.
        """
        n, c, h, w = x.shape
        oh, ow = conv_output_shape((h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw))
        if kh == kw == sh == sw == 1 and not (ph or pw):
            return x.reshape(n, c, h * w)
        padded = self.workspace((n, c, h + 2 * ph, w + 2 * pw), x.dtype) if ph or pw else x
        cols = self.workspace((n, c * kh * kw, oh * ow), x.dtype)
        s0, s1, s2, s3 = padded.strides
        windows = as_strided(padded, (n, c, kh, kw, oh, ow),
                             (s0, s1, s2 * dh, s3 * dw, s2 * sh, s3 * sw), writeable=False)
        target = cols.reshape(windows.shape)

        def copy(sl):
            if ph or pw:
                _fill_padded(padded[sl], x[sl], 2, ph, pw)
            target[sl] = windows[sl]
        over_batch(n, cols.size, copy)
        return cols

    def col2im(self, cols, x_shape, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int,
               dh: int, dw: int):
        """The adjoint of ``im2col`` (``torch.nn.functional.fold``): sums overlapping columns."""
        n, c, h, w = x_shape
        oh, ow = conv_output_shape((h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw))
        cols = cols.reshape(n, c, kh, kw, oh, ow)
        x = np.zeros(x_shape, cols.dtype)
        for (i, j), image, out in _window_offsets(h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh,
                                                     dw):
            x[image] += cols[:, :, i, j][out]
        return x

    def move_batch_last(self, x, out=None):
        """(N, ...) as a contiguous (..., N) array (into ``out`` if given): the layout of
        batch-inner columns. A transpose copied in tiles (``_transpose_into``)."""
        n = x.shape[0]
        if out is None:
            out = np.empty(x.shape[1:] + (n,), x.dtype)
        if x.flags.c_contiguous:
            _transpose_into(out.reshape(-1, n), x.reshape(n, -1))
        else:
            out[...] = np.moveaxis(x, 0, -1)
        return out

    def move_batch_first(self, y):
        """(..., N) as a contiguous (N, ...) array: back from the batch-inner layout."""
        n = y.shape[-1]
        out = np.empty((n,) + y.shape[:-1], y.dtype)
        if y.flags.c_contiguous:
            _transpose_into(out.reshape(n, -1), y.reshape(-1, n))
        else:
            out[...] = np.moveaxis(y, -1, 0)
        return out

    def im2col_batch_inner(self, x, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int,
                           dh: int, dw: int):
        """The columns of ``im2col`` with the batch innermost: (C*kh*kw, OH*OW*N).

        ``x`` is copied once, transposed to (C, H, W, N) with its padding, then the windows
        are copied out in runs of OW*N contiguous elements. Workspace buffers, as ``im2col``.
        """
        n, c, h, w = x.shape
        oh, ow = conv_output_shape((h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw))
        padded = self.workspace((c, h + 2 * ph, w + 2 * pw, n), x.dtype)
        if ph or pw:
            _fill_padded(padded, self.move_batch_last(x), 1, ph, pw)
        else:
            self.move_batch_last(x, out=padded)
        s0, s1, s2, s3 = padded.strides
        windows = as_strided(padded, (c, kh, kw, oh, ow, n),
                             (s0, s1 * dh, s2 * dw, s1 * sh, s2 * sw, s3), writeable=False)
        cols = self.workspace((c * kh * kw, oh * ow * n), x.dtype)
        cols.reshape(windows.shape)[...] = windows
        return cols

    def col2im_batch_inner(self, cols, x_shape, kh: int, kw: int, sh: int, sw: int, ph: int,
                           pw: int, dh: int, dw: int):
        """The adjoint of ``im2col_batch_inner``: a contiguous (N, C, H, W) array.

        The sums run in a (C, H, W, N) buffer, where each kernel offset adds runs of OW*N
        contiguous elements (in ``col2im``'s (N, C, H, W) they are only OW long), in the same
        (i, j) order as ``col2im``.
        """
        n, c, h, w = x_shape
        oh, ow = conv_output_shape((h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw))
        cols = cols.reshape(c, kh, kw, oh, ow, n)
        x = np.zeros((c, h, w, n), cols.dtype)
        for (i, j), image, out in _window_offsets(h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh,
                                                     dw):
            x[image + (slice(None),)] += cols[:, i, j][out + (slice(None),)]
        return self.move_batch_first(x)

    def max_pool2d_forward(self, x, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int,
                           dh: int, dw: int, ceil_mode: bool):
        """``(out, indices)`` as ``torch.nn.functional.max_pool2d(..., return_indices=True)``;
        a large batch is split over the threads (``over_batch``)."""
        n, c, h, w = x.shape
        oh, ow = pool_output_shape((h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil_mode)
        if not _parallel(n, x.size):
            return _max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, dh, dw, ceil_mode)
        out = np.empty((n, c, oh, ow), x.dtype)
        indices = np.empty((n, c, oh, ow), np.int64)

        def pool(sl):
            out[sl], indices[sl] = _max_pool2d_forward(x[sl], kh, kw, sh, sw, ph, pw, dh, dw,
                                                       ceil_mode)
        over_batch(n, x.size, pool)
        return out, indices

    def max_pool2d_backward(self, grad_out, indices, x_shape, kh: int, kw: int, sh: int,
                            sw: int, ph: int, pw: int, dh: int, dw: int, ceil_mode: bool):
        """Gradient of ``max_pool2d_forward``: each output's gradient goes to its argmax."""
        n, c, h, w = x_shape
        oh, ow = pool2d_grad_output_shape(grad_out.shape, x_shape, (kh, kw), (sh, sw),
                                          (ph, pw), (dh, dw), ceil_mode)
        grad_x = np.zeros(x_shape, grad_out.dtype)

        def scatter(sl):
            _max_pool2d_scatter(grad_x[sl], grad_out[sl], indices[sl], oh, ow, kh, kw, sh, sw,
                                ph, pw, dh, dw)
        over_batch(n, grad_x.size, scatter)
        return grad_x

    def avg_pool2d_forward(self, x, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int,
                           ceil_mode: bool, count_include_pad: bool,
                           divisor_override: int | None):
        """``torch.nn.functional.avg_pool2d`` (no dilation, as in torch)."""
        n, c, h, w = x.shape
        oh, ow = pool_output_shape((h, w), (kh, kw), (sh, sw), (ph, pw), (1, 1), ceil_mode)
        out = np.zeros((n, c, oh, ow), x.dtype)
        for _, image, dst in _window_offsets(h, w, oh, ow, kh, kw, sh, sw, ph, pw, 1, 1):
            out[dst] += x[image]
        out /= _avg_divisor(h, w, oh, ow, kh, kw, sh, sw, ph, pw, count_include_pad,
                            divisor_override, x.dtype)
        return out

    def avg_pool2d_backward(self, grad_out, x_shape, kh: int, kw: int, sh: int, sw: int,
                            ph: int, pw: int, ceil_mode: bool, count_include_pad: bool,
                            divisor_override: int | None):
        """Gradient of ``avg_pool2d_forward``: each window spreads grad / divisor over itself."""
        h, w = x_shape[2:]
        oh, ow = pool2d_grad_output_shape(grad_out.shape, x_shape, (kh, kw), (sh, sw),
                                          (ph, pw), (1, 1), ceil_mode)
        scaled = grad_out / _avg_divisor(h, w, oh, ow, kh, kw, sh, sw, ph, pw,
                                         count_include_pad, divisor_override, grad_out.dtype)
        if (sh, sw) == (kh, kw) and not (ph or pw) and oh * kh <= h and ow * kw <= w:
            # Windows that tile the image without overlap: each cell receives exactly one
            # window's value (the same bits as the sum below), written in one pass as a
            # broadcast instead of kh*kw read-modify-write passes over strided views (which
            # ran 2-4x slower, depending on how the two arrays' addresses alias). Each row
            # is widened first (np.repeat), so the broadcast copies runs of OW*kw values,
            # not of kw (a 2x2 pooling's backward on 32x64x32x32: 3.3 -> 1.0 ms).
            grad_x = np.empty(x_shape, grad_out.dtype)
            tiles = grad_x[:, :, :oh * kh, :ow * kw]  # a view: splitting axes copies nothing
            rows = np.repeat(scaled, kw, axis=3) if kw > 1 else scaled
            tiles.reshape(*x_shape[:2], oh, kh, ow * kw)[...] = rows[:, :, :, None, :]
            grad_x[:, :, oh * kh:] = 0
            grad_x[:, :, :, ow * kw:] = 0
            return grad_x
        grad_x = np.zeros(x_shape, grad_out.dtype)
        for _, image, dst in _window_offsets(h, w, oh, ow, kh, kw, sh, sw, ph, pw, 1, 1):
            grad_x[image] += scaled[dst]
        return grad_x


# -- threads over the batch -----------------------------------------------------------------
PARALLEL_MIN_ELEMENTS = 2 ** 21
"""Work below this many elements runs in the calling thread: measured on two cores, a
(64, 6, 28, 28) max pooling (0.3 M elements) got slower split in two (GIL hand-offs between
NumPy's many small calls), a (32, 64, 32, 32) one (2 M) went from 7.6 to 3.3 ms."""

_threads = {"count": None, "executor": None}
_threads_lock = threading.Lock()


def _default_threads() -> int:
    """OMP_NUM_THREADS when set (torch's rule), else the CPUs this process may run on."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def get_num_threads() -> int:
    """Threads the CPU backend splits large batched loops over (``torch.get_num_threads``)."""
    if _threads["count"] is None:
        _threads["count"] = _default_threads()
    return _threads["count"]


def set_num_threads(count: int) -> None:
    """Use ``count`` threads for the CPU backend's batched loops (im2col, max pooling).

    As ``torch.set_num_threads``. BLAS (NumPy's OpenBLAS) keeps its own thread count, set by
    ``OPENBLAS_NUM_THREADS`` before NumPy is imported.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise RuntimeError(f"set_num_threads expects a positive integer, but got {count!r}")
    with _threads_lock:
        _threads["count"] = count
        if _threads["executor"] is not None:
            _threads["executor"].shutdown(wait=False)
            _threads["executor"] = None


def _parallel(n: int, elements: int) -> bool:
    return n > 1 and elements >= PARALLEL_MIN_ELEMENTS and get_num_threads() > 1


def over_batch(n: int, elements: int, job) -> None:
    """``job(batch_slice)`` over the batch, split across the threads when the work is large.

    NumPy releases the GIL inside its loops, so jobs on disjoint slices of the batch run in
    parallel; the first slice runs in the calling thread. Jobs must write disjoint outputs.
    """
    if not _parallel(n, elements):
        job(slice(0, n))
        return
    parts = min(get_num_threads(), n)
    bounds = [n * i // parts for i in range(parts + 1)]
    slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    with _threads_lock:
        if _threads["executor"] is None:
            _threads["executor"] = ThreadPoolExecutor(get_num_threads() - 1,
                                                      thread_name_prefix="gradforge-cpu")
        executor = _threads["executor"]
    futures = [executor.submit(job, sl) for sl in slices[1:]]
    try:
        job(slices[0])
    finally:
        wait(futures)  # every slice is done (or failed) before anything is returned or raised
    for f in futures:
        f.result()


def _forget_threads_after_fork() -> None:
    # A forked child (a DataLoader worker) has none of the parent's threads.
    _threads["executor"] = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_threads_after_fork)


def _max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, dh, dw, ceil_mode):
    """``(out, indices)`` as ``torch.nn.functional.max_pool2d(..., return_indices=True)``.

    ``indices`` (int64) are flat positions in the H*W plane. As in torch the first maximum
    in row-major window order wins, a NaN wins (the last one), padding is never chosen.
    No column buffer: the maximum is separable, so a running ``np.maximum`` over the
    column offsets gives each input row's window maxima, and one over the row offsets
    finishes the windows; the first row holding the maximum, then its first column, is
    exactly the first maximum in row-major order.
    """
    h, w = x.shape[2:]
    oh, ow = pool_output_shape((h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil_mode)
    # Window offsets (i, j) are coded i*kw + j in the smallest unsigned type that fits.
    code = np.min_scalar_type(kh * kw - 1)
    first_j = _first_offset(w, ow, kw, sw, pw, dw)
    rows, j = _running_max(x, 3, ow, kw, sw, pw, dw, first_j.astype(code))
    first = np.add.outer(_first_offset(h, oh, kh, sh, ph, dh) * kw, first_j).astype(code)
    out, winner = _running_max(rows, 2, oh, kh, sh, ph, dh, first, inner=(j, kw))
    if out.size and np.isnan(out.max()):  # max propagates NaN: one cheap reduction
        for (ki, kj), image, dst in _window_offsets(h, w, oh, ow, kh, kw, sh, sw, ph, pw,
                                                     dh, dw):
            winner[dst] = np.where(np.isnan(x[image]), ki * kw + kj, winner[dst])
    offset, base = _index_grid(w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw)
    indices = np.take(offset, winner)
    indices += base
    empty = _empty_windows(h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw)
    if empty is not None:
        cell = np.add.outer(_first_inside(oh, sh, ph, dh) * w, _first_inside(ow, sw, pw, dw))
        indices = np.where(empty, cell, indices)
    return out, indices


def _max_pool2d_scatter(grad_x, grad_out, indices, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw):
    """``grad_x`` (zeros, (N, C, H, W)) += each output's gradient at its argmax cell."""
    n, c, h, w = grad_x.shape
    # An empty window's index names no cell of it: the kernel (a gather over windows)
    # never credits it, so neither does this.
    empty = _empty_windows(h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw)
    if empty is not None:
        grad_out, indices = np.where(empty, 0, grad_out), np.where(empty, 0, indices)
    flat = (indices + np.arange(n * c).reshape(n, c, 1, 1) * (h * w)).reshape(-1)
    target = grad_x.reshape(-1)  # a view: grad_x is a contiguous block of the result
    if empty is None and sh >= dh * (kh - 1) + 1 and sw >= dw * (kw - 1) + 1:
        # Disjoint windows: no pixel is the argmax of two windows, a plain store will do.
        target[flat] = grad_out.reshape(-1)
    else:
        np.add.at(target, flat, grad_out.reshape(-1))


_ERF = np.frompyfunc(math.erf, 1, 1)
_EINSUM_MAX_COUNT = 2 ** 17


_ZERO_ROW = 4096


@functools.lru_cache(maxsize=None)
def _zero_row(dtype) -> np.ndarray:
    """A read-only (1, _ZERO_ROW) row of zeros of ``dtype`` (``CPUBackend.relu``)."""
    row = np.zeros((1, _ZERO_ROW), dtype)
    row.flags.writeable = False
    return row


class _Workspace:
    """Large buffers reused once free; smaller requests are plain ``np.empty``.

    A buffer is a 1-D uint8 array; what ``take`` returns is a view of it, and every view
    (and view of a view) holds a reference to it, so a buffer whose reference count is back
    to the cache's own is free. (By default glibc serves allocations over 32 MiB from fresh
    zeroed pages every time, and below that it often returns the freed memory too;
    ``tune_allocator`` changes that on glibc, this cache does it wherever it is not run.)
    """

    def __init__(self, min_bytes: int, max_bytes: int):
        self.min_bytes, self.max_bytes = min_bytes, max_bytes
        self.lock = threading.Lock()
        # The count of a buffer nothing else refers to, measured the way it is used (the
        # list's slot, the loop variable, the parameter, getrefcount's argument, as the
        # interpreter counts them).
        self.buffers: list[np.ndarray] = [np.empty(1, np.uint8)]
        for buffer in self.buffers:
            self.unused_refs = self._refs(buffer)
        self.buffers = []

    @staticmethod
    def _refs(buffer) -> int:
        return sys.getrefcount(buffer)

    def _free(self, buffer) -> bool:
        return self._refs(buffer) <= self.unused_refs + 1  # + 1: _free's own parameter

    def take(self, shape, dtype: np.dtype) -> np.ndarray:
        shape = tuple(shape)
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes < self.min_bytes:
            return np.empty(shape, dtype)
        with self.lock:
            chosen = None
            for buffer in self.buffers:
                # The smallest free buffer that fits without wasting more than half of it.
                if nbytes <= buffer.nbytes <= 2 * nbytes and self._free(buffer) and (
                        chosen is None or buffer.nbytes < chosen.nbytes):
                    chosen = buffer
            if chosen is None:
                chosen = np.empty(nbytes, np.uint8)
                self._make_room(nbytes)
                if sum(b.nbytes for b in self.buffers) + nbytes <= self.max_bytes:
                    self.buffers.append(chosen)
            return chosen[:nbytes].view(dtype).reshape(shape)

    def _make_room(self, nbytes: int) -> None:
        """Drop free buffers, oldest first, until ``nbytes`` more fit within the budget."""
        kept, total = [], sum(b.nbytes for b in self.buffers)
        for buffer in self.buffers:
            if total + nbytes > self.max_bytes and self._free(buffer):
                total -= buffer.nbytes
            else:
                kept.append(buffer)
        self.buffers = kept

    def clear(self) -> None:
        with self.lock:
            kept = []
            for buffer in self.buffers:
                if not self._free(buffer):
                    kept.append(buffer)
            self.buffers = kept


# Buffers of 4 MiB and more are cached, up to two full column budgets (a forward's columns
# kept for the weight gradient and the backward's own) and their padded inputs.
_WORKSPACE_BYTES = 2 * COLUMN_BUFFER_BYTES + 2 ** 27
_WORKSPACE = _Workspace(2 ** 22, _WORKSPACE_BYTES)


# Elements per block of ``axpy``: 64 KiB of float32, well inside L2.
_AXPY_BLOCK = 16384


def _plus_zero(v) -> bool:
    return type(v) in (int, float) and v == 0 and math.copysign(1.0, v) > 0


def _float_like(x, condition) -> bool:
    return type(x) is np.ndarray and x.dtype.kind == "f" and x.shape == condition.shape


def _keep_bits(condition, x):
    """``x`` where ``condition``, +0 elsewhere, by masking the bits (no per-element branch)."""
    unsigned = np.dtype(f"u{x.dtype.itemsize}")
    mask = condition.astype(unsigned)
    np.negative(mask, out=mask)  # 1 -> all ones (unsigned wrap-around), 0 -> 0
    np.bitwise_and(mask, x.view(unsigned), out=mask)
    return mask.view(x.dtype)


_TILE_MIN_ELEMENTS = 2 ** 18


def _transpose_into(dst, src) -> None:
    """``dst[...] = src.T`` for 2-D arrays, one of whose sides (the batch) is short.

    NumPy copies a transpose element by element along the destination, reading the source
    with a stride of a whole row: past the caches that runs 2-3x slower than copying tiles
    (measured on (128, 16384) float32: 6.6 -> 2.8 ms one way, 4.3 -> 2.6 ms the other). Short
    rows go in 16 x 1024 tiles, short columns in blocks of 1024 rows; small arrays at once.
    """
    a, b = src.shape
    if src.size < _TILE_MIN_ELEMENTS:
        dst[...] = src.T
    elif a <= b:
        for i in range(0, a, 16):
            for j in range(0, b, 1024):
                dst[j:j + 1024, i:i + 16] = src[i:i + 16, j:j + 1024].T
    else:
        for i in range(0, a, 1024):
            dst[:, i:i + 1024] = src[i:i + 1024].T


def _fill_padded(padded, source, axis: int, ph: int, pw: int) -> None:
    """``source`` into ``padded`` with a border of zeros: axes ``axis`` and ``axis + 1`` are
    the two spatial ones, ``ph`` and ``pw`` larger on each side in ``padded``."""
    lead = (slice(None),) * axis
    h, w = source.shape[axis:axis + 2]
    rows = lead + (slice(ph, ph + h),)
    padded[lead + (slice(None, ph),)] = 0
    padded[lead + (slice(ph + h, None),)] = 0
    padded[rows + (slice(None, pw),)] = 0
    padded[rows + (slice(pw + w, None),)] = 0
    padded[rows + (slice(pw, pw + w),)] = source


def _axis_offsets(size: int, out: int, k: int, s: int, p: int, d: int):
    """Per kernel offset along one axis: ``(offset, input slice, output slice)``.

    Output ``o`` reads input ``o*s - p + offset*d``; the slices keep the outputs for which that
    lies inside the input. Offsets reading only padding are left out.
    """
    for i in range(k):
        shift = i * d - p
        lo = max(0, -(shift // s))  # first o with o*s + shift >= 0
        hi = min(out, (size - 1 - shift) // s + 1)
        if hi > lo:
            start = lo * s + shift
            yield i, slice(start, start + (hi - lo - 1) * s + 1, s), slice(lo, hi)


def _window_offsets(h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw):
    """Per 2-D kernel offset: ``((i, j), image index, output index)``.

    The indices address the last two axes of (N, C, H, W) and (N, C, OH, OW) arrays.
    """
    columns = list(_axis_offsets(w, ow, kw, sw, pw, dw))
    for i, rows_in, rows_out in _axis_offsets(h, oh, kh, sh, ph, dh):
        for j, cols_in, cols_out in columns:
            yield (i, j), (Ellipsis, rows_in, cols_in), (Ellipsis, rows_out, cols_out)


def _running_max(x, axis: int, out: int, k: int, s: int, p: int, d: int, first, inner=None):
    """Window maxima along one axis of ``x`` and the code of each window's first maximum.

    Offset ``i``'s code is ``i``, or with ``inner = (codes, scale)`` it is
    ``i*scale + codes`` at the cell read (``codes`` shaped like ``x``). Where no cell beats
    -inf the code is ``first`` (the window's first non-padding cell, as in torch).
    """
    lead = (slice(None),) * axis
    offsets = list(_axis_offsets(x.shape[axis], out, k, s, p, d))

    def code_of(i, source):
        return i if inner is None else inner[0][(*lead, source)] + i * inner[1]

    arg = np.empty(x.shape[:axis] + (out,) + x.shape[axis + 1:], first.dtype)
    owned = True
    if offsets and offsets[0][2] == slice(0, out):
        # The first offset is inside every window, hence every window's first cell: it starts
        # the running maximum as a view, copied only by the first update (one pass less).
        i, source, _ = offsets.pop(0)
        best, owned = x[(*lead, source)], False
        arg[...] = code_of(i, source)
    else:
        best = np.full(arg.shape, -np.inf, x.dtype)
        arg[...] = first
    for i, source, target in offsets:
        value = x[(*lead, source)]
        if not owned and target != slice(0, out):
            best, owned = best.copy(), True
        if owned:
            best_i = best[(*lead, target)]
            wins = value > best_i
            np.maximum(best_i, value, out=best_i)
        else:
            wins = value > best
            best, owned = np.maximum(best, value), True
        # Unsigned arithmetic instead of a masked store (several times faster in NumPy):
        # arg += wins * (code - arg) wraps around to exactly code where a larger value wins.
        arg_i = arg[(*lead, target)]
        arg_i += wins * (code_of(i, source) - arg_i)
    return (best if owned else best.copy()), arg


def _geometry_cache(function):
    """Memoise a function of window geometry (ints only): its read-only array results are
    the same on every call with that geometry, and a training step asks for them at every
    pooling layer, forward and backward (about 40 us per layer recomputed)."""
    @functools.lru_cache(maxsize=512)
    def cached(*args):
        result = function(*args)
        if isinstance(result, np.ndarray):
            result.flags.writeable = False
        elif isinstance(result, tuple):
            for part in result:
                part.flags.writeable = False
        return result

    return functools.wraps(function)(cached)


@_geometry_cache
def _index_grid(w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw):
    """Max pooling's flat H*W index parts: per window offset, and per output window start."""
    offset = np.add.outer(np.arange(kh) * dh * w, np.arange(kw) * dw).ravel()
    return offset, np.add.outer((np.arange(oh) * sh - ph) * w, np.arange(ow) * sw - pw)


@_geometry_cache
def _first_inside(out: int, s: int, p: int, d: int):
    """Per output along one axis, the first window coordinate that is not padding."""
    start = np.arange(out) * s - p
    return start + d * (-(start // d)).clip(min=0)


@_geometry_cache
def _first_offset(size: int, out: int, k: int, s: int, p: int, d: int):
    """Per output along one axis, the offset of its window's first non-padding cell.

    Clipped to the last offset for a (dilated) window holding no cell at all.
    """
    return np.minimum((_first_inside(out, s, p, d) - (np.arange(out) * s - p)) // d, k - 1)


@_geometry_cache
def _empty_windows(h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw):
    """(OH, OW) mask of windows holding no input cell, or None when there are none.

    NOTE: only a dilated window can lie entirely in the padding (or skip over the input).
    torch reports its first non-padding coordinate as the index, a cell outside the window.
    """
    def has_cell(size, out, k, s, p, d):
        first = _first_inside(out, s, p, d)
        return (first < size) & (first <= np.arange(out) * s - p + (k - 1) * d)

    inside = np.multiply.outer(has_cell(h, oh, kh, sh, ph, dh), has_cell(w, ow, kw, sw, pw, dw))
    return None if inside.all() else ~inside


@_geometry_cache
def _avg_divisor(h, w, oh, ow, kh, kw, sh, sw, ph, pw, count_include_pad, divisor_override,
                 dtype):
    """torch's average-pooling divisor per output, shape (OH, OW) (or a scalar override)."""
    if divisor_override:
        return np.asarray(divisor_override, dtype)

    def counts(size, out, k, s, p):
        start = np.arange(out) * s - p
        end = np.minimum(start + k, size + p)  # ceil_mode windows stop at the right padding
        if count_include_pad:
            return end - start
        return np.minimum(end, size) - np.maximum(start, 0)

    return np.multiply.outer(counts(h, oh, kh, sh, ph), counts(w, ow, kw, sw, pw)).astype(dtype)


# -- the C allocator ----------------------------------------------------------------------------
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4         # glibc's mallopt parameters (malloc.h)
TRIM_THRESHOLD_BYTES = 256 * 2 ** 20


def tune_allocator(libc=None, environ=os.environ) -> bool:
    """Keep freed array memory in the process instead of handing it back to the kernel.

    glibc serves blocks above a moving threshold (128 KiB to start, 32 MiB at most) with
    fresh ``mmap``s and returns the top of the heap to the kernel past a trim threshold. A
    training step frees and reallocates its activations every time, so every step paid the
    kernel's zero-fill of new pages again: on these KVM hosts about 10 us a page, 13% of all
    CPU time in a ResNet-18 step (perf: ``clear_page_erms`` under page faults). So every
    block comes from the heap (``M_MMAP_MAX`` 0) and up to 256 MiB of free heap top is
    retained. Measured, two cores: the LeNet-5 step (batch 64) 16.0 ms with the defaults,
    10.9 ms with blocks up to 32 MiB on the heap; the ResNet-18 step (batch 128, whose
    32 MiB activations and larger im2col columns were still mapped afresh) 5.3-6.7 s with
    that, 4.4-5.3 s with nothing mapped, at the same peak resident memory (2.2-2.3 GB).
    The heap, like PyTorch's caching allocators, then stays at the size of the largest
    step; large im2col buffers are also reused through ``CPUBackend.workspace``.

    Only on glibc (elsewhere nothing is done); ``GRADFORGE_TUNE_MALLOC=0`` leaves the
    allocator alone. Returns whether the settings were accepted.
    """
    if environ.get("GRADFORGE_TUNE_MALLOC", "1") == "0":
        return False
    if libc is None:
        if not sys.platform.startswith("linux"):
            return False
        try:
            libc = ctypes.CDLL(None)
            libc.gnu_get_libc_version  # noqa: B018  glibc only (musl has no mallopt tuning)
        except (OSError, AttributeError):
            return False
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and \
        bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))


tune_allocator()
BACKEND = CPUBackend()

"""Kernel bandwidth on the GPU: gradforge's im2col, col2im and pooling kernels in GB/s.

Each kernel is timed against a device-to-device copy (``cudaMemcpy``) moving the same number
of bytes, the practical limit for a memory-bound kernel. A kernel's bytes are its minimum
traffic: every input read once and every output written once.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class KernelCase:
    name: str
    shape: str
    build: Callable  # build(backend, rng) -> (step, bytes moved, array module)


def _conv_geometry(h, w, k=3, stride=1, pad=1):
    return (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1


def _im2col(n, c, h, w):
    def build(backend, rng):
        x = backend.asarray(rng.standard_normal((n, c, h, w), dtype=np.float32))
        oh, ow = _conv_geometry(h, w)
        moved = x.nbytes + n * c * 9 * oh * ow * 4

        def step():
            backend.im2col(x, 3, 3, 1, 1, 1, 1, 1, 1)
        return step, moved, backend.xp
    return build


def _col2im(n, c, h, w):
    def build(backend, rng):
        oh, ow = _conv_geometry(h, w)
        cols = backend.asarray(rng.standard_normal((n, c * 9, oh * ow), dtype=np.float32))
        moved = cols.nbytes + n * c * h * w * 4

        def step():
            backend.col2im(cols, (n, c, h, w), 3, 3, 1, 1, 1, 1, 1, 1)
        return step, moved, backend.xp
    return build


def _pool(kind, direction, n, c, h, w):
    """2x2 pooling, stride 2: the input read once, the output (and int64 argmax) written once."""
    def build(backend, rng):
        x = backend.asarray(rng.standard_normal((n, c, h, w), dtype=np.float32))
        out_bytes = n * c * (h // 2) * (w // 2) * (4 + (8 if kind == "max" else 0))
        if kind == "max":
            args = (2, 2, 2, 2, 0, 0, 1, 1, False)
            out, idx = backend.max_pool2d_forward(x, *args)
            steps = {"forward": lambda: backend.max_pool2d_forward(x, *args),
                     "backward": lambda: backend.max_pool2d_backward(out, idx, x.shape, *args)}
        else:
            args = (2, 2, 2, 2, 0, 0, False, True, None)
            out = backend.avg_pool2d_forward(x, *args)
            steps = {"forward": lambda: backend.avg_pool2d_forward(x, *args),
                     "backward": lambda: backend.avg_pool2d_backward(out, x.shape, *args)}
        return steps[direction], x.nbytes + out_bytes, backend.xp
    return build


def copy_step(xp, nbytes: int) -> Callable:
    """A device-to-device memcpy whose read plus write traffic is ``nbytes``."""
    half = max(1, nbytes // 2)
    src = xp.empty(half, dtype=np.uint8)
    dst = xp.empty(half, dtype=np.uint8)
    return lambda: dst.data.copy_from_device_async(src.data, half)


def kernel_cases(batch: int = 32) -> list[KernelCase]:
    """The kernels at ResNet-18 sizes (``batch`` smaller for a quick smoke run)."""
    shape = (batch, 64, 56, 56)
    pool_shape = (batch, 64, 112, 112)
    text = "x".join(map(str, shape))
    pool_text = "x".join(map(str, pool_shape))
    return [
        KernelCase("im2col", f"{text} 3x3 p1", _im2col(*shape)),
        KernelCase("col2im", f"{text} 3x3 p1", _col2im(*shape)),
        KernelCase("max_pool2d_forward", f"{pool_text} 2x2", _pool("max", "forward", *pool_shape)),
        KernelCase("max_pool2d_backward", f"{pool_text} 2x2",
                   _pool("max", "backward", *pool_shape)),
        KernelCase("avg_pool2d_forward", f"{pool_text} 2x2", _pool("avg", "forward", *pool_shape)),
        KernelCase("avg_pool2d_backward", f"{pool_text} 2x2",
                   _pool("avg", "backward", *pool_shape)),
    ]

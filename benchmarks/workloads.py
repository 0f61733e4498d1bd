"""The benchmark workloads, each written once against the torch API and run with both libraries.

A workload's ``build(lib, device, rng)`` sets up models and data with ``lib`` (``gradforge``
or ``torch``: the same code, since gradforge speaks torch's API) and returns the function to
time. Inputs come from one NumPy generator per workload, so both libraries see the same data.
``needs`` lists the gradforge names a workload uses beyond the core; a workload whose names
do not exist yet is reported as not available instead of run.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class Workload:
    """One row of the benchmark table.

    Attributes:
        name: the id given to ``--only``.
        shape: what the row measures, as printed.
        build: ``build(lib, device, rng) -> step`` returning the function to time.
        reps: timed repetitions per library on the CPU (interleaved after one warm-up).
        flops: floating-point operations of one step, for a GFLOP/s column.
        per: the step is this many operations; times are reported per operation.
        needs: gradforge attributes (dotted) the workload uses.
    """

    name: str
    shape: str
    build: Callable
    reps: int = 5
    flops: float | None = None
    per: int = 1
    needs: tuple = ()


def _tensor(lib, array, device, requires_grad=False):
    return lib.tensor(array, device=device, requires_grad=requires_grad)


# -- per-op overhead ---------------------------------------------------------------------------
def _overhead(lib, device, rng):
    x = lib.ones(10, device=device, requires_grad=True)

    def step():
        y = x
        for _ in range(1000):
            y = y + x
        y.sum().backward()
    return step


# -- matmul ------------------------------------------------------------------------------------
def _matmul(n):
    def build(lib, device, rng):
        a = _tensor(lib, rng.standard_normal((n, n), dtype=np.float32), device)
        b = _tensor(lib, rng.standard_normal((n, n), dtype=np.float32), device)
        return lambda: a @ b
    return build


# -- training steps ----------------------------------------------------------------------------
def _train_step(make_model, x_shape, classes, momentum=0.9):
    """One SGD-momentum step with cross-entropy on a fixed random batch."""
    def build(lib, device, rng):
        lib.manual_seed(0)
        model = make_model(lib).to(device)
        optimizer = lib.optim.SGD(model.parameters(), lr=0.01, momentum=momentum)
        x = _tensor(lib, rng.standard_normal(x_shape, dtype=np.float32), device)
        y = _tensor(lib, rng.integers(0, classes, x_shape[0]), device)

        def step():
            optimizer.zero_grad()
            loss = lib.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
        return step
    return build


def mlp(lib):
    nn = lib.nn
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                         nn.Linear(256, 10))


def lenet5(lib):
    nn = lib.nn
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def resnet18_cifar(lib, classes=10):
    """ResNet-18 for 32x32 inputs: a 3x3 stem without max pooling, then [2, 2, 2, 2] blocks."""
    nn = lib.nn

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = nn.Sequential()
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                              nn.BatchNorm2d(cout))

        def forward(self, x):
            out = self.bn1(self.conv1(x)).relu()
            return (self.bn2(self.conv2(out)) + self.shortcut(x)).relu()

    layers, cin = [nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()], 64
    for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes)]
    return nn.Sequential(*layers)


# -- convolution and pooling -------------------------------------------------------------------
def _conv(n, cin, cout, size, k, stride, pad, backward):
    def build(lib, device, rng):
        F = lib.nn.functional
        x = _tensor(lib, rng.standard_normal((n, cin, size, size), dtype=np.float32), device,
                    backward)
        w = _tensor(lib, rng.standard_normal((cout, cin, k, k), dtype=np.float32) * 0.05,
                    device, backward)
        b = _tensor(lib, rng.standard_normal(cout, dtype=np.float32), device, backward)
        if not backward:
            def forward():
                with lib.no_grad():
                    F.conv2d(x, w, b, stride, pad)
            return forward

        def forward_backward():
            x.grad = w.grad = b.grad = None
            F.conv2d(x, w, b, stride, pad).sum().backward()
        return forward_backward
    return build


def _conv_flops(n, cin, cout, size, k, stride, pad, backward):
    out = (size + 2 * pad - k) // stride + 1
    forward = 2.0 * n * cout * out * out * cin * k * k
    return forward * (3 if backward else 1)  # dX and dW cost one forward each


def _pool(kind):
    def build(lib, device, rng):
        pool = getattr(lib.nn.functional, f"{kind}_pool2d")
        x = _tensor(lib, rng.standard_normal((32, 64, 32, 32), dtype=np.float32), device, True)

        def step():
            x.grad = None
            pool(x, 2).sum().backward()
        return step
    return build


CONV = "nn.functional.conv2d"
CONV_LAYERS = ("nn.Conv2d", "nn.BatchNorm2d")


def all_workloads() -> list[Workload]:
    rows = [
        Workload("overhead", "1000 chained (10,) adds + backward, per op", _overhead, reps=9,
                 per=1000),
        Workload("matmul_1024", "1024x1024 @ 1024x1024 float32", _matmul(1024), reps=7,
                 flops=2.0 * 1024 ** 3),
        Workload("matmul_4096", "4096x4096 @ 4096x4096 float32", _matmul(4096), reps=3,
                 flops=2.0 * 4096 ** 3),
        Workload("mlp", "MLP 784-512-256-10, batch 128, SGD momentum step",
                 _train_step(mlp, (128, 784), 10), reps=15),
        Workload("lenet5", "LeNet-5, batch 64, 1x28x28, SGD momentum step",
                 _train_step(lenet5, (64, 1, 28, 28), 10), reps=9,
                 needs=(*CONV_LAYERS, "nn.MaxPool2d")),
        Workload("resnet18", "ResNet-18 (CIFAR), batch 128, 3x32x32, SGD momentum step",
                 _train_step(resnet18_cifar, (128, 3, 32, 32), 10), reps=4,
                 needs=(*CONV_LAYERS, "nn.AdaptiveAvgPool2d")),
    ]
    convs = [("conv_32x64x32x32", 32, 64, 64, 32, 3, 1, 1),
             ("conv_resnet_64x56x56", 32, 64, 64, 56, 3, 1, 1),
             ("conv_resnet_128x28x28", 32, 128, 128, 28, 3, 1, 1),
             ("conv_resnet_256x14x14", 32, 256, 256, 14, 3, 1, 1),
             ("conv_resnet_512x7x7", 32, 512, 512, 7, 3, 1, 1),
             ("conv_stem_7x7s2", 32, 3, 64, 224, 7, 2, 3)]
    for name, n, cin, cout, size, k, stride, pad in convs:
        geometry = f"N={n} {cin}->{cout} {size}x{size} k{k} s{stride} p{pad}"
        for backward in (False, True):
            args = (n, cin, cout, size, k, stride, pad, backward)
            rows.append(Workload(f"{name}_{'fwdbwd' if backward else 'fwd'}",
                                 f"conv2d {'fwd+bwd' if backward else 'fwd'} {geometry}",
                                 _conv(*args), reps=3, flops=_conv_flops(*args), needs=(CONV,)))
    for kind in ("max", "avg"):
        rows.append(Workload(f"{kind}pool", f"{kind}_pool2d 2x2 fwd+bwd, 32x64x32x32",
                             _pool(kind), reps=9, needs=(f"nn.functional.{kind}_pool2d",)))
    from workloads_seq import seq_workloads  # here: it imports Workload from this module
    return rows + seq_workloads()

"""pytest-benchmark options: ``pytest benchmarks/ [--bench-device cuda] [--benchmark-...]``."""


def pytest_addoption(parser):
    parser.addoption("--bench-device", default="cpu", choices=["cpu", "cuda"],
                     help="device the benchmark workloads run on (default cpu)")

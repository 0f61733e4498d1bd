"""First checks of the core: the oracle helpers agree on a few ops."""
from oracle import check_grad, compare


def test_add_mul_broadcast():
    compare(lambda lib, x, y: x * y + x, [(2, 3), (3,)])
    check_grad(lambda lib, x, y: x * y + x, [(2, 3), (3,)])


def test_matmul_relu_mean():
    compare(lambda lib, a, b: (a @ b).relu().mean(), [(3, 4), (4, 5)])
    check_grad(lambda lib, a, b: (a @ b).tanh().sum(), [(3, 4), (4, 5)])

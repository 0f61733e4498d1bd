"""Linear algebra against PyTorch: matmul (1-D operands, batch broadcasting), mm, bmm, dot,
outer, einsum."""
import pytest
from oracle import DEVICES, compare, integers

import gradforge


def cases(table):
    return [pytest.param(fn, specs, id=name) for name, (fn, specs) in table.items()]


MATMUL = {
    "matmul_2d": (lambda lib, a, b: a @ b, [(2, 3), (3, 4)]),
    "matmul_vec_vec": (lambda lib, a, b: a @ b, [(3,), (3,)]),
    "matmul_mat_vec": (lambda lib, a, b: lib.matmul(a, b), [(2, 3), (3,)]),
    "matmul_vec_mat": (lambda lib, a, b: a.matmul(b), [(3,), (3, 4)]),
    "matmul_batch": (lambda lib, a, b: a @ b, [(5, 2, 3), (5, 3, 4)]),
    "matmul_batch_broadcast_left": (lambda lib, a, b: a @ b, [(2, 3), (5, 3, 4)]),
    "matmul_batch_broadcast_right": (lambda lib, a, b: a @ b, [(5, 2, 3), (3, 4)]),
    "matmul_batch_broadcast_both": (lambda lib, a, b: a @ b, [(2, 1, 2, 3), (4, 3, 2)]),
    "matmul_batch_vec": (lambda lib, a, b: a @ b, [(5, 2, 3), (3,)]),
    "matmul_vec_batch": (lambda lib, a, b: a @ b, [(3,), (2, 3, 4)]),
    "matmul_transposed_input": (lambda lib, a, b: a.t() @ b, [(3, 2), (3, 4)]),
    "matmul_rmatmul_chain": (lambda lib, a, b, c: (a @ b) @ c, [(2, 3), (3, 4), (4,)]),
    "matmul_int": (lambda lib, a, b: a @ b, [integers(2, 3), integers(3, 2)]),
    "mm": (lambda lib, a, b: lib.mm(a, b), [(2, 3), (3, 4)]),
    "mm_method": (lambda lib, a, b: a.mm(b), [(4, 3), (3, 1)]),
    "bmm": (lambda lib, a, b: lib.bmm(a, b), [(4, 2, 3), (4, 3, 5)]),
    "bmm_method": (lambda lib, a, b: a.bmm(b), [(1, 2, 3), (1, 3, 2)]),
    "dot": (lambda lib, a, b: lib.dot(a, b), [(4,), (4,)]),
    "outer": (lambda lib, a, b: lib.outer(a, b), [(3,), (4,)]),
    "t_matmul": (lambda lib, a: a @ a.t(), [(3, 4)]),
    "linear_layer": (lambda lib, x, w, b: x @ w.t() + b, [(5, 3), (4, 3), (4,)]),
}

EINSUM = {
    "matmul": (lambda lib, a, b: lib.einsum("ij,jk->ik", a, b), [(2, 3), (3, 4)]),
    "implicit_output": (lambda lib, a, b: lib.einsum("ij,jk", a, b), [(2, 3), (3, 4)]),
    "batch": (lambda lib, a, b: lib.einsum("bij,bjk->bik", a, b), [(2, 3, 4), (2, 4, 5)]),
    "outer": (lambda lib, a, b: lib.einsum("i,j->ij", a, b), [(3,), (4,)]),
    "dot": (lambda lib, a, b: lib.einsum("i,i->", a, b), [(3,), (3,)]),
    "transpose": (lambda lib, a: lib.einsum("ij->ji", a), [(2, 3)]),
    "sum_axis": (lambda lib, a: lib.einsum("ij->i", a), [(2, 3)]),
    "three_operands": (lambda lib, a, b, c: lib.einsum("ij,jk,kl->il", a, b, c),
                       [(2, 3), (3, 4), (4, 2)]),
    "ellipsis": (lambda lib, a, b: lib.einsum("...ij,...jk->...ik", a, b),
                 [(2, 2, 3), (2, 3, 4)]),
    "ellipsis_broadcast": (lambda lib, a, b: lib.einsum("...ij,jk->...ik", a, b),
                           [(5, 2, 3), (3, 4)]),
    "list_operands": (lambda lib, a, b: lib.einsum("ij,ij->i", [a, b]), [(2, 3), (2, 3)]),
    "spaces": (lambda lib, a, b: lib.einsum("b i, b i -> b", a, b), [(2, 3), (2, 3)]),
    "summed_only_in_one_operand": (lambda lib, a, b: lib.einsum("ij,k->k", a, b),
                                   [(2, 3), (4,)]),
}


@pytest.mark.parametrize("fn, specs", cases(MATMUL))
@pytest.mark.parametrize("device", DEVICES)
def test_matmul(fn, specs, device):
    compare(fn, specs, atol=1e-6, device=device)


@pytest.mark.parametrize("fn, specs", cases(EINSUM))
@pytest.mark.parametrize("device", DEVICES)
def test_einsum(fn, specs, device):
    compare(fn, specs, device=device)


def test_matmul_errors_name_the_inner_sizes():
    a, b = gradforge.zeros(2, 3), gradforge.zeros(4, 5)
    with pytest.raises(RuntimeError, match=r"\(2x3 and 4x5\).*3 and 4"):
        a @ b
    with pytest.raises(RuntimeError, match=r"3 and 2"):
        gradforge.zeros(3) @ gradforge.zeros(2)
    with pytest.raises(RuntimeError, match="at least 1D"):
        gradforge.tensor(1.0) @ a
    with pytest.raises(RuntimeError, match=r"batch sizes differ: 2 and 3"):
        gradforge.bmm(gradforge.zeros(2, 1, 1), gradforge.zeros(3, 1, 1))
    with pytest.raises(RuntimeError, match="2-D"):
        gradforge.mm(gradforge.zeros(3), a)
    with pytest.raises(RuntimeError, match=r"size of tensor a \(2\) must match.*\(3\)"):
        gradforge.zeros(2, 1, 3) @ gradforge.zeros(3, 3, 1)
    with pytest.raises(RuntimeError, match=r"float32 != gradforge.float64"):
        a @ gradforge.zeros(3, 2, dtype=gradforge.float64)
    with pytest.raises(RuntimeError, match="subscript j has size 3 and 4"):
        gradforge.einsum("ij,jk->ik", a, b)


GRAD_CASES = {
    "MatMul": [(lambda lib, a, b: a @ b, [(2, 3), (3, 2)]),
               (lambda lib, a, b: (a @ b) * (a @ b), [(2, 2, 3), (3,)])],
    "Einsum": [(lambda lib, a, b: lib.einsum("bij,jk->bik", a, b) ** 2, [(2, 2, 3), (3, 2)]),
               (lambda lib, a, b: lib.einsum("ij,k->k", a, b) * b, [(2, 3), (2,)])],
}

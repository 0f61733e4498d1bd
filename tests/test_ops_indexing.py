"""Indexing against PyTorch: basic slicing, ints, None, Ellipsis, integer tensors (repeated
indices accumulate gradient), bool masks, ``__setitem__``, gather/scatter, index_select,
masked_fill, topk, sort/argsort, nonzero."""
import numpy as np
import pytest
from oracle import DEVICES, compare, distinct, integers, mask

import gradforge


def cases(table):
    return [pytest.param(fn, specs, id=name) for name, (fn, specs) in table.items()]


IDX = np.array([2, 0, 2, 2])          # repeated indices: their gradients must add up
IDX2D = np.array([[0, 1], [1, 1]])
ROWS = np.array([True, False, True])

GETITEM = {
    "int": (lambda lib, a: a[1], [(3, 4)]),
    "negative_int": (lambda lib, a: a[-1, -2], [(3, 4)]),
    "slice": (lambda lib, a: a[1:], [(3, 4)]),
    "slice_step": (lambda lib, a: a[::2, 1::2], [(3, 4)]),
    "slice_negative_bounds": (lambda lib, a: a[-2:, :-1], [(3, 4)]),
    "ellipsis": (lambda lib, a: a[..., 0], [(2, 3, 4)]),
    "ellipsis_middle": (lambda lib, a: a[0, ..., 1:], [(2, 3, 4)]),
    "none": (lambda lib, a: a[None], [(3, 4)]),
    "none_middle": (lambda lib, a: a[:, None, 1], [(3, 4)]),
    "zero_dim_result": (lambda lib, a: a[1, 2] * 2, [(3, 4)]),
    "int_tensor_repeated": (lambda lib, a, i: a[i], [(3, 4), IDX]),
    "int_tensor_dim1": (lambda lib, a, i: a[:, i], [(3, 4), IDX]),
    "int_tensor_2d": (lambda lib, a, i: a[i], [(3, 4), IDX2D]),
    "two_int_tensors": (lambda lib, a, i, j: a[i, j], [(3, 4), IDX, np.array([0, 3, 3, 1])]),
    "int_tensor_and_slice": (lambda lib, a, i: a[1:, i], [(3, 4), IDX[:2]]),
    "int_list": (lambda lib, a: a[[0, 2, 0]], [(3, 4)]),
    "int_tensor_zero_dim": (lambda lib, a, i: a[i], [(3, 4), np.array(1)]),
    "int32_index": (lambda lib, a, i: a[i], [(3, 4), IDX.astype(np.int32)]),
    "bool_mask_full": (lambda lib, a, m: a[m], [(3, 4), mask(3, 4)]),
    "bool_mask_rows": (lambda lib, a, m: a[m], [(3, 4), ROWS]),
    "bool_mask_cols": (lambda lib, a, m: a[:, m], [(2, 3), ROWS]),
    "bool_from_compare": (lambda lib, a: a[a > 0], [(3, 4)]),
    "index_then_view": (lambda lib, a: a[1:].reshape(-1)[::3], [(3, 4)]),
    # torch selects with an int first: the index array's dim stays in place (NumPy would
    # move it to the front, the int and the array being apart).
    "int_then_slice_then_tensor": (lambda lib, a, i: a[1, :, i], [(2, 3, 4), IDX]),
    "int_then_slice_then_list": (lambda lib, a: a[0, ..., [0, 2], 1:], [(2, 3, 4, 5)]),
    "zero_dim_tensor_then_slice_then_tensor": (lambda lib, a, i, j: a[i, :, j],
                                               [(2, 3, 4), np.array(1), IDX2D]),
    "slice_mask_int": (lambda lib, a, m: a[:, m, 1], [(2, 3, 4), ROWS]),
    "uint8_mask": (lambda lib, a, m: a[m], [(3, 4), ROWS.astype(np.uint8)]),
    "empty_list": (lambda lib, a: a[[]], [(3, 4)]),
    "range": (lambda lib, a: a[:, range(1, 3)], [(3, 4)]),
    # An advanced index's result is contiguous, as torch's: view() works on it.
    "int_tensor_dim1_then_view": (lambda lib, a, i: a[:, i].view(-1), [(3, 4), IDX]),
    "mask_dim1_then_view": (lambda lib, a, m: a[:, m].view(-1), [(2, 3, 4), ROWS]),
    "int_then_tensor_then_view": (lambda lib, a, i: a[1, :, i].view(-1), [(2, 3, 4), IDX]),
}


def set_slice(lib, a, v):
    out = a * 1
    out[1:, :2] = v
    return out


def set_scalar(lib, a):
    out = a * 1
    out[0] = 7.0
    return out


def set_int_tensor(lib, a, v, i):
    out = a * 1
    out[i] = v
    return out


def set_mask(lib, a, m):
    out = a * 1
    out[m] = 0.5
    return out


def set_mask_tensor(lib, a, m, v):
    out = a * 1
    out[m] = v
    return out


def set_zero_dim_tensor(lib, a, v):
    out = a * 1
    out[1, 1] = v
    return out


def set_int_then_list(lib, a, v):
    out = a * 1
    out[1, :, [0, 2]] = v
    return out


def set_leading_ones(lib, a, v):
    out = a * 1
    out[1:] = v
    return out


def set_leaf_no_grad(lib, a, v):
    out = a.detach().clone()
    out[:, 0] = v
    return out


SETITEM = {
    "slice_broadcast_value": (set_slice, [(3, 4), (2,)]),
    "slice_full_value": (set_slice, [(3, 4), (2, 2)]),
    "scalar": (set_scalar, [(3, 4)]),
    "int_tensor": (set_int_tensor, [(3, 4), (2, 4), np.array([2, 0])]),
    "bool_mask_scalar": (set_mask, [(3, 4), mask(3, 4)]),
    "bool_mask_tensor": (set_mask_tensor, [(3, 4), ROWS, (4,)]),
    "zero_dim_value": (set_zero_dim_tensor, [(3, 4), ()]),
    "value_into_constant": (set_leaf_no_grad, [(3, 4), (3,)]),
    "int_then_list": (set_int_then_list, [(2, 3, 4), (3, 2)]),
    "int_then_list_broadcast": (set_int_then_list, [(2, 3, 4), (2,)]),
    "value_with_leading_ones": (set_leading_ones, [(3, 4), (1, 1, 2, 4)]),
}

SELECT = {
    "gather_dim0": (lambda lib, a, i: a.gather(0, i), [(3, 4), integers(2, 4, high=3)]),
    "gather_dim1": (lambda lib, a, i: lib.gather(a, 1, i), [(3, 4), integers(3, 5, high=4)]),
    "gather_smaller": (lambda lib, a, i: a.gather(1, i), [(3, 4), integers(2, 2, high=4)]),
    "take_along_dim": (lambda lib, a, i: lib.take_along_dim(a, i, 1),
                       [(3, 4), integers(3, 2, high=4)]),
    "take_along_dim_broadcast": (lambda lib, a, i: lib.take_along_dim(a, i, 1),
                                 [(3, 4), integers(1, 2, high=4)]),
    "take_along_dim_flat": (lambda lib, a, i: lib.take_along_dim(a, i),
                            [(3, 4), integers(5, high=12)]),
    "scatter": (lambda lib, a, i, s: a.scatter(0, i, s),
                [(3, 4), np.array([[0, 1, 2, 0], [2, 0, 1, 1]]), (2, 4)]),
    # torch has no gradient for a src larger than the index, nor for reduce="add".
    "scatter_dim1_larger_src": (lambda lib, a, i, s: lib.scatter(a, 1, i, s.detach()),
                                [(3, 4), np.array([[3], [0], [1]]), (3, 2)]),
    "scatter_value": (lambda lib, a, i: a.scatter(1, i, 2.5), [(3, 4), np.array([[1], [3], [0]])]),
    "scatter_add_repeated": (lambda lib, a, i, s: a.scatter_add(1, i, s),
                             [(2, 3), np.array([[0, 0, 2], [1, 1, 1]]), (2, 3)]),
    "scatter_reduce_add": (lambda lib, a, i, s: a.detach().scatter(0, i, s.detach(),
                                                                   reduce="add"),
                           [(3, 2), np.array([[0, 0], [0, 2]]), (2, 2)]),
    "scatter_value_reduce_add": (lambda lib, a, i: a.detach().scatter(1, i, 2.0, reduce="add"),
                                 [(3, 4), np.array([[0, 0], [2, 3], [1, 1]])]),
    "gather_zero_dim": (lambda lib, a, i: lib.gather(a, 0, i, sparse_grad=False),
                        [(), np.array(0)]),
    "index_select": (lambda lib, a, i: a.index_select(0, i), [(3, 4), IDX]),
    "index_select_zero_dim_index": (lambda lib, a, i: a.index_select(1, i),
                                    [(3, 4), np.array(2)]),
    "index_select_dim1": (lambda lib, a, i: lib.index_select(a, 1, i), [(3, 4), IDX]),
    "masked_fill": (lambda lib, a, m: a.masked_fill(m, 0.0), [(3, 4), mask(3, 4)]),
    "masked_fill_broadcast": (lambda lib, a, m: lib.masked_fill(a, m, -1e9), [(3, 4), mask(4)]),
    "masked_fill_tensor_value": (lambda lib, a, m, v: a.masked_fill(m, v),
                                 [(3, 4), mask(3, 4), ()]),
    "masked_fill_int": (lambda lib, a, m: a.masked_fill(m, 2), [integers(3, 4), mask(3, 4)]),
    "topk": (lambda lib, a: a.topk(2), [distinct(3, 5)]),
    "topk_dim0_smallest": (lambda lib, a: lib.topk(a, 2, dim=0, largest=False),
                           [distinct(3, 5)]),
    "topk_1d": (lambda lib, a: a.topk(3).values * 2, [distinct(6)]),
    "sort": (lambda lib, a: a.sort(), [distinct(3, 5)]),
    "sort_descending_dim0": (lambda lib, a: lib.sort(a, 0, descending=True), [distinct(3, 5)]),
    "sort_stable_ties": (lambda lib, a: a.sort(stable=True),
                         [np.array([2.0, 1.0, 2.0, 1.0, 0.0])]),
    "sort_descending_stable_ties": (lambda lib, a: a.sort(descending=True, stable=True),
                                    [np.array([2.0, 1.0, 2.0, 1.0, 0.0])]),
    # torch sorts NaN as the largest value, first when descending.
    "sort_descending_nan": (lambda lib, a: a.sort(descending=True, stable=True),
                            [np.array([[1.0, np.nan, 0.0, np.inf], [np.nan, 2.0, np.nan, -1.0]])]),
    "topk_nan": (lambda lib, a: a.topk(2), [np.array([1.0, np.nan, 3.0, 0.0])]),
    "argsort": (lambda lib, a: a.argsort(), [distinct(3, 5)]),
    "argsort_descending": (lambda lib, a: lib.argsort(a, dim=0, descending=True),
                           [distinct(3, 5)]),
    "sort_int": (lambda lib, a: a.sort(), [np.array([3, 1, 2])]),
    "nonzero": (lambda lib, a: a.nonzero(), [integers(3, 4, high=2)]),
    "nonzero_as_tuple": (lambda lib, a: lib.nonzero(a, as_tuple=True), [integers(3, 4, high=2)]),
    "where_one_arg": (lambda lib, m: lib.where(m), [mask(2, 3)]),
}


@pytest.mark.parametrize("fn, specs", cases(GETITEM))
@pytest.mark.parametrize("device", DEVICES)
def test_getitem(fn, specs, device):
    compare(fn, specs, device=device)


@pytest.mark.parametrize("fn, specs", cases(SETITEM))
@pytest.mark.parametrize("device", DEVICES)
def test_setitem(fn, specs, device):
    compare(fn, specs, device=device)


@pytest.mark.parametrize("fn, specs", cases(SELECT))
@pytest.mark.parametrize("device", DEVICES)
def test_select(fn, specs, device):
    compare(fn, specs, device=device)


def test_host_indices_numpy_arrays_and_scalars():
    x = gradforge.arange(6.0).reshape(2, 3)
    assert x[np.array([1, 0])].tolist() == [[3.0, 4.0, 5.0], [0.0, 1.0, 2.0]]
    assert x[:, np.array([2, 0])].tolist() == [[2.0, 0.0], [5.0, 3.0]]
    assert x[np.int64(1), np.array(2)].item() == 5.0
    assert x[np.array([True, False])].tolist() == [[0.0, 1.0, 2.0]]
    with pytest.raises(IndexError, match="valid indices"):
        x[1.5]


def test_repeated_indices_accumulate_gradient():
    x = gradforge.zeros(3, requires_grad=True)
    x[gradforge.tensor([0, 0, 2, 0])].sum().backward()
    assert x.grad.tolist() == [3.0, 0.0, 1.0]


def test_basic_index_is_a_view_and_advanced_index_a_copy():
    x = gradforge.arange(12.0).reshape(3, 4)
    view, copy = x[1:, ::2], x[gradforge.tensor([1, 2])]
    assert np.shares_memory(view.numpy(), x.numpy())
    assert np.shares_memory(x[gradforge.tensor(1)].numpy(), x.numpy())  # a 0-dim index: as int
    assert not np.shares_memory(copy.numpy(), x.numpy())


def test_setitem_on_a_plain_tensor_writes_in_place():
    x = gradforge.zeros(2, 3)
    x[0, 1:] = gradforge.tensor([1.0, 2.0])
    x[1] = 3
    x[x == 3] = 4.0
    assert x.tolist() == [[0.0, 1.0, 2.0], [4.0, 4.0, 4.0]]
    assert x._version == 3


def test_index_errors():
    x = gradforge.zeros(2, 3)
    with pytest.raises(IndexError, match=r"shape \(2, 3\)"):
        x[5]
    with pytest.raises(IndexError, match="must be long, int, byte or bool"):
        x[gradforge.tensor([0.0, 1.0])]
    with pytest.raises(RuntimeError, match="k out of range"):
        x.topk(4)
    with pytest.raises(RuntimeError, match="int64"):
        x.gather(0, gradforge.tensor([[0.0]]))
    with pytest.raises(RuntimeError, match="boolean masks"):
        x.masked_fill(gradforge.zeros(2, 3), 1.0)
    with pytest.raises(IndexError, match="vector"):
        x.index_select(0, gradforge.zeros(2, 2, dtype=gradforge.int64))
    with pytest.raises(RuntimeError, match="int32 or int64"):
        x.index_select(0, gradforge.tensor([True, False]))
    with pytest.raises(ValueError, match="step must be greater than zero"):
        x[:, ::-1]
    with pytest.raises(NotImplementedError, match="multiply"):
        x.scatter(0, gradforge.tensor([[0]]), 2.0, reduce="multiply")


GRAD_CASES = {
    "GetItem": [(lambda lib, a, i: a[i] * a[i], [(3, 2), IDX]),
                (lambda lib, a, m: a[m], [(3, 4), mask(3, 4)])],
    "_GetItemView": [(lambda lib, a: a[1:, ::2] * a[0, 1], [(3, 4)])],
    "IndexAddInto": [(lambda lib, a, i: (a[i] * a[i]).sum(), [(3, 2), IDX])],
    "IndexPut": [(set_slice, [(3, 4), (2,)]), (set_int_tensor, [(3, 2), (2, 2), np.array([2, 0])])],
    "Gather": [(lambda lib, a, i: a.gather(1, i) ** 2, [(3, 4), integers(3, 5, high=4)])],
    "ScatterAdd": [(lambda lib, a, i, s: a.scatter_add(1, i, s * s),
                    [(2, 3), np.array([[0, 0, 2], [1, 1, 1]]), (2, 3)])],
    "Scatter": [(lambda lib, a, i, s: a.scatter(0, i, s * s),
                 [(3, 4), np.array([[0, 1, 2, 0], [2, 0, 1, 1]]), (2, 4)])],
}


def test_scatter_src_larger_than_index_gets_zero_gradient_outside_the_block():
    # torch reads only src[:i0, :i1]; its own backward refuses this case, so the expected
    # gradient is written out: the addressed block gets g gathered at index, the rest 0.
    import numpy as np
    src = gradforge.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    index = gradforge.tensor([[0, 1, 2, 0], [1, 0, 0, 2]])
    weight = gradforge.tensor(np.arange(12.0).reshape(3, 4))
    for op in ("scatter_add", "scatter"):
        src.grad = None
        out = getattr(gradforge.zeros(3, 4, dtype=gradforge.float64), op)(0, index, src)
        (out * weight).sum().backward()
        expected = np.zeros((3, 4))
        expected[:2] = np.take_along_axis(np.arange(12.0).reshape(3, 4), index.numpy(), 0)
        np.testing.assert_array_equal(src.grad.numpy(), expected)


@pytest.mark.parametrize("call", [
    lambda lib, x: x.gather(1, lib.tensor([[0, -1], [1, 2]])),
    lambda lib, x: x.gather(1, lib.tensor([[0, 3], [1, 2]])),
    lambda lib, x: x.scatter(1, lib.tensor([[0, -1]]), 9.0),
    lambda lib, x: x.scatter_add(0, lib.tensor([[2, 0, 1]]), x),
    lambda lib, x: x.index_select(1, lib.tensor([-1])),
    lambda lib, x: x.index_select(0, lib.tensor([0, 2])),
], ids=["gather-negative", "gather-past-end", "scatter-negative", "scatter_add-past-end",
        "index_select-negative", "index_select-past-end"])
def test_out_of_range_indices_raise_as_in_torch(call):
    """An index outside [0, size) raises RuntimeError naming it; NumPy would wrap a negative
    one into a wrong answer."""
    torch = pytest.importorskip("torch")
    for lib in (torch, gradforge):
        with pytest.raises((RuntimeError, IndexError), match="out of"):  # torch: either
            call(lib, lib.arange(6.0).reshape(2, 3))


def test_take_along_dim_counts_negative_indices_from_the_end():
    """Along a dim, as torch (which refuses them on the flattened input, as gather does)."""
    compare(lambda lib, a, i: lib.take_along_dim(a, i, 1), [(2, 3), np.array([[-1, 0], [2, -3]])])
    with pytest.raises(RuntimeError, match="index -1 is out of bounds"):
        gradforge.take_along_dim(gradforge.zeros(2, 3), gradforge.tensor([-1, 4]))

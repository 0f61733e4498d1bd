"""Shape ops against PyTorch: reshape/view, flatten/unflatten, transpose/permute, squeeze/
unsqueeze, expand, repeat, cat/stack, split/chunk/unbind, narrow; views share storage."""
import numpy as np
import pytest
from oracle import DEVICES, compare, integers

import gradforge


def cases(table):
    return [pytest.param(fn, specs, id=name) for name, (fn, specs) in table.items()]


SHAPE = {
    "reshape": (lambda lib, a: a.reshape(3, 2), [(2, 3)]),
    "reshape_tuple": (lambda lib, a: lib.reshape(a, (6,)), [(2, 3)]),
    "reshape_infer": (lambda lib, a: a.reshape(-1, 4), [(2, 3, 4)]),
    "reshape_zero_dim": (lambda lib, a: a.reshape(1, 1), [()]),
    "reshape_to_scalar": (lambda lib, a: a.reshape(()), [(1,)]),
    "reshape_transposed": (lambda lib, a: a.t().reshape(6), [(2, 3)]),
    "view": (lambda lib, a: a.view(2, 2, 3), [(4, 3)]),
    "view_infer": (lambda lib, a: a.view(-1), [(4, 3)]),
    "view_as": (lambda lib, a, b: a.view_as(b), [(4, 3), (2, 6)]),
    "view_transposed_split": (lambda lib, a: a.t().view(3, 2, 2), [(4, 3)]),
    "view_permuted_split_last": (lambda lib, a: a.permute(1, 0, 2).view(2, 3, 2, 2), [(3, 2, 4)]),
    "reshape_as": (lambda lib, a, b: a.reshape_as(b), [(4, 3), (12,)]),
    "flatten": (lambda lib, a: a.flatten(), [(2, 3, 4)]),
    "flatten_range": (lambda lib, a: lib.flatten(a, 1, 2), [(2, 3, 4, 5)]),
    "flatten_negative": (lambda lib, a: a.flatten(start_dim=-2), [(2, 3, 4)]),
    "flatten_zero_dim": (lambda lib, a: a.flatten(), [()]),
    "unflatten": (lambda lib, a: a.unflatten(1, (3, 4)), [(2, 12)]),
    "unflatten_infer": (lambda lib, a: lib.unflatten(a, -1, (2, -1)), [(2, 12)]),
    "transpose": (lambda lib, a: a.transpose(0, 1), [(2, 3)]),
    "transpose_negative": (lambda lib, a: lib.transpose(a, -1, 0), [(2, 3, 4)]),
    "swapaxes": (lambda lib, a: lib.swapaxes(a, 0, 2), [(2, 3, 4)]),
    "permute": (lambda lib, a: a.permute(2, 0, 1), [(2, 3, 4)]),
    "permute_tuple": (lambda lib, a: lib.permute(a, (1, 2, 0)), [(2, 3, 4)]),
    "permute_negative": (lambda lib, a: a.permute(-1, -3, -2), [(2, 3, 4)]),
    "t": (lambda lib, a: a.t(), [(2, 3)]),
    "t_1d": (lambda lib, a: lib.t(a), [(3,)]),
    "T": (lambda lib, a: a.T, [(2, 3)]),
    "mT": (lambda lib, a: a.mT, [(4, 2, 3)]),
    "squeeze_all": (lambda lib, a: a.squeeze(), [(1, 3, 1, 2)]),
    "squeeze_dim": (lambda lib, a: lib.squeeze(a, 2), [(1, 3, 1, 2)]),
    "squeeze_non_one": (lambda lib, a: a.squeeze(1), [(1, 3, 1, 2)]),
    "squeeze_dims": (lambda lib, a: a.squeeze((0, 2)), [(1, 3, 1, 2)]),
    "squeeze_zero_dim": (lambda lib, a: a.squeeze(0), [()]),
    "unsqueeze": (lambda lib, a: a.unsqueeze(0), [(2, 3)]),
    "unsqueeze_last": (lambda lib, a: lib.unsqueeze(a, -1), [(2, 3)]),
    "unsqueeze_middle": (lambda lib, a: a.unsqueeze(1), [(2, 3)]),
    "expand": (lambda lib, a: a.expand(4, 2, 3), [(2, 1)]),
    "expand_minus_one": (lambda lib, a: a.expand(-1, 3), [(2, 1)]),
    "expand_tuple": (lambda lib, a: lib.broadcast_to(a, (3, 2, 4)), [(2, 4)]),
    "expand_as": (lambda lib, a, b: a.expand_as(b), [(3, 1), (2, 3, 4)]),
    "expand_then_reduce": (lambda lib, a: a.expand(3, 4).sum(0), [(1, 4)]),
    "repeat": (lambda lib, a: a.repeat(2, 3), [(2, 3)]),
    "repeat_new_dims": (lambda lib, a: a.repeat(2, 1, 2), [(2, 3)]),
    "repeat_tuple": (lambda lib, a: a.repeat((3,)), [(2,)]),
}

JOIN_SPLIT = {
    "cat": (lambda lib, a, b: lib.cat([a, b]), [(2, 3), (4, 3)]),
    "cat_dim1": (lambda lib, a, b, c: lib.cat((a, b, c), dim=1), [(2, 1), (2, 3), (2, 2)]),
    "cat_negative_dim": (lambda lib, a, b: lib.cat([a, b], -1), [(2, 3), (2, 2)]),
    "cat_promotes": (lambda lib, a, b: lib.cat([a, b]), [integers(2, 3), (1, 3)]),
    "concat": (lambda lib, a, b: lib.concat([a, b], 0), [(1, 3), (2, 3)]),
    # torch skips a 1-d empty tensor whatever the other shapes (growing a tensor from []).
    "cat_skips_legacy_empty": (lambda lib, a, b: lib.cat([b.detach(), a, b.detach()], 1),
                               [(2, 3), np.zeros(0, np.float32)]),
    "stack": (lambda lib, a, b: lib.stack([a, b]), [(2, 3), (2, 3)]),
    "stack_dim": (lambda lib, a, b, c: lib.stack((a, b, c), dim=2), [(2, 3), (2, 3), (2, 3)]),
    "stack_negative": (lambda lib, a, b: lib.stack([a, b], -1), [(3,), (3,)]),
    "split_size": (lambda lib, a: a.split(2), [(5, 3)]),
    "split_sections": (lambda lib, a: lib.split(a, [1, 3, 1], dim=0), [(5, 3)]),
    "split_dim": (lambda lib, a: a.split(2, dim=1), [(2, 5)]),
    "chunk": (lambda lib, a: a.chunk(3), [(7, 2)]),
    "chunk_dim": (lambda lib, a: lib.chunk(a, 2, dim=-1), [(2, 4)]),
    "chunk_more_than_size": (lambda lib, a: a.chunk(5), [(3,)]),
    "unbind": (lambda lib, a: a.unbind(1), [(2, 3)]),
    "narrow": (lambda lib, a: a.narrow(1, 1, 2), [(2, 4)]),
    "split_zero_of_empty": (lambda lib, a: a.split(0), [(0, 3)]),
    "split_sum_parts": (lambda lib, a: [p * (i + 1) for i, p in enumerate(a.split(2))],
                        [(5, 2)]),
}


@pytest.mark.parametrize("fn, specs", cases(SHAPE))
@pytest.mark.parametrize("device", DEVICES)
def test_shape_ops(fn, specs, device):
    compare(fn, specs, device=device)


@pytest.mark.parametrize("fn, specs", cases(JOIN_SPLIT))
@pytest.mark.parametrize("device", DEVICES)
def test_join_split(fn, specs, device):
    compare(fn, specs, device=device)


def test_views_share_storage_and_version():
    x = gradforge.zeros(2, 3)
    for view in (x.view(6), x.reshape(3, 2), x.t(), x.unsqueeze(0), x[0], x.expand(4, 2, 3)):
        assert np.shares_memory(view.numpy(), x.numpy())
        assert view._version == x._version
    v = x.view(6)
    v[1] = 5.0
    assert x[0, 1].item() == 5.0 and x._version == v._version == 1


def test_reshape_that_must_copy_is_not_a_view():
    x = gradforge.arange(6.0).reshape(2, 3)
    flat = x.t().reshape(6)                # the strides allow no view: a copy
    assert not np.shares_memory(flat.numpy(), x.numpy()) and flat._base is None
    flat.add_(1.0)
    assert x._version == 0 and x.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    col = x.t().reshape(3, 2, 1)           # a view even though the input is transposed
    assert np.shares_memory(col.numpy(), x.numpy()) and col._version == x._version


def test_inplace_on_a_reshaped_copy_under_autograd_matches_torch():
    def fn(lib, a):
        y = a * 1
        flat = y.t().reshape(-1)
        flat.mul_(2)
        return flat * y.reshape(-1)
    compare(fn, [(2, 3)])


def test_contiguous_copies_only_when_needed():
    x = gradforge.arange(6.0).reshape(2, 3)
    assert x.is_contiguous() and x.contiguous() is x
    y = x.t()
    assert not y.is_contiguous()
    z = y.contiguous()
    assert z.is_contiguous() and z.tolist() == y.tolist()
    assert not np.shares_memory(z.numpy(), x.numpy())


def test_shape_errors_name_the_sizes():
    x = gradforge.zeros(2, 3)
    with pytest.raises(RuntimeError, match=r"shape '\[4, 2\]' is invalid for input of size 6"):
        x.reshape(4, 2)
    with pytest.raises(RuntimeError, match="only one dimension can be inferred"):
        x.reshape(-1, -1)
    with pytest.raises(RuntimeError, match=r"expanded size of the tensor \(4\) must match the "
                                           r"existing size \(3\)"):
        x.expand(2, 4)
    with pytest.raises(RuntimeError, match=r"Expected size \(2, 3\) but got size \(2, 4\)"):
        gradforge.cat([x, gradforge.zeros(2, 4)])
    with pytest.raises(RuntimeError, match=r"\[2, 3\] at entry 0 and \[3, 2\] at entry 1"):
        gradforge.stack([x, gradforge.zeros(3, 2)])
    with pytest.raises(RuntimeError, match="duplicate dims"):
        x.permute(0, 0)
    with pytest.raises(RuntimeError, match="sum exactly to 2"):
        x.split([1, 2])
    with pytest.raises(IndexError, match="Dimension out of range"):
        x.transpose(0, 2)
    with pytest.raises(RuntimeError, match="non-empty"):
        gradforge.cat([])


@pytest.mark.parametrize("make, shape", [
    (lambda x: x.t(), (12,)),
    (lambda x: x[:, 1:3], (-1,)),
    (lambda x: x.permute(1, 0).unsqueeze(0), (2, 6)),
    (lambda x: x[:1].expand(3, 4), (12,)),
])
def test_view_that_needs_a_copy_raises_as_in_torch(make, shape):
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        make(torch.zeros(3, 4)).view(shape)
    x = gradforge.zeros(3, 4)
    with pytest.raises(RuntimeError, match=r"view size is not compatible.*Use .reshape"):
        make(x).view(shape)
    assert make(x).reshape(shape).shape == make(torch.zeros(3, 4)).reshape(shape).shape


GRAD_CASES = {
    "Reshape": [(lambda lib, a: a.reshape(3, 2) * a.t(), [(2, 3)])],
    "Expand": [(lambda lib, a: a.expand(2, 3, 4) * 1.5, [(3, 1)])],
    "Permute": [(lambda lib, a: a.permute(2, 0, 1) * 2, [(2, 3, 2)])],
    "Repeat": [(lambda lib, a: a.repeat(2, 1, 3) ** 2, [(2, 2)])],
    "Cat": [(lambda lib, a, b: lib.cat([a, b * b], 1), [(2, 1), (2, 3)])],
}

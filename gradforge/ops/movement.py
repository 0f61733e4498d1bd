"""Shape ops: reshape/view, expand, permute/transpose, squeeze/unsqueeze, flatten, repeat,
cat/stack, split/chunk. Views share storage and the version counter with their input."""
from __future__ import annotations

from ..autograd.function import Function
from ..tensor import Tensor
from ._util import norm_dim, size_args


class Reshape(Function):
    """d reshape(a) = reshape(g, a.shape)."""

    is_view = True

    @staticmethod
    def forward(ctx, a, shape):
        ctx.input_shape = a._data.shape
        out = a._data.reshape(shape)
        if not a._data.flags.c_contiguous and not ctx.xp.may_share_memory(out, a._data):
            # NOTE: the strides did not allow a view, so the array module copied (as torch's
            # reshape does): the output is then a tensor of its own, not a view.
            ctx.is_view = False
        return out

    @staticmethod
    def backward(ctx, grad_output):
        return reshape(grad_output, ctx.input_shape), None


def _infer_shape(shape: tuple, numel: int) -> tuple:
    """Resolve one -1 in ``shape``; torch's error when the sizes do not multiply to numel."""
    known = 1
    unknown = [i for i, s in enumerate(shape) if s == -1]
    for s in shape:
        if s != -1:
            if s < 0:
                raise RuntimeError(f"invalid shape dimension {s}")
            known *= s
    if len(unknown) > 1:
        raise RuntimeError("only one dimension can be inferred")
    if unknown and known != 0 and numel % known == 0:
        shape = shape[:unknown[0]] + (numel // known,) + shape[unknown[0] + 1:]
    if (unknown and known == 0) or _prod(shape) != numel:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return shape


def _prod(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def reshape(input, *shape) -> Tensor:
    shape = _infer_shape(size_args(shape), input._data.size)
    return Reshape.apply(input, shape)


def _viewable(shape: tuple, strides: tuple, new_shape: tuple) -> bool:
    """Whether memory laid out as ``shape``/``strides`` can be read as ``new_shape`` without a
    copy (torch's computeStride): dims are merged or split only inside a run of dims that is
    contiguous in memory."""
    if not shape or _prod(shape) == 0:
        return True
    view_d, chunk_stride = len(new_shape) - 1, strides[-1]
    tensor_numel = view_numel = 1
    for d in range(len(shape) - 1, -1, -1):
        tensor_numel *= shape[d]
        if d == 0 or (shape[d - 1] != 1 and strides[d - 1] != tensor_numel * chunk_stride):
            # dims d.. form one contiguous run: the view dims must cover it exactly.
            while view_d >= 0 and (view_numel < tensor_numel or new_shape[view_d] == 1):
                view_numel *= new_shape[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return False
            if d > 0:
                chunk_stride, tensor_numel, view_numel = strides[d - 1], 1, 1
    return view_d == -1


def view(input, *shape) -> Tensor:
    if len(shape) == 1 and not isinstance(shape[0], (int, tuple, list)):
        return input.to(shape[0])  # view(dtype) with the same itemsize is rarely used
    data = input._data
    if not data.flags.c_contiguous:
        # NOTE: reshape would copy here; view must share memory, so it refuses, as torch does.
        new_shape = _infer_shape(size_args(shape), data.size)
        if not _viewable(data.shape, data.strides, new_shape):
            raise RuntimeError(
                f"view size is not compatible with input tensor's size and stride (at least one "
                f"dimension spans across two contiguous subspaces): cannot view shape "
                f"{list(data.shape)} with strides {[st // data.itemsize for st in data.strides]}"
                f" as {list(new_shape)}. Use .reshape(...) instead.")
    return reshape(input, *shape)


def view_as(input, other) -> Tensor:
    return view(input, other.shape)


def reshape_as(input, other) -> Tensor:
    return reshape(input, other.shape)


def flatten(input, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    shape = input._data.shape
    if not shape:
        return reshape(input, 1)
    s, e = norm_dim(start_dim, len(shape)), norm_dim(end_dim, len(shape))
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    return reshape(input, shape[:s] + (_prod(shape[s:e + 1]),) + shape[e + 1:])


def unflatten(input, dim: int, sizes) -> Tensor:
    shape = input._data.shape
    d = norm_dim(dim, len(shape))
    sizes = _infer_shape(tuple(sizes), shape[d])
    return reshape(input, shape[:d] + sizes + shape[d + 1:])


def squeeze(input, dim=None) -> Tensor:
    shape = input._data.shape
    if dim is None:
        dims = {i for i, s in enumerate(shape) if s == 1}
    else:
        dims = {norm_dim(d, len(shape)) for d in ((dim,) if isinstance(dim, int) else dim)}
        dims = {d for d in dims if shape and shape[d] == 1}
    return reshape(input, tuple(s for i, s in enumerate(shape) if i not in dims))


def unsqueeze(input, dim: int) -> Tensor:
    shape = input._data.shape
    d = norm_dim(dim, len(shape) + 1)
    return reshape(input, shape[:d] + (1,) + shape[d:])


class Expand(Function):
    """d expand(a) = sum of g over the broadcast dims (``sum_to_size``)."""

    is_view = True

    @staticmethod
    def forward(ctx, a, shape):
        ctx.input_shape = a._data.shape
        return ctx.xp.broadcast_to(a._data, shape)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output.sum_to_size(ctx.input_shape), None


def expand(input, *sizes) -> Tensor:
    sizes = size_args(sizes)
    shape = input._data.shape
    if len(sizes) < len(shape):
        raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be greater "
                           f"or equal to the number of dimensions in the tensor ({len(shape)})")
    lead = len(sizes) - len(shape)
    target = []
    for i, s in enumerate(sizes):
        old = shape[i - lead] if i >= lead else None
        if s == -1:
            if old is None:
                raise RuntimeError("expand: -1 is not allowed in a leading, non-existing dimension")
            s = old
        elif old is not None and old != 1 and old != s:
            raise RuntimeError(
                f"The expanded size of the tensor ({s}) must match the existing size ({old}) at "
                f"non-singleton dimension {i}.  Target sizes: {list(sizes)}.  Tensor sizes: "
                f"{list(shape)}")
        target.append(s)
    target = tuple(target)
    if target == shape:
        return input
    return Expand.apply(input, target)


def expand_as(input, other) -> Tensor:
    return expand(input, other.shape)


def broadcast_to(input, shape) -> Tensor:
    return expand(input, tuple(shape))


class Permute(Function):
    """d permute(a, dims) = permute(g, inverse(dims))."""

    is_view = True

    @staticmethod
    def forward(ctx, a, dims):
        ctx.dims = dims
        return a._data.transpose(dims)

    @staticmethod
    def backward(ctx, grad_output):
        inverse = [0] * len(ctx.dims)
        for i, d in enumerate(ctx.dims):
            inverse[d] = i
        return permute(grad_output, *inverse), None


def permute(input, *dims) -> Tensor:
    dims = size_args(dims) if dims and not isinstance(dims[0], int) else tuple(dims)
    n = input._data.ndim
    if len(dims) != n:
        raise RuntimeError(f"permute(): the number of dims ({len(dims)}) must equal the "
                           f"tensor's number of dimensions ({n})")
    dims = tuple(norm_dim(d, n) for d in dims)
    if len(set(dims)) != n:
        raise RuntimeError(f"permute(): duplicate dims are not allowed: {dims}")
    return Permute.apply(input, dims)


def transpose(input, dim0: int, dim1: int) -> Tensor:
    n = input._data.ndim
    if n == 0:
        return input
    d0, d1 = norm_dim(dim0, n), norm_dim(dim1, n)
    dims = list(range(n))
    dims[d0], dims[d1] = d1, d0
    return Permute.apply(input, tuple(dims))


swapaxes = transpose


def t(input) -> Tensor:
    if input._data.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is "
                           f"{input._data.ndim}D")
    return transpose(input, 0, -1) if input._data.ndim == 2 else input


class Repeat(Function):
    """d repeat(a, reps) = g summed over the copies."""

    @staticmethod
    def forward(ctx, a, reps):
        ctx.input_shape = a._data.shape
        ctx.reps = reps
        return ctx.xp.tile(a._data, reps)

    @staticmethod
    def backward(ctx, grad_output):
        reps = ctx.reps
        shape = (1,) * (len(reps) - len(ctx.input_shape)) + ctx.input_shape
        split = []
        for r, s in zip(reps, shape):
            split += [r, s]
        g = reshape(grad_output, tuple(split)).sum(dim=tuple(range(0, len(split), 2)))
        return reshape(g, ctx.input_shape), None


def repeat(input, *sizes) -> Tensor:
    reps = size_args(sizes)
    if len(reps) < input._data.ndim:
        raise RuntimeError(f"Number of dimensions of repeat dims ({len(reps)}) can not be "
                           f"smaller than number of dimensions of tensor ({input._data.ndim})")
    return Repeat.apply(input, reps)


class Cat(Function):
    """d cat(xs, dim) = the slices of g that each input filled."""

    @staticmethod
    def forward(ctx, dim, *tensors):
        ctx.dim = dim
        ctx.sizes = [t._data.shape[dim] for t in tensors]
        return ctx.xp.concatenate([t._data for t in tensors], axis=dim)

    @staticmethod
    def backward(ctx, grad_output):
        grads, start = [None], 0
        for size, needed in zip(ctx.sizes, ctx.needs_input_grad[1:]):
            grads.append(narrow(grad_output, ctx.dim, start, size) if needed else None)
            start += size
        return tuple(grads)


def cat(tensors, dim: int = 0) -> Tensor:
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
    from ._util import promote
    tensors, _ = promote(*tensors)
    # NOTE: torch skips 1-d empty tensors (``torch.tensor([])``, the usual start of a loop
    # that grows a tensor by cat) whatever the other shapes.
    tensors = [x for x in tensors if x._data.shape != (0,)] or tensors[:1]
    ref = tensors[0]
    if ref._data.ndim == 0:
        raise RuntimeError("zero-dimensional tensor (at position 0) cannot be concatenated")
    d = norm_dim(dim, ref._data.ndim)
    for i, x in enumerate(tensors):
        if x._data.ndim != ref._data.ndim or any(
                a != b for k, (a, b) in enumerate(zip(x._data.shape, ref._data.shape)) if k != d):
            raise RuntimeError(
                f"Sizes of tensors must match except in dimension {d}. Expected size "
                f"{tuple(ref.shape)} but got size {tuple(x.shape)} for tensor number {i} in the "
                "list.")
    return Cat.apply(d, *tensors)


concat = concatenate = cat


def stack(tensors, dim: int = 0) -> Tensor:
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    shape = tensors[0]._data.shape
    for i, x in enumerate(tensors):
        if x._data.shape != shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got "
                               f"{list(shape)} at entry 0 and {list(x.shape)} at entry {i}")
    d = norm_dim(dim, len(shape) + 1)
    return cat([unsqueeze(x, d) for x in tensors], d)


def narrow(input, dim: int, start: int, length: int) -> Tensor:
    """The slice ``start:start + length`` along ``dim`` (a view)."""
    d = norm_dim(dim, input._data.ndim)
    size = input._data.shape[d]
    if start < 0:
        start += size
    if not 0 <= start <= size or length < 0 or start + length > size:
        raise RuntimeError(f"narrow(): start ({start}) + length ({length}) exceeds dimension "
                           f"size ({size}) of dimension {d}")
    index = (slice(None),) * d + (slice(start, start + length),)
    return input[index]


def split(tensor, split_size_or_sections, dim: int = 0) -> tuple:
    d = norm_dim(dim, tensor._data.ndim)
    size = tensor._data.shape[d]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step < 0 or step == 0 and size:
            raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got {step}")
        sections = [min(step, size - s) for s in range(0, size, step or 1)] or [0]
    else:
        sections = list(split_size_or_sections)
        if sum(sections) != size:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {size} "
                               f"(input tensor's size at dimension {d}), but got split_sizes="
                               f"{sections}")
    out, start = [], 0
    for s in sections:
        out.append(narrow(tensor, d, start, s))
        start += s
    return tuple(out)


def chunk(input, chunks: int, dim: int = 0) -> tuple:
    if chunks <= 0:
        raise RuntimeError("chunk expects `chunks` to be greater than 0")
    size = input._data.shape[norm_dim(dim, input._data.ndim)]
    step = -(-size // chunks)
    return split(input, max(step, 1), dim)


def unbind(input, dim: int = 0) -> tuple:
    d = norm_dim(dim, input._data.ndim)
    return tuple(input[(slice(None),) * d + (i,)] for i in range(input._data.shape[d]))

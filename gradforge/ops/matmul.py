"""Linear algebra: matmul (``@``) with batch broadcasting, mm, bmm, einsum."""
from __future__ import annotations

from ..autograd.function import Function
from ..tensor import Tensor
from ._util import broadcast_shapes, promote
from .movement import expand, reshape, transpose


class MatMul(Function):
    """d (a @ b) = (g @ b^T, a^T @ g) for equal batch shapes."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.matmul(a._data, b._data)

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        grad_a = matmul(grad_output, transpose(b, -1, -2)) if ctx.needs_input_grad[0] else None
        grad_b = matmul(transpose(a, -1, -2), grad_output) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


def _shape_error(a, b):
    sa = "x".join(map(str, a.shape if a.ndim > 1 else (1,) + tuple(a.shape)))
    sb = "x".join(map(str, b.shape if b.ndim > 1 else tuple(b.shape) + (1,)))
    return RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({sa} and {sb}): inner sizes "
                        f"{a.shape[-1]} and {b.shape[-2] if b.ndim > 1 else b.shape[0]} differ")


def matmul(input, other) -> Tensor:
    """Matrix product with torch's rules for 1-d operands and broadcast batch dimensions."""
    if not isinstance(input, Tensor) or not isinstance(other, Tensor):
        raise TypeError("matmul(): arguments must be Tensors")
    if input.ndim == 0 or other.ndim == 0:
        raise RuntimeError("both arguments to matmul need to be at least 1D, but they are "
                           f"{input.ndim}D and {other.ndim}D")
    if input._data.dtype != other._data.dtype:
        # NOTE: as torch, no promotion: a silent float64 upcast would be slow and surprising.
        raise RuntimeError("expected m1 and m2 to have the same dtype, but got: "
                           f"{input.dtype} != {other.dtype}")
    a, b = input, other
    squeeze_front = a.ndim == 1
    squeeze_back = b.ndim == 1
    if squeeze_front:
        a = reshape(a, (1, a.shape[0]))
    if squeeze_back:
        b = reshape(b, (b.shape[0], 1))
    if a.shape[-1] != b.shape[-2]:
        raise _shape_error(input, other)
    if a.ndim > 2 or b.ndim > 2:
        batch = broadcast_shapes(tuple(a.shape[:-2]), tuple(b.shape[:-2]))
        if tuple(a.shape[:-2]) != batch:
            a = expand(a, batch + tuple(a.shape[-2:]))
        if tuple(b.shape[:-2]) != batch:
            b = expand(b, batch + tuple(b.shape[-2:]))
    out = MatMul.apply(a, b)
    shape = tuple(out.shape)
    if squeeze_front and squeeze_back:
        return reshape(out, shape[:-2])
    if squeeze_front:
        return reshape(out, shape[:-2] + shape[-1:])
    if squeeze_back:
        return reshape(out, shape[:-1])
    return out


def mm(input, mat2) -> Tensor:
    if input.ndim != 2 or mat2.ndim != 2:
        raise RuntimeError(f"mm: expected 2-D tensors, got {input.ndim}D and {mat2.ndim}D")
    return matmul(input, mat2)


def bmm(input, mat2) -> Tensor:
    if input.ndim != 3 or mat2.ndim != 3:
        raise RuntimeError(f"batch1 must be a 3D tensor and batch2 must be a 3D tensor (got "
                           f"{input.ndim}D and {mat2.ndim}D)")
    if input.shape[0] != mat2.shape[0]:
        raise RuntimeError(f"bmm: batch sizes differ: {input.shape[0]} and {mat2.shape[0]}")
    return matmul(input, mat2)


def dot(input, other) -> Tensor:
    if input.ndim != 1 or other.ndim != 1:
        raise RuntimeError("1D tensors expected, but got "
                           f"{input.ndim}D and {other.ndim}D tensors")
    return matmul(input, other)


def outer(input, vec2) -> Tensor:
    return matmul(reshape(input, (-1, 1)), reshape(vec2, (1, -1)))


# -- einsum -----------------------------------------------------------------------------------
def _parse_einsum(equation: str, operands) -> tuple[list, str]:
    """Explicit subscripts (``...`` spelled out with spare letters) and the output subscript."""
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise ValueError(f"einsum(): {len(terms)} subscript terms for {len(operands)} operands")
    used = set(equation) - set(",->.")
    spare = iter(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                 if c not in used)
    ell_dims = 0
    for term, op in zip(terms, operands):
        if "..." in term:
            ell_dims = max(ell_dims, op.ndim - (len(term) - 3))
    ell = "".join(next(spare) for _ in range(ell_dims))
    subs = []
    for term, op in zip(terms, operands):
        if "..." in term:
            n = op.ndim - (len(term) - 3)
            term = term.replace("...", ell[ell_dims - n:])
        if len(term) != op.ndim:
            raise RuntimeError(f"einsum(): the number of subscripts in the equation "
                               f"({len(term)}) does not match the number of dimensions "
                               f"({op.ndim}) for operand {len(subs)}")
        subs.append(term)
    if arrow:
        out = rhs.replace("...", ell)
    else:
        counts = {}
        for s in "".join(subs):
            counts[s] = counts.get(s, 0) + 1
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    return subs, out


class Einsum(Function):
    """d einsum wrt operand i = einsum of g with the other operands into operand i's indices."""

    @staticmethod
    def forward(ctx, subs, out, *operands):
        ctx.save_for_backward(*operands)
        ctx.subs, ctx.out = subs, out
        return ctx.xp.einsum(",".join(subs) + "->" + out, *(o._data for o in operands))

    @staticmethod
    def backward(ctx, grad_output):
        operands = ctx.saved_tensors
        grads = [None, None]
        for i, target in enumerate(ctx.subs):
            if not ctx.needs_input_grad[i + 2]:
                grads.append(None)
                continue
            others = [(s, o) for k, (s, o) in enumerate(zip(ctx.subs, operands)) if k != i]
            available = set(ctx.out).union(*(set(s) for s, _ in others))
            # Indices summed only inside operand i come back by broadcasting.
            reachable = "".join(c for c in target if c in available)
            g = Einsum.apply([ctx.out] + [s for s, _ in others], reachable, grad_output,
                             *(o for _, o in others))
            shape = [operands[i].shape[target.index(c)] if c in reachable else 1
                     for c in target]
            g = reshape(g, shape)
            grads.append(expand(g, tuple(operands[i].shape)))
        return tuple(grads)


def einsum(equation: str, *operands) -> Tensor:
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    operands, _ = promote(*operands)
    subs, out = _parse_einsum(equation, operands)
    for s in subs:
        if len(set(s)) != len(s):
            raise NotImplementedError("einsum(): repeated subscripts within one operand "
                                      "(diagonals) are not supported")
    sizes = {}
    for s, o in zip(subs, operands):
        for c, n in zip(s, o.shape):
            if sizes.setdefault(c, n) != n:
                raise RuntimeError(f"einsum(): operands do not broadcast with remapped shapes: "
                                   f"subscript {c} has size {sizes[c]} and {n}")
    return Einsum.apply(subs, out, *operands)

"""Recurrences over time: the Elman RNN, LSTM and GRU layers as one Function each.

The input projections of all time steps (``gx = x W_ih^T + b``) are computed beforehand by
one matmul; a scan Function then runs the recurrence over the whole sequence: per step one
matmul with ``W_hh`` and the gate math in place on arrays, without a graph node per step.
Its backward (backpropagation through time) is a loop of tensor ops that ends with one
matmul for the ``W_hh`` gradient, so memory is linear in the length and nothing recurses.

Each scan's first output packs everything its backward needs (for the LSTM the gate
activations, c and h of every step); the state sequences the caller uses follow as separate
outputs, so their gradients arrive without a scatter into the packed shape. The packed
tensor is saved as the Function's own output, so under ``create_graph`` the backward formula
is differentiated through the same node again, which is why every backward also accepts a
gradient for each packed block. Gate order and formulas are torch's: LSTM (i, f, g, o);
GRU (r, z, n) with ``n = tanh(gx_n + r * (W_hn h + b_hn))``.
"""
from __future__ import annotations

from ..autograd.function import Function
from ..tensor import Tensor
from .elementwise import tanh
from .matmul import matmul
from .movement import cat, reshape, stack, transpose, unsqueeze


def _steps(length: int, reverse: bool) -> range:
    """Time indices in processing order."""
    return range(length - 1, -1, -1) if reverse else range(length)


def _sigmoid_(xp, a) -> None:
    """In place, sigmoid(a) = 0.5*tanh(a/2) + 0.5: one SIMD tanh (exp is ~10x slower in NumPy)
    and no overflow for large |a|."""
    a *= 0.5
    xp.tanh(a, out=a)
    a *= 0.5
    a += 0.5


def _gemm_operand(xp, w_hh):
    """W_hh^T as a contiguous array: a transposed operand slows small GEMMs down up to 2x."""
    return xp.ascontiguousarray(w_hh._data.T)


def _previous(seq: Tensor, init: Tensor, reverse: bool) -> Tensor:
    """The state each step starts from: ``init``, then ``seq`` shifted one step along."""
    init = unsqueeze(init, 0)
    return cat([seq[1:], init]) if reverse else cat([init, seq[:-1]])


def _weight_grad(grad_pre: Tensor, h_prev: Tensor) -> Tensor:
    """sum over steps and batch of grad_pre^T h_prev: the W_hh gradient as one matmul."""
    t, b, g = grad_pre.shape
    return matmul(transpose(reshape(grad_pre, (t * b, g)), 0, 1),
                  reshape(h_prev, (t * b, h_prev.shape[-1])))


def _block(grad: Tensor | None, start: int, stop: int) -> Tensor | None:
    """Columns [start, stop) of a packed gradient, or None where no gradient arrived."""
    return None if grad is None else grad[..., start:stop]


def _total(like: Tensor, *grads: Tensor | None) -> Tensor:
    """The sum of the gradients that arrived for one state sequence (zeros if none did)."""
    present = [g for g in grads if g is not None]
    if not present:
        return like.new_zeros(tuple(like.shape))
    return present[0] if len(present) == 1 else present[0] + present[1]


class RNNScan(Function):
    """h_t = act(gx_t + W_hh h_{t-1}); d: BPTT with act' from the saved outputs."""

    saves_output = True

    @staticmethod
    def forward(ctx, gx, h0, w_hh, nonlinearity, reverse):
        xp = ctx.xp
        x, h, w_t = gx._data, h0._data, _gemm_operand(xp, w_hh)
        y = xp.empty_like(x)
        for t in _steps(x.shape[0], reverse):
            xp.add(xp.matmul(h, w_t), x[t], out=y[t])
            if nonlinearity == "tanh":
                xp.tanh(y[t], out=y[t])
            else:
                ctx.device.backend.relu(y[t], out=y[t])
            h = y[t]
        ctx.save_for_backward(h0, w_hh)
        ctx.nonlinearity, ctx.reverse = nonlinearity, reverse
        return y

    @staticmethod
    def backward(ctx, grad_y):
        h0, w_hh, y = ctx.saved_tensors
        act_grad = 1 - y * y if ctx.nonlinearity == "tanh" else (y > 0).to(y.dtype)
        grad_pre = [None] * y.shape[0]
        carry = None  # gradient reaching h_t through step t+1 (in processing order)
        for t in reversed(_steps(y.shape[0], ctx.reverse)):
            dh = grad_y[t] if carry is None else grad_y[t] + carry
            grad_pre[t] = dh * act_grad[t]
            carry = matmul(grad_pre[t], w_hh)
        grad_pre = stack(grad_pre)
        grad_w = _weight_grad(grad_pre, _previous(y, h0, ctx.reverse)) \
            if ctx.needs_input_grad[2] else None
        return grad_pre, carry, grad_w, None, None


class LSTMScan(Function):
    """LSTM over a sequence: packed [i, f, g, o, c, h] per step, then h and c on their own.

    d: BPTT through c and h, per step one matmul with W_hh.
    """

    saves_output = True

    @staticmethod
    def forward(ctx, gx, h0, c0, w_hh, reverse):
        xp = ctx.xp
        x, w_t = gx._data, _gemm_operand(xp, w_hh)
        steps, batch, size = x.shape
        n = size // 4
        y = xp.empty((steps, batch, 6 * n), dtype=x.dtype)
        # h and c of every step in their own contiguous arrays: the recurrent GEMM reads h,
        # and they are the outputs the caller uses (y keeps copies for backward).
        hs, cs = xp.empty((2, steps, batch, n), dtype=x.dtype)
        h, c = h0._data, c0._data
        for t in _steps(steps, reverse):
            gates = y[t, :, :4 * n]
            xp.add(xp.matmul(h, w_t), x[t], out=gates)
            _sigmoid_(xp, gates[:, :2 * n])
            xp.tanh(gates[:, 2 * n:3 * n], out=gates[:, 2 * n:3 * n])
            _sigmoid_(xp, gates[:, 3 * n:])
            xp.multiply(gates[:, n:2 * n], c, out=cs[t])          # c = f * c
            cs[t] += gates[:, :n] * gates[:, 2 * n:3 * n]         #   + i * g
            xp.tanh(cs[t], out=hs[t])
            hs[t] *= gates[:, 3 * n:]                             # h = o * tanh(c)
            h, c = hs[t], cs[t]
        y[..., 4 * n:5 * n], y[..., 5 * n:] = cs, hs
        ctx.save_for_backward(h0, c0, w_hh)
        ctx.reverse = reverse
        ctx.set_materialize_grads(False)
        return y, hs, cs

    @staticmethod
    def backward(ctx, grad_y, grad_hs, grad_cs):
        h0, c0, w_hh, y = ctx.saved_tensors
        n, rev = h0.shape[-1], ctx.reverse
        acts, f, g, o = y[..., :4 * n], y[..., n:2 * n], y[..., 2 * n:3 * n], y[..., 3 * n:4 * n]
        c, h = y[..., 4 * n:5 * n], y[..., 5 * n:]
        tanh_c = tanh(c)
        # d act / d pre: s(1 - s) for the sigmoid gates and 1 - g^2 = (1 - g)(1 + g) for g.
        g_block = cat([h0.new_zeros(2 * n), h0.new_ones(n), h0.new_zeros(n)])
        act_grad = (1 - acts) * (acts + g_block)
        # Every step's pre-activation gradient is [dc, dc, dc, dh] * coef (+ the gradient
        # that reached the packed activations), with dc = grad_c + dh * dh_to_dc + carry_c.
        coef = cat([g, _previous(c, c0, rev), y[..., :n], tanh_c], -1) * act_grad
        ext = None if grad_y is None else grad_y[..., :4 * n] * act_grad
        dh_to_dc = o * (1 - tanh_c * tanh_c)
        grad_h = _total(h, grad_hs, _block(grad_y, 5 * n, 6 * n))
        grad_c = _total(c, grad_cs, _block(grad_y, 4 * n, 5 * n))
        grad_pre = [None] * y.shape[0]
        carry_h = carry_c = None  # gradients reaching h_t and c_t through step t+1
        for t in reversed(_steps(y.shape[0], rev)):
            dh = grad_h[t] if carry_h is None else grad_h[t] + carry_h
            dc = grad_c[t] + dh * dh_to_dc[t]
            if carry_c is not None:
                dc = dc + carry_c
            grad_pre[t] = cat([dc, dc, dc, dh], -1) * coef[t]
            if ext is not None:
                grad_pre[t] = grad_pre[t] + ext[t]
            carry_h = matmul(grad_pre[t], w_hh)
            carry_c = dc * f[t]
        grad_pre = stack(grad_pre)
        grad_w = _weight_grad(grad_pre, _previous(h, h0, rev)) \
            if ctx.needs_input_grad[3] else None
        return grad_pre, carry_h, carry_c, grad_w, None


class GRUScan(Function):
    """GRU over a sequence: packed [r, z, n, W_hn h + b_hn, h] per step, then h on its own.

    d: BPTT through h, per step one matmul with W_hh.
    """

    saves_output = True

    @staticmethod
    def forward(ctx, gx, h0, w_hh, b_hh, reverse):
        xp = ctx.xp
        x, w_t = gx._data, _gemm_operand(xp, w_hh)
        steps, batch, size = x.shape
        n = size // 3
        y = xp.empty((steps, batch, 5 * n), dtype=x.dtype)
        hs = xp.empty((steps, batch, n), dtype=x.dtype)
        h = h0._data
        for t in _steps(steps, reverse):
            yt, xt = y[t], x[t]
            gh = xp.matmul(h, w_t)
            if b_hh is not None:
                gh += b_hh._data
            rz, cand, ghn = yt[:, :2 * n], yt[:, 2 * n:3 * n], yt[:, 3 * n:4 * n]
            xp.add(xt[:, :2 * n], gh[:, :2 * n], out=rz)
            _sigmoid_(xp, rz)
            ghn[...] = gh[:, 2 * n:]
            xp.multiply(rz[:, :n], ghn, out=cand)                 # n = tanh(gx_n + r * ghn)
            cand += xt[:, 2 * n:]
            xp.tanh(cand, out=cand)
            xp.subtract(h, cand, out=hs[t])                       # h = n + z * (h - n)
            hs[t] *= rz[:, n:]
            hs[t] += cand
            h = hs[t]
        y[..., 4 * n:] = hs
        ctx.save_for_backward(h0, w_hh)
        ctx.reverse = reverse
        ctx.set_materialize_grads(False)
        return y, hs

    @staticmethod
    def backward(ctx, grad_y, grad_hs):
        h0, w_hh, y = ctx.saved_tensors
        n, rev = h0.shape[-1], ctx.reverse
        r, z, cand, ghn, h = (y[..., k * n:(k + 1) * n] for k in range(5))
        # Every pre-activation gradient of a step is affine in dh, the gradient of its h:
        # d pre_n = dh*kn + en, d pre_z = dh*kz + ez, d pre_r = d pre_n*ghn*r' + grad_r*r',
        # d ghn = d pre_n*r + grad_ghn (r' = r(1-r)); the e terms come from gradients that
        # reached the packed gates. All coefficients are whole-sequence ops.
        tanh_grad, r_grad, z_grad = 1 - cand * cand, r * (1 - r), z * (1 - z)
        kn, kz, kr = (1 - z) * tanh_grad, (_previous(h, h0, rev) - cand) * z_grad, ghn * r_grad
        coef_gh = cat([kn * kr, kz, kn * r], -1)
        ext_gh = en = None
        if grad_y is not None:
            grad_r, grad_z, grad_n, grad_ghn = (grad_y[..., k * n:(k + 1) * n] for k in range(4))
            en = grad_n * tanh_grad
            ext_gh = cat([en * kr + grad_r * r_grad, grad_z * z_grad, en * r + grad_ghn], -1)
        grad_h = _total(h, grad_hs, _block(grad_y, 4 * n, 5 * n))
        grad_gh, grad_hs = [None] * y.shape[0], [None] * y.shape[0]
        carry = None  # gradient reaching h_t through step t+1 (in processing order)
        for t in reversed(_steps(y.shape[0], rev)):
            dh = grad_h[t] if carry is None else grad_h[t] + carry
            grad_gh[t] = cat([dh, dh, dh], -1) * coef_gh[t]
            if ext_gh is not None:
                grad_gh[t] = grad_gh[t] + ext_gh[t]
            grad_hs[t] = dh
            carry = matmul(grad_gh[t], w_hh) + dh * z[t]
        grad_gh, dh = stack(grad_gh), stack(grad_hs)
        # The input-side gradient differs from grad_gh only in the n block (d pre_n, not d ghn).
        grad_n_pre = dh * kn if en is None else dh * kn + en
        grad_gx = cat([grad_gh[..., :2 * n], grad_n_pre], -1)
        grad_w = _weight_grad(grad_gh, _previous(h, h0, rev)) \
            if ctx.needs_input_grad[2] else None
        grad_b = grad_gh.sum((0, 1)) if ctx.needs_input_grad[3] else None
        return grad_gx, carry, grad_w, grad_b, None


def _check_scan(name: str, gx: Tensor, states: tuple, w_hh: Tensor, gates: int) -> int:
    """Validate shapes and dtypes; returns the hidden size."""
    if gx.ndim != 3 or gx.shape[0] == 0:
        raise RuntimeError(f"{name}: expected gx of shape (steps >= 1, batch, {gates}*hidden), "
                           f"got {tuple(gx.shape)}")
    _, batch, size = gx.shape
    hidden = w_hh.shape[-1] if w_hh.ndim == 2 else -1
    if w_hh.ndim != 2 or tuple(w_hh.shape) != (gates * hidden, hidden) or size != gates * hidden:
        raise RuntimeError(f"{name}: expected w_hh of shape ({gates}*hidden, hidden) matching gx "
                           f"{tuple(gx.shape)}, got {tuple(w_hh.shape)}")
    for s in states:
        if tuple(s.shape) != (batch, hidden):
            raise RuntimeError(f"{name}: expected a state of shape {(batch, hidden)}, got "
                               f"{tuple(s.shape)}")
    for t in states + (w_hh,):
        if t.dtype != gx.dtype:
            raise RuntimeError(f"{name}: expected all tensors to be {gx.dtype.name}, got "
                               f"{t.dtype.name}")
    return hidden


def rnn_scan(gx: Tensor, h0: Tensor, w_hh: Tensor, nonlinearity: str = "tanh",
             reverse: bool = False) -> Tensor:
    """Elman RNN states h (steps, batch, hidden) from input projections gx (steps, batch, hidden).

    ``gx`` already holds ``x W_ih^T + b_ih + b_hh``; ``reverse`` runs from the last step.
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
    _check_scan("rnn_scan", gx, (h0,), w_hh, 1)
    return RNNScan.apply(gx, h0, w_hh, nonlinearity, reverse)


def lstm_scan(gx: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor,
              reverse: bool = False) -> tuple[Tensor, Tensor]:
    """LSTM states (h, c), each (steps, batch, hidden), from gx (steps, batch, 4*hidden).

    ``gx`` already holds ``x W_ih^T + b_ih + b_hh`` in torch's gate order (i, f, g, o).
    """
    _check_scan("lstm_scan", gx, (h0, c0), w_hh, 4)
    _, hs, cs = LSTMScan.apply(gx, h0, c0, w_hh, reverse)
    return hs, cs


def gru_scan(gx: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor | None = None,
             reverse: bool = False) -> Tensor:
    """GRU states h (steps, batch, hidden) from gx (steps, batch, 3*hidden).

    ``gx`` holds ``x W_ih^T + b_ih`` (gate order r, z, n); ``b_hh`` is added to ``W_hh h``
    inside the recurrence because the n gate multiplies it by r.
    """
    n = _check_scan("gru_scan", gx, (h0,), w_hh, 3)
    if b_hh is not None and tuple(b_hh.shape) != (3 * n,):
        raise RuntimeError(f"gru_scan: expected b_hh of shape {(3 * n,)}, got "
                           f"{tuple(b_hh.shape)}")
    return GRUScan.apply(gx, h0, w_hh, b_hh, reverse)[1]

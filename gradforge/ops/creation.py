"""Creating tensors: from data, filled, ranges, identity and random draws."""
from __future__ import annotations

import math

import numpy as np

from ..backend import as_device, on_device
from ..backend.dtypes import bool_, from_numpy_dtype, get_default_dtype, int64, to_dtype
from ..random import generator_for
from ..tensor import Tensor
from ._util import size_args


def _finish(data, device, requires_grad: bool) -> Tensor:
    if requires_grad and data.dtype.kind != "f":
        raise RuntimeError("Only Tensors of floating point dtype can require gradients "
                           f"(got {from_numpy_dtype(data.dtype)})")
    return Tensor._make(data, device, bool(requires_grad))


def _infer_dtype(data):
    """torch's dtype for Python data: bool, int64, or the default float."""
    if isinstance(data, Tensor):
        return data.dtype
    if isinstance(data, np.ndarray):
        return from_numpy_dtype(data.dtype)
    if isinstance(data, (list, tuple)):
        kinds = [_infer_dtype(x) for x in data]
        if not kinds:
            return get_default_dtype()
        if any(k.is_floating_point for k in kinds):
            floats = [k for k in kinds if k.is_floating_point]
            return max(floats, key=lambda k: k.itemsize) if any(
                isinstance(x, (Tensor, np.ndarray, np.generic)) for x in data) \
                else get_default_dtype()
        if any(k is not bool_ for k in kinds):
            return int64
        return bool_
    if isinstance(data, (bool, np.bool_)):
        return bool_
    # NOTE: a NumPy scalar keeps its dtype, as in torch (np.float64 is also a Python float).
    if isinstance(data, np.generic):
        return from_numpy_dtype(data.dtype)
    if isinstance(data, int):
        return int64
    if isinstance(data, float):
        return get_default_dtype()
    if hasattr(data, "__dlpack__") or hasattr(data, "__array__"):
        return from_numpy_dtype(np.asarray(data).dtype)
    raise TypeError(f"Could not infer dtype of {type(data).__name__}")


def _host(data):
    """Nested Python data (possibly holding tensors) as a NumPy array."""
    if isinstance(data, Tensor):
        return data._device.backend.to_host(data._data)
    if isinstance(data, (list, tuple)):
        return np.array([_host(x) for x in data]) if data and any(
            isinstance(x, (Tensor, list, tuple)) for x in data) else np.array(
            [x.item() if isinstance(x, Tensor) else x for x in data])
    return np.asarray(data)


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (nested lists, scalars, arrays, tensors)."""
    dt = to_dtype(dtype) if dtype is not None else _infer_dtype(data)
    dev = as_device(device if device is not None else
                    (data._device if isinstance(data, Tensor) else None))
    try:
        host = _host(data)
    except ValueError as e:
        raise ValueError(f"tensor(): the nested sequences have different lengths (ragged "
                         f"data): {e}") from None
    return _finish(dev.backend.asarray(np.array(host, dtype=dt.np, copy=True)), dev,
                   requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like ``tensor`` but shares memory with a NumPy array or tensor when it can."""
    if isinstance(data, Tensor):
        return data.to(device=device, dtype=dtype) if (device or dtype) else data
    if isinstance(data, np.ndarray) and (device is None or as_device(device).type == "cpu"):
        arr = data if dtype is None else data.astype(to_dtype(dtype).np, copy=False)
        return Tensor._make(arr, as_device("cpu"))
    return tensor(data, dtype=dtype, device=device)


def from_numpy(ndarray: np.ndarray) -> Tensor:
    """A CPU tensor sharing memory with ``ndarray``."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(ndarray).__name__})")
    from_numpy_dtype(ndarray.dtype)  # a clear error for unsupported dtypes
    return Tensor._make(ndarray, as_device("cpu"))


def from_dlpack(ext_tensor) -> Tensor:
    """Zero-copy import of any DLPack-capable array (NumPy, CuPy, torch)."""
    kind, index = ext_tensor.__dlpack_device__()
    if int(kind) == 1:  # kDLCPU
        return Tensor._make(np.from_dlpack(ext_tensor), as_device("cpu"))
    dev = as_device(f"cuda:{index}")
    with on_device(dev):
        return Tensor._make(dev.xp.from_dlpack(ext_tensor), dev)


def _shape(size) -> tuple:
    shape = size_args(size)
    if any(s < 0 for s in shape):
        raise RuntimeError(f"Trying to create tensor with negative dimension: {list(shape)}")
    return shape


def _filled(fill, size, dtype, device, requires_grad, default_dtype=None) -> Tensor:
    dt = to_dtype(dtype) if dtype is not None else (default_dtype or get_default_dtype())
    dev = as_device(device)
    # NOTE: CuPy allocates on the current GPU; every creation below makes ``dev`` current.
    with on_device(dev):
        data = fill(dev.xp, _shape(size), dt.np)
    return _finish(data, dev, requires_grad)


def size_given(name: str, args: tuple, size) -> tuple:
    """The size of ``f(2, 3)``, ``f((2, 3))`` or ``f(size=(2, 3))`` as positional arguments."""
    if size is None:
        return args
    if args:
        raise TypeError(f"{name}() got multiple values for argument 'size'")
    return (size,)


def zeros(*args, size=None, dtype=None, device=None, requires_grad: bool = False,
          out=None) -> Tensor:
    return _filled(lambda xp, s, d: xp.zeros(s, d), size_given("zeros", args, size), dtype,
                   device, requires_grad)


def ones(*args, size=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _filled(lambda xp, s, d: xp.ones(s, d), size_given("ones", args, size), dtype,
                   device, requires_grad)


def empty(*args, size=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _filled(lambda xp, s, d: xp.empty(s, d), size_given("empty", args, size), dtype,
                   device, requires_grad)


def full(size, fill_value, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    if isinstance(fill_value, (Tensor, np.generic)):  # dtype from the value, as a number's
        fill_value = fill_value.item()
    return _filled(lambda xp, s, d: xp.full(s, fill_value, d), (size,) if isinstance(size, int)
                   else tuple(size), dtype, device, requires_grad, _infer_dtype(fill_value))


def _like(fn):
    def like(input, *args, dtype=None, device=None, requires_grad: bool = False, **kw) -> Tensor:
        return fn(tuple(input.shape), *args, dtype=dtype or input.dtype,
                  device=device or input.device, requires_grad=requires_grad, **kw)
    like.__name__ = fn.__name__ + "_like"
    like.__doc__ = f"``{fn.__name__}`` with the shape (and by default dtype, device) of input."
    return like


zeros_like = _like(zeros)
ones_like = _like(ones)
empty_like = _like(empty)
full_like = _like(full)


def arange(start=0, end=None, step=1, *, dtype=None, device=None,
           requires_grad: bool = False) -> Tensor:
    if end is None:
        start, end = 0, start
    # 0-d tensors as bounds (arange(x.sum())) act as the numbers they hold, as in torch.
    start, end, step = (v.item() if isinstance(v, Tensor) else v for v in (start, end, step))
    if dtype is None:
        dtype = int64 if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                             for v in (start, end, step)) else get_default_dtype()
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if (end - start) / step < 0:
        raise RuntimeError(f"upper bound and larger bound inconsistent with step sign: start="
                           f"{start}, end={end}, step={step}")
    n = max(0, math.ceil((end - start) / step))
    dev = as_device(device)
    dt = to_dtype(dtype)
    with on_device(dev):
        data = (dev.xp.arange(n, dtype=np.float64) * step + start).astype(dt.np)
    return _finish(data, dev, requires_grad)


def linspace(start, end, steps: int, *, dtype=None, device=None,
             requires_grad: bool = False) -> Tensor:
    dev = as_device(device)
    dt = to_dtype(dtype) if dtype is not None else get_default_dtype()
    with on_device(dev):
        data = dev.xp.linspace(start, end, steps).astype(dt.np)
    return _finish(data, dev, requires_grad)


def eye(n: int, m: int | None = None, *, dtype=None, device=None,
        requires_grad: bool = False) -> Tensor:
    dev = as_device(device)
    dt = to_dtype(dtype) if dtype is not None else get_default_dtype()
    with on_device(dev):
        data = dev.xp.eye(n, m, dtype=dt.np)
    return _finish(data, dev, requires_grad)


# -- random -----------------------------------------------------------------------------------
def _random(draw, size, generator, dtype, device, requires_grad, default=None) -> Tensor:
    dev = as_device(device)
    dt = to_dtype(dtype) if dtype is not None else (default or get_default_dtype())
    rng = generator_for(dev, generator).rng
    with on_device(dev):
        data = draw(rng, _shape(size), dt.np)
    return _finish(data, dev, requires_grad)


def _float_draw(method):
    def draw(rng, shape, np_dtype):
        if np.dtype(np_dtype).kind != "f":
            raise RuntimeError(f"\"{method}\" not implemented for '{np.dtype(np_dtype).name}'")
        # NumPy/CuPy draw float32 and float64 natively; float16 is drawn in float32.
        native = np_dtype if np.dtype(np_dtype).itemsize >= 4 else np.float32
        return getattr(rng, method)(shape, dtype=native).astype(np_dtype, copy=False)
    return draw


def rand(*args, size=None, generator=None, dtype=None, device=None,
         requires_grad: bool = False) -> Tensor:
    """Uniform samples on [0, 1)."""
    return _random(_float_draw("random"), size_given("rand", args, size), generator, dtype,
                   device, requires_grad)


def randn(*args, size=None, generator=None, dtype=None, device=None,
          requires_grad: bool = False) -> Tensor:
    """Standard normal samples."""
    return _random(_float_draw("standard_normal"), size_given("randn", args, size), generator,
                   dtype, device, requires_grad)


def randint(low, high=None, size=None, *, generator=None, dtype=None, device=None,
            requires_grad: bool = False) -> Tensor:
    """Integers drawn uniformly from [low, high)."""
    if size is None and isinstance(high, (tuple, list)):  # randint(high, size)
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    if size is None:
        raise TypeError("randint() missing required argument 'size'")
    if low >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= "
                           f"to={high}")
    return _random(lambda rng, s, d: rng.integers(low, high, s, dtype=np.int64).astype(d),
                   (tuple(size),), generator, dtype, device, requires_grad, int64)


def randperm(n: int, *, generator=None, dtype=None, device=None,
             requires_grad: bool = False) -> Tensor:
    """A random permutation of 0..n-1."""
    return _random(lambda rng, s, d: rng.permutation(n).astype(d), ((),), generator, dtype,
                   device, requires_grad, int64)


def rand_like(input, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return rand(tuple(input.shape), dtype=dtype or input.dtype, device=device or input.device,
                requires_grad=requires_grad)


def randn_like(input, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return randn(tuple(input.shape), dtype=dtype or input.dtype, device=device or input.device,
                 requires_grad=requires_grad)


def randint_like(input, low, high=None, *, dtype=None, device=None) -> Tensor:
    return randint(low, high, tuple(input.shape), dtype=dtype or input.dtype,
                   device=device or input.device)


def uniform_(self: Tensor, a: float = 0.0, b: float = 1.0, *, generator=None) -> Tensor:
    """Fill in place with uniform samples on [a, b)."""
    from .inplace import copy_
    return copy_(self, rand(tuple(self.shape), generator=generator, dtype=self.dtype,
                            device=self.device) * (b - a) + a)


def normal_(self: Tensor, mean: float = 0.0, std: float = 1.0, *, generator=None) -> Tensor:
    """Fill in place with normal samples."""
    from .inplace import copy_
    return copy_(self, randn(tuple(self.shape), generator=generator, dtype=self.dtype,
                             device=self.device) * std + mean)


def bernoulli(input, p=None, *, generator=None) -> Tensor:
    """Samples of 0/1 with probabilities ``input`` (or ``p``)."""
    probs = input if p is None else full(tuple(input.shape), p, dtype=input.dtype,
                                         device=input.device)
    u = rand(tuple(input.shape), generator=generator, dtype=probs.dtype, device=probs.device)
    return (u < probs.detach()).to(probs.dtype)


def multinomial(input, num_samples: int, replacement: bool = False, *, generator=None):
    """Indices sampled from the rows of ``input`` (unnormalised probabilities)."""
    probs = input.detach()
    squeeze = probs.ndim == 1
    if squeeze:
        probs = probs.reshape(1, -1)
    p = probs / probs.sum(-1, keepdim=True)
    rows = []
    for r in range(p.shape[0]):
        u = rand(num_samples if replacement else p.shape[1], generator=generator,
                 dtype=p.dtype, device=p.device)
        if replacement:
            cdf = p[r].cumsum(0)
            rows.append(_searchsorted(cdf, u))
        else:
            # Gumbel-top-k: sample without replacement by perturbed log-probabilities.
            keys = (p[r].log() - (-u.log()).log())
            rows.append(keys.topk(num_samples).indices)
    from .movement import stack
    out = stack(rows)
    return out[0] if squeeze else out


def _searchsorted(cdf, u):
    xp = cdf.device.xp
    with on_device(cdf._device):
        idx = xp.searchsorted(cdf._data, u._data, side="right")
        idx = xp.minimum(idx, cdf._data.shape[0] - 1).astype(xp.int64)
    return Tensor._make(idx, cdf._device)

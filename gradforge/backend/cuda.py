"""The CUDA backend: CuPy arrays, the kernel loader and launcher. The only module importing cupy.

``status()`` explains, when CUDA cannot be used, which of the three requirements is missing
(the cupy package, a working driver, a device) and how to install the GPU extra.
"""
from __future__ import annotations

import importlib
import os

import numpy as np

from .cuda_random import PhiloxGenerator, from_state_bytes
from .device import device
from .kernels import kernel_source
from .shapes import conv_output_shape, pool2d_grad_output_shape, pool_output_shape

_INSTALL_HINT = ('install the GPU extra that matches your CUDA toolkit: '
                 'pip install "gradforge[cuda12]" or pip install "gradforge[cuda13]"')

_SIMULATOR_HINT = ("GRADFORGE_SIMULATE_CUDA=1 asks for the test-only CUDA simulator, which "
                   "lives in gradforge's tests/ folder (run the test suite, which puts it on "
                   "sys.path), or unset the variable")

_cupy = None
_status: tuple[bool, str] | None = None
_backends: dict = {}
_tracker = None


def _simulated() -> bool:
    return os.environ.get("GRADFORGE_SIMULATE_CUDA") == "1"


def _import_cupy(name: str = "cupy"):
    """Import ``cupy`` or a companion (``cupyx.scipy.special``), or the simulator's twin of it.

    NOTE: with GRADFORGE_SIMULATE_CUDA=1 the module comes from ``simcuda``, a package under
    tests/ that the test suite puts on sys.path; user code never sets the variable, so an
    installed gradforge never imports test code.
    """
    if _simulated():
        return importlib.import_module("simcuda" if name == "cupy" else f"simcuda.{name}")
    return importlib.import_module(name)


def status() -> tuple[bool, str]:
    """``(True, "")`` when CUDA is usable, else ``(False, why and how to fix it)``."""
    global _cupy, _status
    if _status is not None:
        return _status
    try:
        cp = _import_cupy()
    except ImportError as e:
        hint = _SIMULATOR_HINT if _simulated() else f"CuPy is not installed; {_INSTALL_HINT}"
        _status = (False, f"{hint} ({e})")
        return _status
    try:
        count = cp.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001  CUDARuntimeError: no driver, driver too old, ...
        _status = (False, (f"CuPy is installed but the NVIDIA driver is not usable ({e}); "
                           "install or update the NVIDIA driver"))
        return _status
    if count == 0:
        _status = (False, "CuPy and the driver are present but no CUDA device was found")
        return _status
    _cupy = cp
    _status = (True, "")
    return _status


def is_available() -> bool:
    return status()[0]


def require() -> object:
    """The cupy module, or a RuntimeError saying why CUDA cannot be used."""
    ok, why = status()
    if not ok:
        raise RuntimeError(f"CUDA is not available: {why}")
    return _cupy


def device_count() -> int:
    return _cupy.cuda.runtime.getDeviceCount() if is_available() else 0


def current_device() -> int:
    """The calling thread's current device (CUDA keeps one per host thread)."""
    return require().cuda.runtime.getDevice()


def set_device(index: int) -> None:
    cp = require()
    index = int(index)
    if not 0 <= index < device_count():
        raise RuntimeError(f"CUDA device {index} does not exist: {device_count()} device(s) "
                           "present")
    cp.cuda.Device(index).use()


def get_backend(index: int | None):
    """The backend for ``cuda:index`` (created once per device)."""
    global _tracker
    cp = require()
    index = current_device() if index is None else index
    if index >= device_count():
        raise RuntimeError(
            f"CUDA error: invalid device ordinal cuda:{index} ({device_count()} device(s) present)")
    b = _backends.get(index)
    if b is None:
        if _tracker is None:
            _tracker = _PeakTracker(cp)
        b = _backends[index] = CUDABackend(cp, index)
    return b


def is_pinned(array) -> bool:
    """True when ``array`` is a NumPy array in page-locked (pinned) host memory."""
    if not isinstance(array, np.ndarray) or array.size == 0 or not is_available():
        return False
    attributes = _cupy.cuda.runtime.pointerGetAttributes(array.ctypes.data)
    # cudaMemoryTypeHost (1): page-locked memory registered with the driver. (Some CuPy
    # releases report no ``type``; they cannot tell, so nothing counts as pinned there.)
    return getattr(attributes, "type", -1) == 1


class _PeakTracker:
    """The peak of each device's allocated bytes, sampled at every allocation.

    CuPy's memory pool reports only the current ``used_bytes``; torch's
    ``max_memory_allocated`` needs the peak, so the allocator is wrapped once (keeping
    whatever allocator was installed) and samples the pool after each allocation.
    """

    def __init__(self, cp):
        self._pool = cp.get_default_memory_pool()
        self._inner = cp.cuda.get_allocator()
        self.peak: dict[int, int] = {}
        cp.cuda.set_allocator(self.malloc)

    def malloc(self, size: int):
        memory = self._inner(size)
        used = self._pool.used_bytes()
        if used > self.peak.get(memory.device_id, 0):
            self.peak[memory.device_id] = used
        return memory


class CUDABackend:
    """CuPy on one GPU; kernels from ``kernels/*.cu`` compiled once per (file, device, dtype)."""

    name = "cuda"
    batch_inner_pixels = 0
    """Convolutions always use per-sample columns here: the kernels write them (ops/conv.py)."""

    def __init__(self, cp, index: int):
        self.xp = cp
        self.index = index
        self.device = device("cuda", index)
        self._modules: dict = {}
        self._special = None  # cupyx.scipy.special and cupyx, imported on first use
        self._cupyx = None

    def activate(self):
        """A context manager making this GPU the current device, or None when it already is.

        CuPy allocates and launches on the calling thread's current device, so an op on
        ``cuda:1`` tensors runs with device 1 made current (torch's device guard) and the
        previous device comes back on leaving. The common case costs one ``getDevice`` call.
        """
        if self.xp.cuda.runtime.getDevice() == self.index:
            return None
        return self.xp.cuda.Device(self.index)

    def asarray(self, data, dtype=None):
        """Host data, or an array on any GPU, as an array on this GPU. From another GPU the
        bytes go device to device (CuPy's cross-device ``ndarray.copy``: a peer copy where the
        GPUs allow it), not through host memory."""
        with self.xp.cuda.Device(self.index):
            if isinstance(data, self.xp.ndarray) and data.device.id != self.index:
                data = data.copy()
            return self.xp.asarray(data, dtype=dtype)

    def to_host(self, array) -> np.ndarray:
        return self.xp.asnumpy(array)

    def synchronize(self) -> None:
        with self.xp.cuda.Device(self.index):
            self.xp.cuda.runtime.deviceSynchronize()

    def new_generator(self, seed: int) -> PhiloxGenerator:
        """A generator drawing on this GPU (cuRAND Philox; see backend/cuda_random.py)."""
        return PhiloxGenerator(self.xp, self.index, seed)

    def rng_state_bytes(self, rng: PhiloxGenerator, seed: int) -> bytes:
        """The generator's 16-byte state: its seed and how many draws it has made."""
        return rng.state_bytes()

    def rng_from_state_bytes(self, data: bytes) -> tuple[int, PhiloxGenerator]:
        return from_state_bytes(self.xp, self.index, data)

    def add_at(self, target, index, values) -> None:
        # cupy.add.at is unbuffered like numpy's: repeated indices accumulate.
        with self.xp.cuda.Device(self.index):
            self.xp.add.at(target, index, values)

    def axpy(self, y, alpha, x) -> None:
        # The product's temporary comes from CuPy's memory pool: cheap next to a launch.
        with self.xp.cuda.Device(self.index):
            self.xp.add(y, self.xp.multiply(x, alpha), out=y, casting="unsafe")

    def where(self, condition, x, y):
        # CuPy's elementwise where does not branch per element like NumPy's.
        return self.xp.where(condition, x, y)

    def move_batch_last(self, x, out=None):
        moved = self.xp.moveaxis(x, 0, -1)
        if out is None:
            return self.xp.ascontiguousarray(moved)
        out[...] = moved
        return out

    def move_batch_first(self, y):
        return self.xp.ascontiguousarray(self.xp.moveaxis(y, -1, 0))

    def sum(self, x, axis: tuple, keepdims: bool = False, dtype=None):
        return self.xp.sum(x, axis=axis, keepdims=keepdims, dtype=dtype)

    def relu(self, x, out=None):
        return self.xp.maximum(x, 0, out=out)

    def erf(self, x):
        if self._special is None:
            self._special = _import_cupy("cupyx.scipy.special")
        with self.xp.cuda.Device(self.index):
            return self._special.erf(x)

    # -- kernels -------------------------------------------------------------------------
    def kernel(self, filename: str, name: str, dtype):
        """The compiled ``__global__`` function ``name`` of ``kernels/<filename>``.

        Each file is compiled once per device and element type with ``-Dscalar_t=<type>``.
        """
        ctype = _C_TYPES[np.dtype(dtype)]
        key = (filename, ctype)
        module = self._modules.get(key)
        if module is None:
            with self.xp.cuda.Device(self.index):
                module = self.xp.RawModule(code=kernel_source(filename),
                                           options=("-std=c++14", f"-Dscalar_t={ctype}"))
            self._modules[key] = module
        return module.get_function(name)

    def launch(self, filename: str, name: str, n_threads: int, *args) -> None:
        """Launch ``name`` over ``n_threads`` logical threads (grid-stride kernels).

        Scalars are passed with their exact C types, since CuPy does not check them: Python
        ints become ``long long`` (all kernel sizes and indices are 64-bit) and Python floats
        become ``scalar_t`` (the dtype of the first array argument).
        """
        arrays = [a for a in args if isinstance(a, self.xp.ndarray)]
        dtype = arrays[0].dtype
        for a in arrays:
            if not a.flags.c_contiguous:
                raise ValueError(f"kernel {name}: array arguments must be C-contiguous")
        converted = tuple(
            np.int64(a) if isinstance(a, (int, np.integer)) and not isinstance(a, bool)
            else dtype.type(a) if isinstance(a, float) else a
            for a in args)
        block, grid = launch_geometry(n_threads)
        with self.xp.cuda.Device(self.index):
            self.kernel(filename, name, dtype)((grid,), (block,), converted)

    def workspace(self, shape, dtype):
        """An uninitialised array for transient use; CuPy's memory pool already reuses freed
        blocks, so this is ``cupy.empty`` (``CPUBackend.workspace`` keeps buffers itself)."""
        return self.xp.empty(shape, dtype)

    # -- convolution and pooling: kernels/im2col.cu and kernels/pool2d.cu ---------------------
    # The signatures and results of the NumPy twins in backend/cpu.py (shapes in shapes.py);
    # every kernel runs one thread per output element (forward) or input pixel (backward).

    def im2col(self, x, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int, dh: int,
               dw: int):
        """Columns of ``x`` as ``torch.nn.functional.unfold``: (N, C*kh*kw, OH*OW)."""
        n, c, h, w = x.shape
        oh, ow = conv_output_shape((h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw))
        with self.xp.cuda.Device(self.index):
            cols = self.xp.empty((n, c * kh * kw, oh * ow), x.dtype)
            self.launch("im2col.cu", "im2col_forward", cols.size, self.xp.ascontiguousarray(x),
                        cols, cols.size, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw)
        return cols

    def col2im(self, cols, x_shape, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int,
               dh: int, dw: int):
        """The adjoint of ``im2col`` (``fold``), as a gather: no atomics, deterministic."""
        n, c, h, w = x_shape
        oh, ow = conv_output_shape((h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw))
        with self.xp.cuda.Device(self.index):
            x = self.xp.empty(tuple(x_shape), cols.dtype)
            self.launch("im2col.cu", "im2col_backward", x.size, self.xp.ascontiguousarray(cols),
                        x, x.size, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw)
        return x

    def max_pool2d_forward(self, x, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int,
                           dh: int, dw: int, ceil_mode: bool):
        """``(out, indices)`` as ``max_pool2d(..., return_indices=True)``; int64 indices."""
        n, c, h, w = x.shape
        oh, ow = pool_output_shape((h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil_mode)
        with self.xp.cuda.Device(self.index):
            out = self.xp.empty((n, c, oh, ow), x.dtype)
            indices = self.xp.empty((n, c, oh, ow), np.int64)
            self.launch("pool2d.cu", "max_pool2d_forward", out.size,
                        self.xp.ascontiguousarray(x), out, indices, out.size, h, w, oh, ow, kh,
                        kw, sh, sw, ph, pw, dh, dw)
        return out, indices

    def max_pool2d_backward(self, grad_out, indices, x_shape, kh: int, kw: int, sh: int,
                            sw: int, ph: int, pw: int, dh: int, dw: int, ceil_mode: bool):
        """Gradient of ``max_pool2d_forward``, gathered per input pixel (no atomics)."""
        h, w = x_shape[2:]
        oh, ow = pool2d_grad_output_shape(grad_out.shape, x_shape, (kh, kw), (sh, sw),
                                          (ph, pw), (dh, dw), ceil_mode)
        with self.xp.cuda.Device(self.index):
            grad_x = self.xp.empty(tuple(x_shape), grad_out.dtype)
            self.launch("pool2d.cu", "max_pool2d_backward", grad_x.size,
                        self.xp.ascontiguousarray(grad_out), self.xp.ascontiguousarray(indices),
                        grad_x, grad_x.size, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw)
        return grad_x

    def avg_pool2d_forward(self, x, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int,
                           ceil_mode: bool, count_include_pad: bool,
                           divisor_override: int | None):
        """``torch.nn.functional.avg_pool2d`` (no dilation, as in torch)."""
        n, c, h, w = x.shape
        oh, ow = pool_output_shape((h, w), (kh, kw), (sh, sw), (ph, pw), (1, 1), ceil_mode)
        with self.xp.cuda.Device(self.index):
            out = self.xp.empty((n, c, oh, ow), x.dtype)
            # The kernel reads a zero divisor_override as "none".
            self.launch("pool2d.cu", "avg_pool2d_forward", out.size,
                        self.xp.ascontiguousarray(x), out, out.size, h, w, oh, ow, kh, kw, sh,
                        sw, ph, pw, int(count_include_pad), int(divisor_override or 0))
        return out

    def avg_pool2d_backward(self, grad_out, x_shape, kh: int, kw: int, sh: int, sw: int,
                            ph: int, pw: int, ceil_mode: bool, count_include_pad: bool,
                            divisor_override: int | None):
        """Gradient of ``avg_pool2d_forward``, gathered per input pixel (no atomics)."""
        h, w = x_shape[2:]
        oh, ow = pool2d_grad_output_shape(grad_out.shape, x_shape, (kh, kw), (sh, sw),
                                          (ph, pw), (1, 1), ceil_mode)
        with self.xp.cuda.Device(self.index):
            grad_x = self.xp.empty(tuple(x_shape), grad_out.dtype)
            self.launch("pool2d.cu", "avg_pool2d_backward", grad_x.size,
                        self.xp.ascontiguousarray(grad_out), grad_x, grad_x.size, h, w, oh, ow,
                        kh, kw, sh, sw, ph, pw, int(count_include_pad),
                        int(divisor_override or 0))
        return grad_x

    # -- memory and properties ------------------------------------------------------------
    def pin_host(self, array: np.ndarray) -> np.ndarray:
        """A copy of host ``array`` in page-locked memory, from which uploads run asynchronously.

        ``DataLoader(pin_memory=True)`` puts its batches there (``utils/data/_collate.py``).
        """
        if self._cupyx is None:
            self._cupyx = _import_cupy("cupyx")
        out = self._cupyx.empty_pinned(array.shape, array.dtype)
        out[...] = array
        return out

    def memory_allocated(self) -> int:
        """Bytes held by live arrays on this GPU (CuPy's memory pool, ``used_bytes``)."""
        with self.xp.cuda.Device(self.index):
            return int(self.xp.get_default_memory_pool().used_bytes())

    def memory_reserved(self) -> int:
        """Bytes the pool holds on this GPU, live or cached for reuse (``total_bytes``)."""
        with self.xp.cuda.Device(self.index):
            return int(self.xp.get_default_memory_pool().total_bytes())

    def max_memory_allocated(self) -> int:
        """The peak of ``memory_allocated`` since the first CUDA use or the last reset."""
        return max(_tracker.peak.get(self.index, 0), self.memory_allocated())

    def reset_peak_memory_stats(self) -> None:
        _tracker.peak[self.index] = self.memory_allocated()

    def empty_cache(self) -> None:
        """Return the pool's cached, unused blocks on this GPU to the driver."""
        with self.xp.cuda.Device(self.index):
            self.xp.get_default_memory_pool().free_all_blocks()

    def device_name(self) -> str:
        name = self.xp.cuda.runtime.getDeviceProperties(self.index)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)


_C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

BLOCK = 256
MAX_BLOCKS = 65535


def launch_geometry(n_threads: int) -> tuple[int, int]:
    """``(threads per block, blocks)`` for a grid-stride kernel covering ``n_threads``."""
    blocks = max(1, min(MAX_BLOCKS, (int(n_threads) + BLOCK - 1) // BLOCK))
    return BLOCK, blocks

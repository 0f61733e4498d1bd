"""gradforge: a small, readable deep-learning framework with PyTorch's API.

NumPy on the CPU, CuPy and hand-written CUDA kernels on NVIDIA GPUs; ``import gradforge as
torch`` runs a PyTorch training loop.
"""
# ruff: noqa: E402, F401, F403, I001  (the public namespace: re-exports, in dependency order,
# after the warnings filter)
import builtins
import warnings

# NumPy reports floating-point exceptions (log(0), x / 0, overflow) as RuntimeWarnings where
# torch returns inf or nan silently. Only the ones raised in gradforge's own code are dropped
# (no per-op cost, as an errstate context would have): NumPy in user code still warns.
warnings.filterwarnings("ignore", r"(divide by zero|overflow|underflow|invalid value) encountered",
                        RuntimeWarning, r"gradforge(\.|$)")

from . import autograd
from .autograd import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .backend import device
from .backend.cpu import get_num_threads, set_num_threads
from .backend.dtypes import (bool_ as bool, dtype, float16, float32, float64,
                             get_default_dtype, int8, int16, int32, int64, set_default_dtype,
                             uint8)
from .tensor import Size, Tensor
from .ops import *  # the op library is the top-level namespace, as in torch
from .ops import TENSOR_METHODS as _TENSOR_METHODS
from .random import (Generator, get_rng_state, initial_seed, manual_seed, seed,
                     set_rng_state, default_generator)
from . import cuda
from . import nn
from . import optim
from . import utils
from . import datasets
from .serialization import load, save

half, float, double, long, int, short = float16, float32, float64, int64, int32, int16

__version__ = "0.1.0"


# NOTE: the dtype names above shadow the builtins bool, float and int in this module.
def is_tensor(obj) -> builtins.bool:
    """True if ``obj`` is a gradforge Tensor."""
    return isinstance(obj, Tensor)


def numel(input: Tensor) -> builtins.int:
    """The number of elements of ``input``."""
    return input.numel()


def is_floating_point(input: Tensor) -> builtins.bool:
    """True if ``input`` has a floating dtype."""
    return input.is_floating_point()

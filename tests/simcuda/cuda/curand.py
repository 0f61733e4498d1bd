"""Simulated ``cupy.cuda.curand``: the cuRAND host API, writing into device memory by address.

Like the real wrappers, the generation calls take a raw device pointer (``a.data.ptr``) and a
count; the simulation checks that the range lies in an allocation on the current device (a
wrong pointer would be an illegal memory access on a GPU) and fills it from NumPy's Philox
keyed by the seed and advanced from the offset. The numbers differ from cuRAND's; the ranges
(``(0, 1]`` for uniforms), the even-count rule for normals and the offset semantics do not.
"""
from __future__ import annotations

import ctypes
import itertools

import numpy as np

from .. import _device

CURAND_RNG_PSEUDO_DEFAULT = 100
CURAND_RNG_PSEUDO_XORWOW = 101
CURAND_RNG_PSEUDO_PHILOX4_32_10 = 161

_handles = itertools.count(1)
_generators: dict[int, dict] = {}


class CURANDError(RuntimeError):
    """cuRAND's error type (``CURAND_STATUS_...``)."""


def createGenerator(rng_type: int) -> int:
    handle = next(_handles)
    _generators[handle] = {"type": int(rng_type), "seed": 0, "offset": 0,
                           "device": _device.current()}
    return handle


def destroyGenerator(generator: int) -> None:
    _state(generator)
    del _generators[generator]


def setPseudoRandomGeneratorSeed(generator: int, seed: int) -> None:
    if not 0 <= seed < 2 ** 64:
        raise OverflowError(f"seed {seed} does not fit an unsigned long long")
    _state(generator).update(seed=int(seed), offset=0)


def setGeneratorOffset(generator: int, offset: int) -> None:
    _state(generator)["offset"] = int(offset)


def setStream(generator: int, stream: int) -> None:
    _state(generator)


def _state(generator: int) -> dict:
    state = _generators.get(generator)
    if state is None:
        raise CURANDError("CURAND_STATUS_NOT_INITIALIZED")
    return state


def _fill(generator: int, ptr: int, num: int, dtype, draw) -> None:
    state = _state(generator)
    dtype = np.dtype(dtype)
    nbytes = int(num) * dtype.itemsize
    if state["device"] != _device.current():
        raise CURANDError("CURAND_STATUS_LAUNCH_FAILURE: generator created on device "
                          f"{state['device']}, current device is {_device.current()}")
    if _device.device_of_range(int(ptr), nbytes) != _device.current():
        raise CURANDError(f"CURAND_STATUS_LAUNCH_FAILURE: {nbytes} bytes at {ptr:#x} are not "
                          "in device memory of the current device")
    bits = np.random.Philox(key=state["seed"], counter=state["offset"])
    values = draw(np.random.Generator(bits), int(num))
    target = np.frombuffer((ctypes.c_char * nbytes).from_address(int(ptr)), dtype=dtype)
    target[...] = values
    state["offset"] += int(num)


def generate(generator: int, outputPtr: int, num: int) -> None:
    _fill(generator, outputPtr, num, np.uint32,
          lambda rng, n: rng.integers(0, 2 ** 32, n, dtype=np.uint32))


def generateUniform(generator: int, outputPtr: int, num: int) -> None:
    # cuRAND's uniforms exclude 0 and include 1.
    _fill(generator, outputPtr, num, np.float32,
          lambda rng, n: 1 - rng.random(n, dtype=np.float32))


def generateUniformDouble(generator: int, outputPtr: int, num: int) -> None:
    _fill(generator, outputPtr, num, np.float64, lambda rng, n: 1 - rng.random(n))


def _normal(dtype, generator, outputPtr, n, mean, stddev) -> None:
    if n % 2 == 1:
        raise ValueError("curandGenerateNormal can only generate even number of random "
                         "variables simultaneously. See issue #390 for detail.")
    _fill(generator, outputPtr, n, dtype,
          lambda rng, k: rng.standard_normal(k) * stddev + mean)


def generateNormal(generator: int, outputPtr: int, n: int, mean: float, stddev: float) -> None:
    _normal(np.float32, generator, outputPtr, n, mean, stddev)


def generateNormalDouble(generator: int, outputPtr: int, n: int, mean: float,
                         stddev: float) -> None:
    _normal(np.float64, generator, outputPtr, n, mean, stddev)

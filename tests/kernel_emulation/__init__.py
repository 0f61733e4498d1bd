"""CPU emulation of gradforge's CUDA kernels (g++ under a CUDA shim, launch grid run serially).

Used by the kernel tests and, through ``EmulatedModule``, by the simulated CuPy.
"""
from .harness import (
    EmulatedKernel,
    EmulatedModule,
    Param,
    compiler,
    discover,
    launch,
    load,
    parse_kernels,
)

__all__ = ["EmulatedKernel", "EmulatedModule", "Param", "compiler", "discover", "launch", "load",
           "parse_kernels"]

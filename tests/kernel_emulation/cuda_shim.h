// cuda_shim.h: just enough of CUDA for g++ to compile kernels/*.cu for the CPU emulator.
//
// The emulator (harness.py) force-includes this header, compiles the kernel source as C++ and
// runs a launch grid serially: emu_run (below) sets blockIdx/threadIdx (and gridDim/blockDim)
// and calls the kernel once per (block, thread) through an entry point the harness generates.
// That is exact for kernels whose threads do not communicate, gradforge's rule for kernels.
// __shared__ and __syncthreads are deliberately left undefined: a serial run could not honour
// them, so a kernel using them fails to compile here instead of being tested wrongly.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)

struct dim3 {
    unsigned int x = 1, y = 1, z = 1;
};

// The launch state. Thread-local because ctypes releases the GIL: two Python threads may run
// kernels of the same library at once.
static thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;
static const int warpSize = 32;

// Runs body() once per thread of the grid, blocks and threads in order, with the launch state
// set; the generated entry point of each kernel passes a lambda calling the kernel.
template <typename Body>
static void emu_run(const unsigned* grid, const unsigned* block, Body body) {
    gridDim = {grid[0], grid[1], grid[2]};
    blockDim = {block[0], block[1], block[2]};
    for (unsigned bz = 0; bz < grid[2]; ++bz)
        for (unsigned by = 0; by < grid[1]; ++by)
            for (unsigned bx = 0; bx < grid[0]; ++bx)
                for (unsigned tz = 0; tz < block[2]; ++tz)
                    for (unsigned ty = 0; ty < block[1]; ++ty)
                        for (unsigned tx = 0; tx < block[0]; ++tx) {
                            blockIdx = {bx, by, bz};
                            threadIdx = {tx, ty, tz};
                            body();
                        }
}

// Threads run one after another, so a read-modify-write is atomic.
template <typename T>
T atomicAdd(T* address, T value) {
    const T old = *address;
    *address = old + value;
    return old;
}

// CUDA's math API and min/max live in the global namespace on the device.
using std::exp;
using std::fabs;
using std::isinf;
using std::isnan;
using std::log;
using std::max;
using std::min;
using std::sqrt;
using std::tanh;

// cuda_shim.h: just enough of CUDA for g++ to compile kernels/*.cu for the CPU emulator.
//
// The emulator (harness.py) force-includes this header, compiles the kernel source as C++ and
// runs a launch grid serially: the generated driver sets blockIdx/threadIdx (and
// gridDim/blockDim) and calls the kernel once per (block, thread). That is exact for kernels
// whose threads do not communicate, which is the rule for gradforge's kernels.
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

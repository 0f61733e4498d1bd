// pool2d.cu: 2-D max and average pooling, forward and backward, for NCHW images.
//
// Layout: x and grad_x are (N, C, H, W); out, grad_out and indices are (N, C, OH, OW); all
// contiguous. Output (oh, ow) pools the window of rows h = oh*SH - PH + i*DH, i in [0, KH),
// and columns w = ow*SW - PW + j*DW, j in [0, KW); padding is never read. The output sizes
// (with ceil_mode) are computed by the caller (gradforge/backend/shapes.py).
//
// Forward kernels: one thread per output element, index ((n*C + c)*OH + oh)*OW + ow.
// Backward kernels: one thread per input pixel, index ((n*C + c)*H + h)*W + w, gathering the
// gradient of every window that contains it: no atomics, deterministic.
//
// scalar_t is fixed at compile time (-Dscalar_t=float or double); every size and index is
// 64-bit; all kernels use grid-stride loops over `total` work items.

// -infinity from its IEEE-754 bits: NVRTC has no <math.h> (INFINITY) and the builtins differ
// between compilers, while a union read is understood by nvcc, NVRTC and g++ alike.
__device__ __forceinline__ scalar_t negative_infinity() {
    const union {
        unsigned long long bits;
        double value;
    } inf = {0xfff0000000000000ULL};
    return (scalar_t)inf.value;
}

// Max pooling, torch semantics: indices are flat positions h*W + w in the input plane; the
// first maximum in row-major window order wins and a NaN wins (the last NaN, as in torch).
extern "C" __global__ void max_pool2d_forward(const scalar_t* __restrict__ x,
                                              scalar_t* __restrict__ out,
                                              long long* __restrict__ indices,
                                              long long total, long long H, long long W,
                                              long long OH, long long OW, long long KH,
                                              long long KW, long long SH, long long SW,
                                              long long PH, long long PW, long long DH,
                                              long long DW) {
    const scalar_t neg_inf = negative_infinity();
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (long long)blockDim.x * gridDim.x) {
        const long long ow = idx % OW;
        const long long oh = (idx / OW) % OH;
        const scalar_t* plane = x + (idx / (OW * OH)) * H * W;
        long long h0 = oh * SH - PH;
        long long w0 = ow * SW - PW;
        const long long h1 = h0 + (KH - 1) * DH + 1 < H ? h0 + (KH - 1) * DH + 1 : H;
        const long long w1 = w0 + (KW - 1) * DW + 1 < W ? w0 + (KW - 1) * DW + 1 : W;
        while (h0 < 0) h0 += DH;  // skip the top and left padding
        while (w0 < 0) w0 += DW;
        scalar_t best = neg_inf;
        long long best_index = h0 * W + w0;
        for (long long h = h0; h < h1; h += DH) {
            for (long long w = w0; w < w1; w += DW) {
                const scalar_t v = plane[h * W + w];
                if (v > best || v != v) {  // v != v: NaN
                    best = v;
                    best_index = h * W + w;
                }
            }
        }
        out[idx] = best;
        indices[idx] = best_index;
    }
}

// Each input pixel sums grad_out over the windows whose stored argmax is that pixel.
extern "C" __global__ void max_pool2d_backward(const scalar_t* __restrict__ grad_out,
                                               const long long* __restrict__ indices,
                                               scalar_t* __restrict__ grad_x,
                                               long long total, long long H, long long W,
                                               long long OH, long long OW, long long KH,
                                               long long KW, long long SH, long long SW,
                                               long long PH, long long PW, long long DH,
                                               long long DW) {
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (long long)blockDim.x * gridDim.x) {
        const long long w = idx % W;
        const long long h = (idx / W) % H;
        const long long plane = (idx / (W * H)) * OH * OW;
        scalar_t sum = 0;
        for (long long i = 0; i < KH; ++i) {
            // Output row whose window holds h at offset i: h = oh*SH - PH + i*DH.
            const long long hs = h + PH - i * DH;
            if (hs < 0) break;  // hs only decreases with i
            if (hs % SH != 0 || hs / SH >= OH) continue;
            for (long long j = 0; j < KW; ++j) {
                const long long ws = w + PW - j * DW;
                if (ws < 0) break;
                if (ws % SW != 0 || ws / SW >= OW) continue;
                const long long o = plane + (hs / SH) * OW + ws / SW;
                if (indices[o] == h * W + w) sum += grad_out[o];
            }
        }
        grad_x[idx] = sum;
    }
}

// Average pooling divisor of output (oh, ow), torch semantics: divisor_override when
// nonzero, else the window size clipped to the padded input (count_include_pad) or to the
// input itself.
__device__ __forceinline__ long long avg_pool2d_divisor(long long oh, long long ow,
                                                        long long H, long long W,
                                                        long long KH, long long KW,
                                                        long long SH, long long SW,
                                                        long long PH, long long PW,
                                                        long long count_include_pad,
                                                        long long divisor_override) {
    if (divisor_override != 0) return divisor_override;
    const long long h0 = oh * SH - PH;
    const long long w0 = ow * SW - PW;
    // Windows may run past the right padding under ceil_mode: clip to it first.
    const long long h1 = h0 + KH < H + PH ? h0 + KH : H + PH;
    const long long w1 = w0 + KW < W + PW ? w0 + KW : W + PW;
    if (count_include_pad) return (h1 - h0) * (w1 - w0);
    const long long rows = (h1 < H ? h1 : H) - (h0 > 0 ? h0 : 0);
    const long long columns = (w1 < W ? w1 : W) - (w0 > 0 ? w0 : 0);
    return rows * columns;
}

// Average pooling (no dilation, as in torch); sums in row-major window order.
extern "C" __global__ void avg_pool2d_forward(const scalar_t* __restrict__ x,
                                              scalar_t* __restrict__ out, long long total,
                                              long long H, long long W, long long OH,
                                              long long OW, long long KH, long long KW,
                                              long long SH, long long SW, long long PH,
                                              long long PW, long long count_include_pad,
                                              long long divisor_override) {
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (long long)blockDim.x * gridDim.x) {
        const long long ow = idx % OW;
        const long long oh = (idx / OW) % OH;
        const scalar_t* plane = x + (idx / (OW * OH)) * H * W;
        const long long h0 = oh * SH - PH;
        const long long w0 = ow * SW - PW;
        scalar_t sum = 0;
        for (long long h = h0 > 0 ? h0 : 0; h < h0 + KH && h < H; ++h) {
            for (long long w = w0 > 0 ? w0 : 0; w < w0 + KW && w < W; ++w) {
                sum += plane[h * W + w];
            }
        }
        out[idx] = sum / (scalar_t)avg_pool2d_divisor(oh, ow, H, W, KH, KW, SH, SW, PH, PW,
                                                      count_include_pad, divisor_override);
    }
}

// Each input pixel sums grad_out / divisor over the windows that contain it.
extern "C" __global__ void avg_pool2d_backward(const scalar_t* __restrict__ grad_out,
                                               scalar_t* __restrict__ grad_x, long long total,
                                               long long H, long long W, long long OH,
                                               long long OW, long long KH, long long KW,
                                               long long SH, long long SW, long long PH,
                                               long long PW, long long count_include_pad,
                                               long long divisor_override) {
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (long long)blockDim.x * gridDim.x) {
        const long long w = idx % W;
        const long long h = (idx / W) % H;
        const long long plane = (idx / (W * H)) * OH * OW;
        scalar_t sum = 0;
        for (long long i = 0; i < KH; ++i) {
            const long long hs = h + PH - i;  // h = oh*SH - PH + i
            if (hs < 0) break;
            if (hs % SH != 0 || hs / SH >= OH) continue;
            for (long long j = 0; j < KW; ++j) {
                const long long ws = w + PW - j;
                if (ws < 0) break;
                if (ws % SW != 0 || ws / SW >= OW) continue;
                const long long oh = hs / SH;
                const long long ow = ws / SW;
                sum += grad_out[plane + oh * OW + ow] /
                       (scalar_t)avg_pool2d_divisor(oh, ow, H, W, KH, KW, SH, SW, PH, PW,
                                                    count_include_pad, divisor_override);
            }
        }
        grad_x[idx] = sum;
    }
}

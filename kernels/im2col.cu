// im2col.cu: im2col (unfold) and its adjoint col2im (fold) for NCHW images.
//
// Layout: x is (N, C, H, W) and cols is (N, C*KH*KW, OH*OW), both contiguous. The rows of
// cols are ordered (c, i, j) as in torch.nn.functional.unfold:
//
//   cols[((((n*C + c)*KH + i)*KW + j)*OH + oh)*OW + ow] = x[((n*C + c)*H + h)*W + w]
//   with h = oh*SH - PH + i*DH and w = ow*SW - PW + j*DW (0 where (h, w) is padding).
//
// scalar_t is fixed at compile time (-Dscalar_t=float or double). Every size and index is
// 64-bit, so layers with more than 2^31 column elements do not overflow. Kernels use
// grid-stride loops: any launch geometry covers all `total` work items.

// One thread per element of cols, in cols order (writes are coalesced).
extern "C" __global__ void im2col_forward(const scalar_t* __restrict__ x,
                                          scalar_t* __restrict__ cols, long long total,
                                          long long H, long long W,
                                          long long OH, long long OW, long long KH,
                                          long long KW, long long SH, long long SW,
                                          long long PH, long long PW, long long DH,
                                          long long DW) {
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (long long)blockDim.x * gridDim.x) {
        const long long ow = idx % OW;
        const long long oh = (idx / OW) % OH;
        const long long j = (idx / (OW * OH)) % KW;
        const long long i = (idx / (OW * OH * KW)) % KH;
        const long long plane = idx / (OW * OH * KW * KH);  // n*C + c
        const long long h = oh * SH - PH + i * DH;
        const long long w = ow * SW - PW + j * DW;
        cols[idx] = (h >= 0 && h < H && w >= 0 && w < W) ? x[(plane * H + h) * W + w]
                                                         : (scalar_t)0;
    }
}

// col2im as a gather: one thread per input pixel x[n, c, h, w] sums the column entries that
// read it, kernel offsets in (i, j) order. No atomics, so the result is deterministic and
// equal to the NumPy twin's loop of strided += over the same offsets.
extern "C" __global__ void im2col_backward(const scalar_t* __restrict__ cols,
                                           scalar_t* __restrict__ x, long long total,
                                           long long H, long long W,
                                           long long OH, long long OW, long long KH,
                                           long long KW, long long SH, long long SW,
                                           long long PH, long long PW, long long DH,
                                           long long DW) {
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (long long)blockDim.x * gridDim.x) {
        const long long w = idx % W;
        const long long h = (idx / W) % H;
        const long long plane = idx / (W * H);  // n*C + c
        scalar_t sum = 0;
        for (long long i = 0; i < KH; ++i) {
            // Output row whose window reads h at offset i: h = oh*SH - PH + i*DH.
            const long long hs = h + PH - i * DH;
            if (hs < 0) break;  // hs only decreases with i
            if (hs % SH != 0 || hs / SH >= OH) continue;
            const long long oh = hs / SH;
            for (long long j = 0; j < KW; ++j) {
                const long long ws = w + PW - j * DW;
                if (ws < 0) break;
                if (ws % SW != 0 || ws / SW >= OW) continue;
                sum += cols[(((plane * KH + i) * KW + j) * OH + oh) * OW + ws / SW];
            }
        }
        x[idx] = sum;
    }
}

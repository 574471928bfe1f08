// int8 gradient compression on the GPU, the twin of kernels/cpu/grad_quantize.cpp (kernels.hpp:
// quantize_int8, dequantize_sum_int8): per-chunk scales max|v| / 127, error feedback in a float
// residual, and the in-order sum over ranks of the dequantized values. Every fp32 operation is
// rounded alone (no fused multiply-adds), so the results are the CPU's bit for bit.
#pragma once

#include "cuda/common.cuh"

namespace dsk::kernels::cuda {

// residual may be null (no error feedback). chunk <= 65536.
void quantize_int8(int8_t* q, float* scales, const float* values, float* residual, int64_t n, int chunk,
                   cudaStream_t stream);
void dequantize_sum_int8(float* out, const int8_t* q, const float* scales, int64_t n, int ranks, int chunk,
                         cudaStream_t stream);

}  // namespace dsk::kernels::cuda

// Linear layers of a few rows (a decode step of 1..kGemvMaxRows sequences) as a memory-bound
// matrix-vector product: each warp streams one weight row once, in 16-byte loads where the
// addresses allow, and dots it with every input row. cuBLASLt's tiled kernels leave most SMs idle
// on these shapes (a [1, 2048] x [2048, 2048] product is 16 output tiles), and the decode step
// is one weight read per layer, so its speed is the speed of these reads. Same contract as
// matmul_forward (matmul.cuh): out [N,OC] = inp [N,C] @ weight[OC,C]^T (+ bias), fp32 sums.
#pragma once

#include "cuda/common.cuh"

namespace dsk::kernels::cuda {

constexpr int kGemvMaxRows = 4;

template <typename T>
void gemv_forward(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC, bool accumulate,
                  cudaStream_t stream);

}  // namespace dsk::kernels::cuda

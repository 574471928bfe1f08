// Linear layers of a few rows (a decode step of 1..kGemvMaxRows sequences) as a memory-bound
// matrix-vector product: each weight row is read once (through shared memory by the copy engine,
// gemv_stream.cuh, or in 16-byte register loads, gemv_kernels.cuh, where that cannot run), and a
// warp dots it with every input row. cuBLASLt's tiled kernels leave most SMs idle
// on these shapes (a [1, 2048] x [2048, 2048] product is 16 output tiles), and the decode step
// is one weight read per layer, so its speed is the speed of these reads. Same contract as
// matmul_forward (matmul.cuh): out [N,OC] = inp [N,C] @ weight[OC,C]^T (+ bias), fp32 sums.
//
// Two fusions save launches (each costs microseconds against a few microseconds of reads):
//   gemv_parts_forward: up to kGemvMaxParts products of one input (q, k and v) in one launch;
//   gemv_swiglu_forward: silu(inp @ gate^T) * (inp @ up^T), a warp reading a row of each.
// Each output is rounded to T exactly where the unfused ops round it (the products, then the
// SwiGLU), and every dot product sums in the same order as gemv_forward's, so a fused step gives
// the same bits as the ops it replaces.
#pragma once

#include "cuda/common.cuh"

namespace dsk::kernels::cuda {

constexpr int kGemvMaxRows = 4;
constexpr int kGemvMaxParts = 3;

template <typename T>
void gemv_forward(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC, bool accumulate,
                  cudaStream_t stream);

// One product of gemv_parts_forward: out [N, OC] = inp @ weight^T (+ bias, may be null).
template <typename T>
struct GemvPart {
  T* out;
  const T* weight;
  const T* bias;
  int OC;
};

template <typename T>
void gemv_parts_forward(const GemvPart<T>* parts, int count, const T* inp, int N, int C, cudaStream_t stream);

// out [N, I] = silu(inp @ gate^T) * (inp @ up^T); gate, up [I, C].
template <typename T>
void gemv_swiglu_forward(T* out, const T* inp, const T* gate, const T* up, int N, int C, int I, cudaStream_t stream);

// gemv_parts_forward and gemv_swiglu_forward of RMSNorm(inp) * norm_weight (rmsnorm_forward's
// bits), the norm computed inside the product: false, with nothing launched, where this device or
// the alignment does not allow it (the caller then runs rmsnorm_forward and the product).
template <typename T>
bool rmsnorm_gemv_parts_forward(const GemvPart<T>* parts, int count, const T* inp, const T* norm_weight, float eps,
                                int N, int C, cudaStream_t stream);
template <typename T>
bool rmsnorm_gemv_swiglu_forward(T* out, const T* inp, const T* norm_weight, float eps, const T* gate, const T* up,
                                 int N, int C, int I, cudaStream_t stream);

}  // namespace dsk::kernels::cuda

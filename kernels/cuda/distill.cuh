// Knowledge distillation on one chunk of LM-head rows; kernels/cpu/distill.hpp is the spec (the
// teacher's top K with the rest of its mass as one bucket; the student's divergence and
// cross-entropy, with d(logits) in place). The backend's chunked LM head (cuda_ops.cpp) computes
// the logits of a chunk, calls these, and feeds the gradient straight into the two backward
// products, as it does for cross_entropy_chunk.
#pragma once

#include "cpu/distill.hpp"
#include "cuda/common.cuh"

namespace dsk::kernels::cuda {

using kernels::cpu::DistillLoss;

// The most teacher tokens a row keeps on the GPU (shared memory holds them).
constexpr int kMaxDistillTopK = 1024;

// logits [rows, V] (T, left as they are) -> ids i32 [rows, K], logprobs f32 [rows, K], rest f32
// [rows]. 1 <= K <= min(V, kMaxDistillTopK). One block per row: a radix select of the K-th
// largest logit, then the ids above it and, of those equal to it, the lowest.
template <typename T>
void teacher_top_k_chunk(int32_t* ids, float* logprobs, float* rest, const T* logits, int rows, int V, int K,
                         float temperature, cudaStream_t stream);

// In place on logits [rows, V] (T): divergences and cross_entropies f32 [rows], and with dscale
// != 0 the logits overwritten by d(dscale * sum(alpha D + (1 - alpha) CE)) / d(logits).
template <typename T>
void distill_chunk(float* divergences, float* cross_entropies, T* logits, const int32_t* targets,
                   const int32_t* teacher_ids, const float* teacher_logprobs, const float* teacher_rest, int rows,
                   int V, int K, int ignore_index, const DistillLoss& loss, float dscale, cudaStream_t stream);

}  // namespace dsk::kernels::cuda

// The next token of each row of logits on the GPU, the twin of kernels/cpu/sampling.cpp: one
// block per row finds the first index of the row's largest value (greedy), or of the largest
// logit / T plus hashed Gumbel noise (a sample of softmax(logits / T), the same as the CPU's), so
// only the token ids travel to the host.
#pragma once

#include "cuda/common.cuh"

namespace dsk::kernels::cuda {

// ids i32 [rows], logits f32 [rows, V], temperatures f32 [rows] (null: all greedy), seeds [rows].
void sample_rows(int32_t* ids, const float* logits, const float* temperatures, const uint64_t* seeds, int rows, int V,
                 cudaStream_t stream);

}  // namespace dsk::kernels::cuda

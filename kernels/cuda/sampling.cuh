// Greedy decoding's pick on the GPU, the twin of kernels/cpu/sampling.cpp: one block per row of
// logits finds the first index of the row's largest value (ties go to the lower index, as
// std::max_element does), so only the token ids travel to the host.
#pragma once

#include "cuda/common.cuh"

namespace dsk::kernels::cuda {

// ids i32 [rows], logits f32 [rows, V].
void argmax_rows(int32_t* ids, const float* logits, int rows, int V, cudaStream_t stream);

}  // namespace dsk::kernels::cuda

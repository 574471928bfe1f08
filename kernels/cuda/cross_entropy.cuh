// The softmax cross-entropy of one chunk of LM-head rows, in place: the backend's fused LM head
// computes logits a chunk of rows at a time (matmul.cuh), calls this, and feeds the gradient it
// leaves in the logits buffer straight into the two backward products, so the [N, V] logits of a
// whole batch never exist at once.
#pragma once

#include "cuda/common.cuh"

namespace dsk::kernels::cuda {

// logits [rows, V] (T). For each row r with targets[r] != ignore_index:
//   losses[r] = logsumexp(logits[r]) - logits[r, targets[r]]   (fp32, natural log)
// and rows with the ignore index get losses[r] = 0. When dscale != 0 the logits are overwritten by
//   dlogits[r, j] = dscale * (softmax(logits[r])_j - [j == targets[r]])   (0 on ignored rows),
// d(loss)/d(logits) for loss = dscale * sum of the counted rows' losses. One block per row.
template <typename T>
void cross_entropy_chunk(float* losses, T* logits, const int32_t* targets, int rows, int V, int ignore_index,
                         float dscale, cudaStream_t stream);

// total[0] = sum of values[0..n) in a fixed order (deterministic); one small launch.
void sum_floats(float* total, const float* values, int64_t n, cudaStream_t stream);

}  // namespace dsk::kernels::cuda

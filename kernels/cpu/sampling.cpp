// Greedy decoding's pick over rows of logits (kernels.hpp); the reference of kernels/cuda/sampling.cu.
#include <algorithm>

#include "kernels.hpp"

namespace dsk::kernels::cpu {

void argmax_rows(int32_t* ids, const float* logits, int rows, int V) {
  for (int r = 0; r < rows; r++) {
    const float* row = logits + int64_t(r) * V;
    ids[r] = int32_t(std::max_element(row, row + V) - row);
  }
}

}  // namespace dsk::kernels::cpu

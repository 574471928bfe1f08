// The next token of each row of logits, greedy or sampled with hashed Gumbel noise (kernels.hpp);
// the reference of kernels/cuda/sampling.cu.
#include <algorithm>
#include <cmath>

#include "kernels.hpp"
#include "sampling_noise.hpp"

namespace dsk::kernels::cpu {

void sample_rows(int32_t* ids, const float* logits, const float* temperatures, const uint64_t* seeds, int rows,
                 int V) {
  for (int r = 0; r < rows; r++) {
    const float* row = logits + int64_t(r) * V;
    const float temperature = temperatures ? temperatures[r] : 0.0f;
    if (temperature <= 0.0f) {
      ids[r] = int32_t(std::max_element(row, row + V) - row);
      continue;
    }
    float best = -INFINITY;
    int32_t pick = 0;
    for (int32_t i = 0; i < V; i++) {
      const float score = row[i] / temperature - std::log(-std::log(noise_uniform(seeds[r], i)));
      if (score > best) {
        best = score;
        pick = i;
      }
    }
    ids[r] = pick;
  }
}

}  // namespace dsk::kernels::cpu

// Softmax cross-entropy of LM-head rows, in place (HF's CrossEntropyLoss with ignore_index; the
// caller divides by the number of counted rows through dscale and the sum of losses).
#include <cmath>

#include "kernels.hpp"

namespace dsk::kernels::cpu {

void cross_entropy_rows(float* losses, float* logits, const int32_t* targets, int rows, int V, int ignore_index,
                        float dscale) {
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; r++) {
    float* z = logits + (int64_t)r * V;
    if (targets[r] == ignore_index) {
      losses[r] = 0.0f;
      if (dscale != 0.0f)
        for (int i = 0; i < V; i++) z[i] = 0.0f;
      continue;
    }
    float maxv = z[0];
    for (int i = 1; i < V; i++) maxv = z[i] > maxv ? z[i] : maxv;
    // The sum in double so that a 100k-token vocabulary adds up without losing the small terms.
    double sum = 0;
    for (int i = 0; i < V; i++) sum += std::exp(z[i] - maxv);
    const float target_logit = z[targets[r]];
    losses[r] = (float)(std::log(sum) + maxv - target_logit);
    if (dscale == 0.0f) continue;
    const float inverse = (float)(1.0 / sum);
    for (int i = 0; i < V; i++) z[i] = dscale * (std::exp(z[i] - maxv) * inverse - (i == targets[r] ? 1.0f : 0.0f));
  }
}

}  // namespace dsk::kernels::cpu

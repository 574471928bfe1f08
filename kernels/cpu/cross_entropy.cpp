// Softmax cross-entropy over the vocabulary, averaged over the positions whose target is not
// ignore_index (HF's CrossEntropyLoss(reduction="mean", ignore_index=-100)).
#include <cmath>

#include "kernels.hpp"

namespace dsk::kernels::cpu {

float cross_entropy_forward(float* probs, const float* logits, const int32_t* targets, int N, int V,
                            int ignore_index, int* count) {
  double total = 0;
  int counted = 0;
#pragma omp parallel for schedule(static) reduction(+ : total, counted)
  for (int n = 0; n < N; n++) {
    const float* z = logits + (int64_t)n * V;
    float* p = probs + (int64_t)n * V;
    float maxv = z[0];
    for (int i = 1; i < V; i++) maxv = z[i] > maxv ? z[i] : maxv;
    // One exp per logit (float, each in (0, 1]); the sum in double so that a 100k-token
    // vocabulary adds up without losing the small terms.
    double sum = 0;
    for (int i = 0; i < V; i++) {
      const float e = std::exp(z[i] - maxv);
      p[i] = e;
      sum += e;
    }
    const float inverse = (float)(1.0 / sum);
    for (int i = 0; i < V; i++) p[i] *= inverse;
    if (targets && targets[n] != ignore_index) {
      total += std::log(sum) + maxv - z[targets[n]];
      counted++;
    }
  }
  *count = counted;
  return counted ? (float)(total / counted) : 0.0f;
}

void cross_entropy_backward(float* dlogits, const float* probs, const int32_t* targets, int N, int V,
                            int ignore_index, int count, float dloss) {
  if (count == 0) return;
  float scale = dloss / count;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    if (targets[n] == ignore_index) continue;
    const float* p = probs + (int64_t)n * V;
    float* d = dlogits + (int64_t)n * V;
    for (int i = 0; i < V; i++) d[i] += scale * (p[i] - (i == targets[n] ? 1.0f : 0.0f));
  }
}

}  // namespace dsk::kernels::cpu

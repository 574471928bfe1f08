// Knowledge distillation on chunks of LM-head rows (distill.hpp is the spec): the teacher's top-K
// with the rest of its mass as one bucket, and the student's divergence + cross-entropy with its
// gradient in place. Sums in double, as cross_entropy.cpp does, so that a large vocabulary's small
// terms are not lost; the rest bucket's mass is summed over its own ids (not 1 - the top K), so
// that it stays exact when it is tiny.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "cpu/distill.hpp"
#include "cpu/distill_buckets.hpp"

namespace dsk::kernels::cpu {

namespace {

// max and sum of exp(x - max) over x = z / tau.
struct Softmax {
  double max = -INFINITY, sum = 0;
  double log_sum() const { return std::log(sum) + max; }
};
Softmax softmax_of(const float* z, int V, float temperature) {
  Softmax s;
  for (int i = 0; i < V; i++) s.max = std::max(s.max, double(z[i]) / temperature);
  for (int i = 0; i < V; i++) s.sum += std::exp(double(z[i]) / temperature - s.max);
  return s;
}

}  // namespace

void teacher_top_k_rows(int32_t* ids, float* logprobs, float* rest, const float* logits, int rows, int V, int K,
                        float temperature) {
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; r++) {
    const float* z = logits + int64_t(r) * V;
    std::vector<int32_t> order(V);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + K, order.end(),
                      [z](int32_t a, int32_t b) { return z[a] > z[b] || (z[a] == z[b] && a < b); });
    const Softmax s = softmax_of(z, V, temperature);
    double rest_mass = 0;
    for (int i = K; i < V; i++) rest_mass += std::exp(double(z[order[i]]) / temperature - s.max);
    for (int j = 0; j < K; j++) {
      ids[int64_t(r) * K + j] = order[j];
      logprobs[int64_t(r) * K + j] = float(double(z[order[j]]) / temperature - s.log_sum());
    }
    rest[r] = float(rest_mass / s.sum);
  }
}

void distill_rows(float* divergences, float* cross_entropies, float* logits, const int32_t* targets,
                  const int32_t* teacher_ids, const float* teacher_logprobs, const float* teacher_rest, int rows,
                  int V, int K, int ignore_index, const DistillLoss& loss, float dscale) {
  const double tau = loss.temperature, alpha = loss.alpha;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; r++) {
    float* z = logits + int64_t(r) * V;
    const int32_t* ids = teacher_ids + int64_t(r) * K;
    const float* teacher = teacher_logprobs + int64_t(r) * K;
    if (targets[r] == ignore_index) {
      divergences[r] = cross_entropies[r] = 0.0f;
      if (dscale != 0.0f) std::fill(z, z + V, 0.0f);
      continue;
    }
    // At temperature 1 the softened distribution is the plain one: computed once (the CPU's cost is
    // its exp()s over the vocabulary).
    const bool unsoftened = loss.temperature == 1.0f;
    const Softmax soft = softmax_of(z, V, loss.temperature), plain = unsoftened ? soft : softmax_of(z, V, 1.0f);
    const bool valid_target = targets[r] >= 0 && targets[r] < V;
    cross_entropies[r] = valid_target ? float(plain.log_sum() - z[targets[r]]) : std::numeric_limits<float>::quiet_NaN();
    std::vector<int32_t> slot(V, -1);  // which teacher bucket an id is in (-1: the rest)
    bool valid = true;
    for (int j = 0; j < K; j++) {
      if (ids[j] < 0 || ids[j] >= V) valid = false; else slot[ids[j]] = j;
    }
    if (!valid) {
      divergences[r] = std::numeric_limits<float>::quiet_NaN();
      continue;
    }
    // e_i = exp(s_i - max): the rest bucket's share of the student's mass, over its own ids.
    double rest_sum = 0;
    int rest_count = 0;
    for (int i = 0; i < V; i++)
      if (slot[i] < 0) {
        rest_sum += std::exp(z[i] / tau - soft.max);
        rest_count++;
      }
    const double log_S = std::log(soft.sum);
    double divergence = 0, w_total = 0, w_rest = 0;
    std::vector<double> w(K);
    for (int j = 0; j < K; j++) {
      const double log_Q = z[ids[j]] / tau - soft.max - log_S;
      const auto term = bucket_term<double>(loss.divergence, loss.beta, std::exp(double(teacher[j])), teacher[j],
                                            std::exp(log_Q), log_Q);
      divergence += term.divergence;
      w[j] = term.w;
      w_total += term.w;
    }
    if (rest_count > 0) {
      const double P = teacher_rest[r], Q = rest_sum / soft.sum;
      const auto term = bucket_term<double>(loss.divergence, loss.beta, P, bucket_log(P), Q, bucket_log(Q));
      divergence += term.divergence;
      w_rest = term.w;
      w_total += term.w;
    }
    divergences[r] = float(divergence);
    if (dscale == 0.0f) continue;
    // d/dz = (1 - alpha) (p - onehot) + (alpha / tau) dD/ds, times dscale.
    const double kd_scale = alpha / tau, ce_scale = 1.0 - alpha;
    for (int i = 0; i < V; i++) {
      const double e = std::exp(z[i] / tau - soft.max);
      const double q = e / soft.sum;
      const double p = unsoftened ? q : std::exp(z[i] - plain.max) / plain.sum;
      const double own = slot[i] >= 0 ? w[slot[i]] : (rest_sum > 0 ? e / rest_sum * w_rest : 0.0);
      const double dD = own - q * w_total;
      z[i] = float(dscale * (ce_scale * (p - (i == targets[r] ? 1.0 : 0.0)) + kd_scale * dD));
    }
  }
}

}  // namespace dsk::kernels::cpu

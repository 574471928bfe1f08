// DeepSeek-V3 router. scores = sigmoid(logits); selection uses scores + bias (the aux-loss-free
// balancing bias), restricted to the topk_group groups whose sum of their two best biased scores
// is highest (experts of other groups are masked to 0, as HF does); the routing weights are the
// UNBIASED scores of the selected experts, optionally renormalised to sum 1, times
// routed_scaling_factor.
#include <algorithm>
#include <numeric>

#include <cmath>

#include "kernels.hpp"

namespace dsk::kernels::cpu {

namespace {

// Indices of the k largest values (ties: lower index first), in decreasing order of value.
void top_k(const std::vector<float>& values, int k, int32_t* out) {
  std::vector<int> idx(values.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int a, int b) { return values[a] > values[b] || (values[a] == values[b] && a < b); });
  for (int i = 0; i < k; i++) out[i] = idx[i];
}

}  // namespace

void moe_route_forward(float* scores, int32_t* experts, float* weights, const float* logits, const float* bias,
                       const RouterConfig& r, int N) {
  int E = r.n_experts;
  int per_group = E / r.n_group;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    float* s = scores + (int64_t)n * E;
    std::vector<float> choice(E);
    for (int e = 0; e < E; e++) {
      s[e] = 1.0f / (1.0f + std::exp(-logits[(int64_t)n * E + e]));
      choice[e] = s[e] + bias[e];
    }
    std::vector<float> group_score(r.n_group);
    for (int g = 0; g < r.n_group; g++) {
      std::vector<float> members(choice.begin() + g * per_group, choice.begin() + (g + 1) * per_group);
      std::partial_sort(members.begin(), members.begin() + std::min(2, per_group), members.end(), std::greater<>());
      group_score[g] = members[0] + (per_group > 1 ? members[1] : 0.0f);
    }
    std::vector<int32_t> groups(r.topk_group);
    top_k(group_score, r.topk_group, groups.data());
    std::vector<float> masked(E, 0.0f);
    for (int g : groups)
      for (int e = g * per_group; e < (g + 1) * per_group; e++) masked[e] = choice[e];
    int32_t* chosen = experts + (int64_t)n * r.top_k;
    top_k(masked, r.top_k, chosen);
    float* w = weights + (int64_t)n * r.top_k;
    float sum = 0;
    for (int i = 0; i < r.top_k; i++) sum += (w[i] = s[chosen[i]]);
    float norm = r.norm_topk_prob ? 1.0f / (sum + 1e-20f) : 1.0f;
    for (int i = 0; i < r.top_k; i++) w[i] *= norm * r.routed_scaling_factor;
  }
}

// w_i = f s_i / D with D = sum_j s_j (or 1): ds_i = f (dw_i - sum_j dw_j s_j / D) / D;
// dlogit_i = ds_i s_i (1 - s_i).
void moe_route_backward(float* dlogits, const float* dweights, const float* scores, const int32_t* experts,
                        const RouterConfig& r, int N) {
  int E = r.n_experts;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float* s = scores + (int64_t)n * E;
    const int32_t* chosen = experts + (int64_t)n * r.top_k;
    const float* dw = dweights + (int64_t)n * r.top_k;
    float denom = 1.0f, weighted = 0.0f;
    if (r.norm_topk_prob) {
      float sum = 0;
      for (int i = 0; i < r.top_k; i++) sum += s[chosen[i]];
      denom = sum + 1e-20f;
      for (int i = 0; i < r.top_k; i++) weighted += dw[i] * s[chosen[i]];
      weighted /= denom;
    }
    for (int i = 0; i < r.top_k; i++) {
      float si = s[chosen[i]];
      float ds = r.routed_scaling_factor * (dw[i] - weighted) / denom;
      dlogits[(int64_t)n * E + chosen[i]] += ds * si * (1.0f - si);
    }
  }
}

}  // namespace dsk::kernels::cpu

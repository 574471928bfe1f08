// Many draws from one 8-token row (the device sampler's statistics test, on the CPU reference in
// tests/unit/serve and on the GPU in tests/gpu): rows, temperatures and seeds for sample_rows, and
// the largest gap between a token's frequency among the drawn ids and its softmax(logits / T)
// probability. C++17, for the GPU tests too.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace dsk::serve::testing {

struct SoftmaxDraws {
  int V = 8, draws = 0;
  float temperature = 0.7f;
  std::vector<float> row = {1.0f, 0.5f, 2.0f, -1.0f, 0.0f, 1.5f, -0.5f, 0.8f};
  std::vector<float> logits, temperatures;  // the row `draws` times; T each
  std::vector<uint64_t> seeds;
};

inline SoftmaxDraws softmax_draws(int draws) {
  SoftmaxDraws d;
  d.draws = draws;
  d.temperatures.assign(static_cast<size_t>(draws), d.temperature);
  for (int i = 0; i < draws; i++) {
    d.logits.insert(d.logits.end(), d.row.begin(), d.row.end());
    d.seeds.push_back(0x5eedull * uint64_t(i + 1));
  }
  return d;
}

inline double worst_frequency_error(const SoftmaxDraws& d, const std::vector<int32_t>& ids) {
  double total = 0, worst = 0;
  std::vector<double> p(static_cast<size_t>(d.V));
  for (int i = 0; i < d.V; i++) total += p[i] = std::exp(d.row[i] / d.temperature);
  std::vector<int> counts(static_cast<size_t>(d.V), 0);
  for (int32_t id : ids) counts[id]++;
  for (int i = 0; i < d.V; i++) worst = std::max(worst, std::fabs(double(counts[i]) / d.draws - p[i] / total));
  return worst;
}

}  // namespace dsk::serve::testing

// The device sampler's CPU reference (kernels/cpu/sampling.cpp, used through Ops::sample_rows):
// greedy rows give std::max_element's pick; sampled rows follow softmax(logits / T) (over 20000
// seeds of one 8-token row, each frequency within 0.015 of its probability) and repeat with their
// seed.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/kernels.hpp"

namespace cpu = dsk::kernels::cpu;

TEST_CASE("greedy rows pick the first of the largest logits") {
  const std::vector<float> logits = {0.1f, 3.0f, -1.0f, 3.0f, /* row 2 */ -2.0f, -1.0f, -3.0f, -1.5f};
  std::vector<int32_t> ids(2);
  cpu::sample_rows(ids.data(), logits.data(), nullptr, nullptr, 2, 4);
  CHECK(ids == std::vector<int32_t>{1, 1});
  const std::vector<float> temperatures = {0.0f, 0.0f};
  const std::vector<uint64_t> seeds = {1, 2};
  cpu::sample_rows(ids.data(), logits.data(), temperatures.data(), seeds.data(), 2, 4);
  CHECK(ids == std::vector<int32_t>{1, 1});
}

TEST_CASE("sampled rows follow softmax(logits / T) and repeat with their seed") {
  const int V = 8, draws = 20000;
  const float temperature = 0.7f;
  const std::vector<float> row = {1.0f, 0.5f, 2.0f, -1.0f, 0.0f, 1.5f, -0.5f, 0.8f};
  std::vector<float> logits, temperatures(size_t(draws), temperature);
  std::vector<uint64_t> seeds;
  for (int d = 0; d < draws; d++) {
    logits.insert(logits.end(), row.begin(), row.end());
    seeds.push_back(0x5eedull * uint64_t(d + 1));
  }
  std::vector<int32_t> ids(static_cast<size_t>(draws)), again(static_cast<size_t>(draws));
  cpu::sample_rows(ids.data(), logits.data(), temperatures.data(), seeds.data(), draws, V);
  cpu::sample_rows(again.data(), logits.data(), temperatures.data(), seeds.data(), draws, V);
  CHECK(ids == again);
  double total = 0;
  std::vector<double> p(V);
  for (int i = 0; i < V; i++) total += p[i] = std::exp(row[i] / temperature);
  std::vector<int> counts(V, 0);
  for (int32_t id : ids) counts[id]++;
  for (int i = 0; i < V; i++) {
    CAPTURE(i);
    CHECK(std::fabs(double(counts[i]) / draws - p[i] / total) <= 0.015);
  }
}

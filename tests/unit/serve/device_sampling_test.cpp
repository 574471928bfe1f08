// The device sampler's CPU reference (kernels/cpu/sampling.cpp, used through Ops::sample_rows):
// greedy rows give std::max_element's pick; sampled rows follow softmax(logits / T) (over 20000
// seeds of one 8-token row, each frequency within 0.015 of its probability) and repeat with their
// seed.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/kernels.hpp"
#include "softmax_draws.hpp"

using namespace dsk::serve;

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
  const testing::SoftmaxDraws d = testing::softmax_draws(20000);
  std::vector<int32_t> ids(static_cast<size_t>(d.draws)), again(static_cast<size_t>(d.draws));
  cpu::sample_rows(ids.data(), d.logits.data(), d.temperatures.data(), d.seeds.data(), d.draws, d.V);
  cpu::sample_rows(again.data(), d.logits.data(), d.temperatures.data(), d.seeds.data(), d.draws, d.V);
  CHECK(ids == again);
  CHECK(testing::worst_frequency_error(d, ids) <= 0.015);
}

// Sampling: greedy, top-k and top-p limits, and reproducibility by seed.
#include <doctest/doctest.h>

#include <random>
#include <set>
#include <vector>

#include "model/generate.hpp"

using namespace dsk::model;

TEST_CASE("sampling: greedy, top-k, top-p and seeds") {
  std::vector<float> logits{0.0f, 3.0f, 1.0f, 2.9f, -5.0f};
  std::mt19937_64 rng(1);
  CHECK(sample_token(logits, {0.0f, 0, 1.0f}, rng) == 1);

  std::set<std::uint32_t> seen;
  for (int i = 0; i < 200; ++i) seen.insert(sample_token(logits, {1.0f, 2, 1.0f}, rng));
  CHECK(seen == std::set<std::uint32_t>{1, 3});

  seen.clear();  // p(1) ~ 0.47, so top_p 0.3 keeps only the best token
  for (int i = 0; i < 50; ++i) seen.insert(sample_token(logits, {1.0f, 0, 0.3f}, rng));
  CHECK(seen == std::set<std::uint32_t>{1});

  std::mt19937_64 a(7), b(7);
  for (int i = 0; i < 20; ++i) CHECK(sample_token(logits, {2.0f, 0, 1.0f}, a) == sample_token(logits, {2.0f, 0, 1.0f}, b));
}

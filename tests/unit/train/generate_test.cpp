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

TEST_CASE("sampling: vocab_limit keeps the ids past it out, greedy and sampled") {
  // A model vocabulary padded past its tokenizer's: the padding ids must never be chosen.
  std::vector<float> logits{0.0f, 1.0f, 0.5f, 9.0f, 8.0f};
  std::mt19937_64 rng(3);
  CHECK(sample_token(logits, {0.0f, 0, 1.0f, 3}, rng) == 1);
  for (int i = 0; i < 100; ++i) CHECK(sample_token(logits, {1.0f, 0, 1.0f, 3}, rng) < 3);
  CHECK(sample_token(logits, {0.0f, 0, 1.0f, 0}, rng) == 3);   // 0: no limit
  CHECK(sample_token(logits, {0.0f, 0, 1.0f, 99}, rng) == 3);  // past the end: no limit
}

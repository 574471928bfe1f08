// Sampling the next token from logits: greedy (temperature 0), or temperature-scaled softmax
// restricted to the top_k most likely tokens and then to the smallest set whose probability
// reaches top_p (nucleus). A seeded std::mt19937_64 makes a run reproducible.
#pragma once

#include <cstdint>
#include <random>
#include <span>

namespace dsk::model {

struct SamplingSettings {
  float temperature = 1.0f;  // 0: greedy (argmax)
  int top_k = 0;             // 0: no limit
  float top_p = 1.0f;        // 1: no limit
};

// logits: (vocab,). Returns the chosen token id.
std::uint32_t sample_token(std::span<const float> logits, const SamplingSettings& settings, std::mt19937_64& rng);

}  // namespace dsk::model

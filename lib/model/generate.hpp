// Sampling the next token from logits: greedy (temperature 0), or temperature-scaled softmax
// restricted to the top_k most likely tokens and then to the smallest set whose probability
// reaches top_p (nucleus). A seeded std::mt19937_64 makes a run reproducible.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <vector>

namespace dsk::model {

struct SamplingSettings {
  float temperature = 1.0f;  // 0: greedy (argmax)
  int top_k = 0;             // 0: no limit
  float top_p = 1.0f;        // 1: no limit
  int vocab_limit = 0;       // > 0: only ids below it (a model vocabulary padded past its tokenizer's)
};

// logits: (vocab,); only the first settings.vocab_limit of them compete when it is set. Returns the
// chosen token id.
std::uint32_t sample_token(std::span<const float> logits, const SamplingSettings& settings, std::mt19937_64& rng);

class Model;

// Continues `prompt` (at least one token) by up to max_new_tokens sampled tokens, one at a time
// through the KV cache; stops early after `stop_token` (which is returned too). Returns only the
// new tokens.
std::vector<std::uint32_t> generate_tokens(Model& model, std::span<const std::int32_t> prompt, int max_new_tokens,
                                           const SamplingSettings& settings, std::mt19937_64& rng,
                                           std::optional<std::uint32_t> stop_token = std::nullopt);

}  // namespace dsk::model

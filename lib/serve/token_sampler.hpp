// Picking a request's next token from its logits: model/generate.hpp's sampling (greedy,
// temperature, top-k, top-p) with the request's own seeded generator, plus the log-probabilities
// OpenAI's API reports. Logprobs are those of the model's distribution (log-softmax of the raw
// logits, before temperature, top-k or top-p), as vLLM reports them by default.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <utility>
#include <vector>

#include "serve/engine.hpp"

namespace dsk::serve {

struct TokenChoice {
  int32_t token = -1;
  float logprob = 0;                                    // when params.logprobs or top_logprobs
  std::vector<std::pair<int32_t, float>> top_logprobs;  // params.top_logprobs of them, most likely first
};

TokenChoice choose_token(std::span<const float> logits, const SamplingParams& params, std::mt19937_64& rng);

}  // namespace dsk::serve

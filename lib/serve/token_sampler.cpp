#include "serve/token_sampler.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "model/generate.hpp"

namespace dsk::serve {

namespace {

// log(sum(exp(logits))) in double, shifted by the max for range.
double log_sum_exp(std::span<const float> logits) {
  const float top = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float x : logits) sum += std::exp(double(x) - top);
  return top + std::log(sum);
}

}  // namespace

TokenChoice choose_token(std::span<const float> logits, const SamplingParams& params, std::mt19937_64& rng) {
  const model::SamplingSettings settings{params.temperature, params.top_k, params.top_p, 0};
  TokenChoice choice;
  choice.token = int32_t(model::sample_token(logits, settings, rng));
  if (!params.logprobs && params.top_logprobs <= 0) return choice;
  const double normalizer = log_sum_exp(logits);
  choice.logprob = float(double(logits[size_t(choice.token)]) - normalizer);
  const size_t k = std::min(size_t(std::max(params.top_logprobs, 0)), logits.size());
  if (k == 0) return choice;
  std::vector<int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::partial_sort(ids.begin(), ids.begin() + std::ptrdiff_t(k), ids.end(), [&](int32_t a, int32_t b) {
    return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b);
  });
  for (size_t i = 0; i < k; i++)
    choice.top_logprobs.emplace_back(ids[i], float(double(logits[size_t(ids[i])]) - normalizer));
  return choice;
}

}  // namespace dsk::serve

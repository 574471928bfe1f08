#include "model/generate.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/error.hpp"
#include "model/model.hpp"

namespace dsk::model {

std::uint32_t sample_token(std::span<const float> logits, const SamplingSettings& settings, std::mt19937_64& rng) {
  if (settings.vocab_limit > 0 && size_t(settings.vocab_limit) < logits.size())
    logits = logits.first(size_t(settings.vocab_limit));
  auto best = std::max_element(logits.begin(), logits.end());
  if (settings.temperature <= 0.0f) return std::uint32_t(best - logits.begin());

  // Candidates by descending logit (ties by id, so the order is deterministic).
  std::vector<std::uint32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0u);
  std::size_t keep = settings.top_k > 0 ? std::min<std::size_t>(std::size_t(settings.top_k), ids.size()) : ids.size();
  auto by_logit = [&](std::uint32_t a, std::uint32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::partial_sort(ids.begin(), ids.begin() + std::ptrdiff_t(keep), ids.end(), by_logit);
  ids.resize(keep);

  std::vector<double> probs(keep);
  double total = 0.0;
  for (std::size_t i = 0; i < keep; ++i) total += probs[i] = std::exp(double(logits[ids[i]] - *best) / settings.temperature);
  // Nucleus: the shortest prefix whose probability reaches top_p.
  double cumulative = 0.0;
  std::size_t nucleus = keep;
  for (std::size_t i = 0; i < keep; ++i) {
    cumulative += probs[i] / total;
    if (cumulative >= settings.top_p) { nucleus = i + 1; break; }
  }
  std::discrete_distribution<std::size_t> pick(probs.begin(), probs.begin() + std::ptrdiff_t(nucleus));
  return ids[pick(rng)];
}

}  // namespace dsk::model

namespace dsk::model {

std::vector<std::uint32_t> generate_tokens(Model& model, std::span<const std::int32_t> prompt, int max_new_tokens,
                                           const SamplingSettings& settings, std::mt19937_64& rng,
                                           std::optional<std::uint32_t> stop_token) {
  if (prompt.empty()) throw UsageError("generation needs a prompt of at least one token");
  const int vocab = model.architecture().vocab;
  KvCache cache = model.new_kv_cache(1, int(prompt.size()) + max_new_tokens);
  std::vector<float> logits = model.forward_cached(cache, prompt.data(), 1, int(prompt.size()));
  std::vector<std::uint32_t> generated;
  for (int i = 0; i < max_new_tokens; ++i) {
    const std::uint32_t next = sample_token(std::span<const float>(logits.data(), size_t(vocab)), settings, rng);
    generated.push_back(next);
    if (stop_token && next == *stop_token) break;
    if (i + 1 == max_new_tokens) break;
    const std::int32_t input = std::int32_t(next);
    logits = model.forward_cached(cache, &input, 1, 1);
  }
  return generated;
}

}  // namespace dsk::model

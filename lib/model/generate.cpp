#include "model/generate.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace dsk::model {

std::uint32_t sample_token(std::span<const float> logits, const SamplingSettings& settings, std::mt19937_64& rng) {
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

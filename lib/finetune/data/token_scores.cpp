#include "finetune/data/token_scores.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>

#include "core/error.hpp"
#include "tensor/device.hpp"

namespace dsk::finetune {

std::vector<double> log_softmax(std::span<const float> logits) {
  double top = -std::numeric_limits<double>::infinity();
  for (float x : logits) top = std::max(top, double(x));
  double sum = 0;
  for (float x : logits) sum += std::exp(double(x) - top);
  double log_total = top + std::log(sum);
  std::vector<double> out(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) out[i] = double(logits[i]) - log_total;
  return out;
}

double predictive_entropy(std::span<const float> logits) {
  double entropy = 0;
  for (double lp : log_softmax(logits))
    if (std::isfinite(lp)) entropy -= std::exp(lp) * lp;
  return entropy;
}

double predictive_margin(std::span<const float> logits) {
  std::vector<double> lp = log_softmax(logits);
  if (lp.size() < 2) return 1.0;
  std::partial_sort(lp.begin(), lp.begin() + 2, lp.end(), std::greater<>());
  return std::exp(lp[0]) - std::exp(lp[1]);
}

namespace {

void check_vocabulary(const model::Model& model, const std::vector<int32_t>& tokens) {
  const int vocab = model.architecture().vocab;
  for (int32_t t : tokens)
    if (t < 0 || t >= vocab)
      throw DataError(str("token id ", t, " is outside the model's vocabulary of ", vocab,
                          " (is the tokenizer the model's own?)"));
}

}  // namespace

std::vector<float> sequence_logits(model::Model& model, const std::vector<int32_t>& tokens) {
  if (tokens.empty()) throw DataError("nothing to score: the example has no tokens");
  check_vocabulary(model, tokens);
  return model.logits(tokens.data(), 1, int(tokens.size()));
}

std::vector<double> continuation_logprobs(model::Model& model, const std::vector<int32_t>& prefix,
                                          const std::vector<std::vector<int32_t>>& continuations) {
  if (prefix.empty()) throw DataError("a continuation needs a non-empty prefix to be scored");
  size_t longest = 0;
  for (const auto& c : continuations) longest = std::max(longest, c.size());
  const int B = int(continuations.size());
  const int T = int(prefix.size() + longest);
  const int pad = prefix.back();  // any in-vocabulary id: positions after a sequence's end are never read
  std::vector<int32_t> batch;
  batch.reserve(size_t(B) * size_t(T));
  for (const auto& c : continuations) {
    batch.insert(batch.end(), prefix.begin(), prefix.end());
    batch.insert(batch.end(), c.begin(), c.end());
    batch.resize(batch.size() + (longest - c.size()), pad);
  }
  check_vocabulary(model, batch);
  std::vector<float> logits = model.logits(batch.data(), B, T);
  const size_t V = size_t(model.architecture().vocab);
  std::vector<double> sums(size_t(B), 0.0);
  for (int b = 0; b < B; ++b) {
    const auto& c = continuations[size_t(b)];
    for (size_t i = 0; i < c.size(); ++i) {
      size_t row = size_t(b) * size_t(T) + prefix.size() + i - 1;  // the position that predicts c[i]
      std::span<const float> r(logits.data() + row * V, V);
      sums[size_t(b)] += log_softmax(r)[size_t(c[i])];
    }
  }
  return sums;
}

ScoringModel load_scoring_model(const std::string& model_directory, const std::string& tokenizer_directory,
                                const std::string& device, const std::string& precision) {
  std::error_code unreadable;
  if (!std::filesystem::exists(std::filesystem::path(model_directory) / "config.json", unreadable))
    throw UsageError(str(model_directory, ": not a model checkpoint (no config.json)"));
  ScoringModel loaded;
  loaded.files = load_tokenizer_files(tokenizer_directory.empty() ? model_directory : tokenizer_directory);
  loaded.model = std::make_unique<model::Model>(model::Model::load_hf_checkpoint(model_directory, tensor::make_ops(device, precision)));
  return loaded;
}

}  // namespace dsk::finetune

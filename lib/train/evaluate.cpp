#include "train/evaluate.hpp"

#include <cmath>

namespace dsk::train {

EvalResult evaluate_windows(const TokenWindows& windows, int B, int T, int64_t batches,
                            const std::function<double(const Batch&)>& loss) {
  Batch batch;
  double sum = 0;
  uint64_t k = 0;
  for (int64_t i = 0; i < batches; ++i) {
    batch.fill(B, T, [&](std::vector<uint32_t>& out) { windows.window(k++, out); });
    sum += loss(batch);
  }
  EvalResult result;
  result.batches = batches;
  result.loss = sum / double(batches);
  result.perplexity = std::exp(result.loss);
  result.tokens = batches * B * T;
  return result;
}

EvalResult evaluate_windows(model::Model& model, const TokenWindows& windows, int B, int T, int64_t batches) {
  EvalResult result = evaluate_windows(windows, B, T, batches, [&](const Batch& batch) {
    return model.forward(batch.tokens.data(), batch.targets.data(), B, T);
  });
  model.reset_expert_load();
  return result;
}

}  // namespace dsk::train

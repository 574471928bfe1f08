#include "train/gradient_buckets.hpp"

#include "core/error.hpp"

namespace dsk::train {

std::vector<GradientBucket> plan_buckets(std::span<const GradientRange> stages, int64_t bucket_bytes) {
  std::vector<GradientBucket> buckets;
  int64_t total = 0;
  for (const GradientRange& stage : stages) total += stage.numel;
  for (size_t i = 0; i < stages.size(); i++) {
    const GradientRange& stage = stages[i];
    // Backward runs from the top of the buffer down: each stage ends where the one before begins.
    const int64_t expected_end = i == 0 ? total : stages[i - 1].offset;
    if (stage.offset + stage.numel != expected_end || stage.offset < 0)
      throw InternalError(str("gradient stage ", i, " [", stage.offset, ", +", stage.numel, ") does not end at ",
                              expected_end));
    const bool open = !buckets.empty() && (bucket_bytes == 0 || buckets.back().numel * 4 < bucket_bytes);
    if (!open) buckets.push_back(GradientBucket{stage.offset + stage.numel, 0, 0});
    GradientBucket& bucket = buckets.back();
    bucket.offset = stage.offset;
    bucket.numel += stage.numel;
    bucket.last_stage = int(i);
  }
  return buckets;
}

std::vector<GradientRange> gradient_stages_of(const model::Model& model, tensor::Buf model_gradients,
                                              tensor::Buf grads) {
  if (grads.data != model_gradients.data || grads.numel != model_gradients.numel)
    return {GradientRange{0, grads.numel}};
  std::vector<GradientRange> stages;
  for (const model::Model::GradientStage& stage : model.gradient_stages())
    stages.push_back(GradientRange{int64_t(stage.offset), int64_t(stage.numel)});
  return stages;
}

}  // namespace dsk::train

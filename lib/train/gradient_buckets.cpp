#include "train/gradient_buckets.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace dsk::train {

namespace {

int64_t end_of(const GradientRange& range) { return range.offset + range.numel; }

void check_ascending(std::span<const GradientRange> ranges, const char* what) {
  for (size_t i = 0; i < ranges.size(); i++)
    if (ranges[i].offset < 0 || ranges[i].numel < 0 || (i > 0 && ranges[i].offset < end_of(ranges[i - 1])))
      throw InternalError(str(what, " range ", i, " [", ranges[i].offset, ", +", ranges[i].numel,
                              ") is not after the one before"));
}

int64_t total_numel(std::span<const GradientRange> ranges) {
  int64_t total = 0;
  for (const GradientRange& range : ranges) total += range.numel;
  return total;
}

}  // namespace

std::vector<GradientRange> ranges_inside(GradientRange range, std::span<const GradientRange> kept) {
  std::vector<GradientRange> out;
  for (const GradientRange& piece : kept) {
    const int64_t begin = std::max(range.offset, piece.offset), end = std::min(end_of(range), end_of(piece));
    if (end > begin) out.push_back({begin, end - begin});
  }
  return out;
}

std::vector<GradientRange> ranges_outside(GradientRange range, std::span<const GradientRange> removed) {
  std::vector<GradientRange> out;
  int64_t at = range.offset;
  for (const GradientRange& hole : ranges_inside(range, removed)) {
    if (hole.offset > at) out.push_back({at, hole.offset - at});
    at = end_of(hole);
  }
  if (end_of(range) > at) out.push_back({at, end_of(range) - at});
  return out;
}

std::vector<GradientBucket> plan_buckets(std::span<const GradientRange> stages, int64_t bucket_bytes,
                                         std::span<const GradientRange> routed, std::span<const GradientRange> owned) {
  check_ascending(routed, "routed expert");
  check_ascending(owned, "owned expert");
  std::vector<GradientBucket> buckets;
  int64_t total = 0, shared_numel = 0;  // shared_numel: the open bucket's
  for (const GradientRange& stage : stages) total += stage.numel;
  for (size_t i = 0; i < stages.size(); i++) {
    const GradientRange& stage = stages[i];
    // Backward runs from the top of the buffer down: each stage ends where the one before begins.
    const int64_t expected_end = i == 0 ? total : stages[i - 1].offset;
    if (stage.offset + stage.numel != expected_end || stage.offset < 0)
      throw InternalError(str("gradient stage ", i, " [", stage.offset, ", +", stage.numel, ") does not end at ",
                              expected_end));
    const bool open = !buckets.empty() && (bucket_bytes == 0 || shared_numel * 4 < bucket_bytes);
    if (!open) {
      buckets.push_back(GradientBucket{stage.offset + stage.numel, 0, 0, {}, {}});
      shared_numel = 0;
    }
    GradientBucket& bucket = buckets.back();
    bucket.offset = stage.offset;
    bucket.numel += stage.numel;
    bucket.last_stage = int(i);
    shared_numel += total_numel(ranges_outside(stage, routed));
  }
  for (GradientBucket& bucket : buckets) {
    const GradientRange range{bucket.offset, bucket.numel};
    bucket.shared = ranges_outside(range, routed);
    bucket.experts = ranges_inside(range, owned);
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

#include "finetune/merge.hpp"

namespace dsk::finetune {

void fold_lora(std::span<float> base, const LoraSettings& settings, const std::vector<LoraSite>& sites,
               std::span<const float> adapter) {
  const int r = settings.rank;
  const double scale = settings.scale();
  for (const LoraSite& s : sites) {
    const float* A = adapter.data() + s.a_offset;  // [r, in]
    const float* B = adapter.data() + s.b_offset;  // [out, r]
    float* W = base.data() + s.base_weight;        // [out, in]
#pragma omp parallel for schedule(static)
    for (int o = 0; o < s.out; o++)
      for (int i = 0; i < s.in; i++) {
        double delta = 0;
        for (int k = 0; k < r; k++) delta += double(B[int64_t(o) * r + k]) * A[int64_t(k) * s.in + i];
        W[int64_t(o) * s.in + i] = float(W[int64_t(o) * s.in + i] + scale * delta);
      }
  }
}

}  // namespace dsk::finetune

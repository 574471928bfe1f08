// The error measure of the model-level GPU tests: max_i |got_i - want_i| / max_i |want_i| over
// [begin, begin + count) (all by default); infinite when `got` holds a NaN or an infinity there.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace dsk::gpu_tests {

inline double max_relative_error(const std::vector<float>& got, const std::vector<float>& want, size_t begin = 0,
                                 size_t count = ~size_t(0)) {
  count = std::min(count, want.size() - begin);
  double diff = 0, scale = 0;
  for (size_t i = begin; i < begin + count; i++) {
    if (!std::isfinite(got[i])) return INFINITY;
    diff = std::max(diff, (double)std::fabs(got[i] - want[i]));
    scale = std::max(scale, (double)std::fabs(want[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

}  // namespace dsk::gpu_tests

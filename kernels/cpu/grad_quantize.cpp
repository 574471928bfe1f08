// int8 gradient compression with per-chunk scales and error feedback (kernels.hpp:
// quantize_int8). Each chunk is read twice: once for its largest magnitude, once to quantize.
#include <algorithm>
#include <cmath>

#include "cpu/kernels.hpp"

namespace dsk::kernels::cpu {

namespace {

// The largest |v| of a chunk, or NaN when one of its values is not finite.
float chunk_absmax(const float* values, const float* residual, int64_t n) {
  float absmax = 0.0f;
  for (int64_t i = 0; i < n; i++) {
    const float v = residual ? values[i] + residual[i] : values[i];
    if (!std::isfinite(v)) return NAN;
    absmax = std::fabs(v) > absmax ? std::fabs(v) : absmax;
  }
  return absmax;
}

}  // namespace

void quantize_int8(int8_t* q, float* scales, const float* values, float* residual, int64_t n, int chunk) {
  const int64_t chunks = quantize_chunks(n, chunk);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; c++) {
    const int64_t begin = c * chunk, count = std::min<int64_t>(chunk, n - begin);
    float* r = residual ? residual + begin : nullptr;
    const float absmax = chunk_absmax(values + begin, r, count);
    const float scale = std::isfinite(absmax) ? absmax / 127.0f : NAN;
    scales[c] = scale;
    for (int64_t i = 0; i < count; i++) {
      const float v = r ? values[begin + i] + r[i] : values[begin + i];
      float level = 0.0f;
      if (scale > 0.0f) level = std::fmin(std::fmax(std::nearbyint(v / scale), -127.0f), 127.0f);
      q[begin + i] = int8_t(level);
      if (r) r[i] = std::isfinite(scale) ? v - level * scale : 0.0f;
    }
  }
}

void dequantize_sum_int8(float* out, const int8_t* q, const float* scales, int64_t n, int ranks, int chunk) {
  const int64_t chunks = quantize_chunks(n, chunk);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float sum = 0.0f;
    for (int r = 0; r < ranks; r++) sum += float(q[int64_t(r) * n + i]) * scales[int64_t(r) * chunks + i / chunk];
    out[i] = sum;
  }
}

}  // namespace dsk::kernels::cpu

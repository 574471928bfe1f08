// The residual stream's add, gradient accumulation, and strided column copies (MLA's latent split).
#include <cstring>

#include "kernels.hpp"

namespace dsk::kernels::cpu {

void add(float* out, const float* a, const float* b, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void accumulate(float* out, const float* a, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; i++) out[i] += a[i];
}

void copy_columns(float* out, int out_stride, int out_offset, const float* in, int in_stride, int in_offset, int N,
                  int width, bool accumulate) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    float* o = out + (int64_t)n * out_stride + out_offset;
    const float* x = in + (int64_t)n * in_stride + in_offset;
    if (accumulate)
      for (int j = 0; j < width; j++) o[j] += x[j];
    else
      std::memcpy(o, x, sizeof(float) * width);
  }
}

}  // namespace dsk::kernels::cpu

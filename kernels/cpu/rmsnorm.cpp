// RMSNorm (llama, qwen2, deepseek): out = weight * x * rstd, rstd = 1/sqrt(mean(x^2) + eps).
#include <cmath>

#include "kernels.hpp"

namespace dsk::kernels::cpu {

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float* x = inp + (int64_t)n * C;
    float* y = out + (int64_t)n * C;
    float sum = 0;
    for (int c = 0; c < C; c++) sum += x[c] * x[c];
    float r = 1.0f / std::sqrt(sum / C + eps);
    for (int c = 0; c < C; c++) y[c] = weight[c] * (x[c] * r);
    rstd[n] = r;
  }
}

// With xhat = x * r and g = dout * weight: dx = r * (g - xhat * mean(g * xhat)); dweight += dout * xhat.
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int N, int C) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float* x = inp + (int64_t)n * C;
    const float* dy = dout + (int64_t)n * C;
    float* dx = dinp + (int64_t)n * C;
    float r = rstd[n];
    float dot = 0;
    for (int c = 0; c < C; c++) dot += dy[c] * weight[c] * x[c] * r;
    dot /= C;
    for (int c = 0; c < C; c++) dx[c] += r * (dy[c] * weight[c] - x[c] * r * dot);
  }
  if (dweight) {
    for (int n = 0; n < N; n++) {  // serial over n: every row adds into the same dweight
      const float* x = inp + (int64_t)n * C;
      const float* dy = dout + (int64_t)n * C;
      for (int c = 0; c < C; c++) dweight[c] += dy[c] * x[c] * rstd[n];
    }
  }
}

}  // namespace dsk::kernels::cpu

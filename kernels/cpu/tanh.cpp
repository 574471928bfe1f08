// tanh, elementwise: the activation of prefix tuning's reparameterisation MLP (PEFT's PrefixEncoder).
#include <cmath>

#include "kernels.hpp"

namespace dsk::kernels::cpu {

void tanh_forward(float* out, const float* in, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; i++) out[i] = std::tanh(in[i]);
}

// d tanh(x)/dx = 1 - tanh(x)^2, from the forward's output.
void tanh_backward(float* din, const float* dout, const float* out, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; i++) din[i] += dout[i] * (1.0f - out[i] * out[i]);
}

}  // namespace dsk::kernels::cpu

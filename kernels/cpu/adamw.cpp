// AdamW (Loshchilov & Hutter: decay decoupled from the gradient) over a flat fp32 buffer, and the
// global gradient norm's pieces. lib/train drives these through the op interface.
#include <cmath>

#include "kernels.hpp"

namespace dsk::kernels::cpu {

void adamw_step(float* params, const float* grads, float* m, float* v, const uint8_t* decay_mask, int64_t n,
                const AdamWStep& s) {
  const float b1 = s.beta1, b2 = s.beta2;
  for (int64_t i = 0; i < n; ++i) {
    float g = grads[i];
    m[i] = b1 * m[i] + (1.0f - b1) * g;
    v[i] = b2 * v[i] + (1.0f - b2) * g * g;
    float m_hat = float(m[i] / s.bias_correction1);
    float v_hat = float(v[i] / s.bias_correction2);
    float decay = (!decay_mask || decay_mask[i]) ? s.weight_decay * params[i] : 0.0f;
    params[i] -= s.lr * (m_hat / (std::sqrt(v_hat) + s.eps) + decay);
  }
}

double sum_of_squares(const float* values, int64_t n) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += double(values[i]) * values[i];
  return sum;
}

void scale(float* values, float factor, int64_t n) {
  for (int64_t i = 0; i < n; ++i) values[i] *= factor;
}

}  // namespace dsk::kernels::cpu

#include "train/adamw.hpp"

#include <cmath>

#include "core/error.hpp"

namespace dsk::train {

AdamW::AdamW(std::size_t parameter_count, AdamWSettings settings)
    : settings_(settings), m_(parameter_count, 0.0f), v_(parameter_count, 0.0f) {}

void AdamW::step(std::span<float> params, std::span<const float> grads, std::span<const std::uint8_t> decay_mask,
                 float lr) {
  if (params.size() != m_.size() || grads.size() != m_.size() ||
      (!decay_mask.empty() && decay_mask.size() != m_.size()))
    throw InternalError("AdamW::step: buffer sizes differ from the optimizer's parameter count");
  ++step_;
  const double correction1 = 1.0 - std::pow(double(settings_.beta1), double(step_));
  const double correction2 = 1.0 - std::pow(double(settings_.beta2), double(step_));
  const float b1 = settings_.beta1, b2 = settings_.beta2;
  for (std::size_t i = 0; i < params.size(); ++i) {
    float g = grads[i];
    m_[i] = b1 * m_[i] + (1.0f - b1) * g;
    v_[i] = b2 * v_[i] + (1.0f - b2) * g * g;
    float m_hat = float(m_[i] / correction1);
    float v_hat = float(v_[i] / correction2);
    float decay = (decay_mask.empty() || decay_mask[i]) ? settings_.weight_decay * params[i] : 0.0f;
    params[i] -= lr * (m_hat / (std::sqrt(v_hat) + settings_.eps) + decay);
  }
}

float clip_grad_norm(std::span<float> grads, float max_norm) {
  double sum_sq = 0.0;
  for (float g : grads) sum_sq += double(g) * g;
  float norm = float(std::sqrt(sum_sq));
  if (max_norm > 0.0f && std::isfinite(norm) && norm > max_norm) {
    float scale = max_norm / norm;
    for (float& g : grads) g *= scale;
  }
  return norm;
}

}  // namespace dsk::train

#include "train/adamw.hpp"

#include <cmath>

#include "core/error.hpp"

namespace dsk::train {

using tensor::Buf;
using tensor::DType;

AdamW::AdamW(tensor::Ops& ops, std::size_t parameter_count, AdamWSettings settings,
             std::span<const std::uint8_t> decay_mask)
    : ops_(ops), settings_(settings), count_(parameter_count), arena_(ops, "optimizer state (AdamW m and v)") {
  if (!decay_mask.empty() && decay_mask.size() != parameter_count)
    throw InternalError("AdamW: the decay mask's length differs from the parameter count");
  auto carve = [&](tensor::Arena& arena) {
    m_ = arena.take(DType::f32, int64_t(count_));
    v_ = arena.take(DType::f32, int64_t(count_));
    mask_ = decay_mask.empty() ? Buf{} : arena.take(DType::u8, int64_t(count_));
  };
  carve(arena_);
  arena_.commit();
  carve(arena_);
  ops_.zero(m_);
  ops_.zero(v_);
  if (!mask_.empty()) ops_.copy_from_host(mask_, decay_mask.data());
}

void AdamW::step(Buf params, Buf working, Buf grads, float lr) {
  if (size_t(params.numel) != count_ || size_t(grads.numel) != count_)
    throw InternalError("AdamW::step: buffer sizes differ from the optimizer's parameter count");
  ++step_;
  tensor::AdamWStep s;
  s.lr = lr;
  s.beta1 = settings_.beta1;
  s.beta2 = settings_.beta2;
  s.eps = settings_.eps;
  s.weight_decay = settings_.weight_decay;
  s.bias_correction1 = 1.0 - std::pow(double(settings_.beta1), double(step_));
  s.bias_correction2 = 1.0 - std::pow(double(settings_.beta2), double(step_));
  ops_.adamw_step(params, working, grads, m_, v_, mask_, s);
}

std::vector<float> AdamW::copy_first_moment() const {
  std::vector<float> out(count_);
  ops_.copy_to_host(out.data(), m_);
  return out;
}

std::vector<float> AdamW::copy_second_moment() const {
  std::vector<float> out(count_);
  ops_.copy_to_host(out.data(), v_);
  return out;
}

void AdamW::restore(std::span<const float> m, std::span<const float> v, std::int64_t steps) {
  if (m.size() != count_ || v.size() != count_)
    throw InternalError("AdamW::restore: moments of another length than the parameters");
  ops_.copy_from_host(m_, m.data());
  ops_.copy_from_host(v_, v.data());
  step_ = steps;
}

float clip_grad_norm(tensor::Ops& ops, Buf grads, float max_norm) {
  float norm = float(std::sqrt(ops.sum_of_squares(grads)));
  if (max_norm > 0.0f && std::isfinite(norm) && norm > max_norm) ops.scale(grads, max_norm / norm);
  return norm;
}

}  // namespace dsk::train

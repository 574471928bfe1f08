#include "train/adamw.hpp"

#include <cmath>

#include "core/error.hpp"

namespace dsk::train {

using tensor::Buf;
using tensor::DType;

AdamW::AdamW(tensor::Ops& ops, std::size_t parameter_count, AdamWSettings settings,
             std::span<const std::uint8_t> decay_mask, dist::Communicator* zero)
    : ops_(ops),
      settings_(settings),
      count_(parameter_count),
      zero_(zero != nullptr && zero->size() > 1 ? zero : nullptr),
      arena_(ops, "optimizer state (AdamW m and v)") {
  if (!decay_mask.empty() && decay_mask.size() != parameter_count)
    throw InternalError("AdamW: the decay mask's length differs from the parameter count");
  layout_ = dist::ShardLayout{int64_t(count_), zero_ ? zero_->size() : 1, zero_ ? zero_->rank() : 0};
  // This rank's elements of a flat buffer: all of it, or its shard followed by the tail.
  const int64_t local = zero_ ? layout_.shard() + layout_.tail() : int64_t(count_);
  auto carve = [&](tensor::Arena& arena) {
    m_ = arena.take(DType::f32, local);
    v_ = arena.take(DType::f32, local);
    mask_ = decay_mask.empty() ? Buf{} : arena.take(DType::u8, local);
  };
  carve(arena_);
  arena_.commit();
  carve(arena_);
  ops_.zero(m_);
  ops_.zero(v_);
  if (mask_.empty()) return;
  if (!zero_) {
    ops_.copy_from_host(mask_, decay_mask.data());
    return;
  }
  std::vector<std::uint8_t> local_mask(decay_mask.begin() + layout_.begin(),
                                       decay_mask.begin() + layout_.begin() + layout_.shard());
  local_mask.insert(local_mask.end(), decay_mask.begin() + layout_.sharded(), decay_mask.end());
  ops_.copy_from_host(mask_, local_mask.data());
}

void AdamW::update(Buf params, Buf working, Buf grads, Buf m, Buf v, Buf mask, float lr) {
  tensor::AdamWStep s;
  s.lr = lr;
  s.beta1 = settings_.beta1;
  s.beta2 = settings_.beta2;
  s.eps = settings_.eps;
  s.weight_decay = settings_.weight_decay;
  s.bias_correction1 = 1.0 - std::pow(double(settings_.beta1), double(step_));
  s.bias_correction2 = 1.0 - std::pow(double(settings_.beta2), double(step_));
  ops_.adamw_step(params, working, grads, m, v, mask, s);
}

void AdamW::step(Buf params, Buf working, Buf grads, float lr) {
  if (size_t(params.numel) != count_ || size_t(grads.numel) != count_)
    throw InternalError("AdamW::step: buffer sizes differ from the optimizer's parameter count");
  ++step_;
  if (!zero_) {
    update(params, working, grads, m_, v_, mask_, lr);
    return;
  }
  const int64_t shard = layout_.shard(), begin = layout_.begin(), tail = layout_.tail(), sharded = layout_.sharded();
  auto part = [](Buf b, int64_t offset, int64_t n) { return b.empty() ? Buf{} : b.slice(offset, n); };
  if (shard > 0)
    update(params.slice(begin, shard), part(working, begin, shard), grads.slice(begin, shard), m_.slice(0, shard),
           v_.slice(0, shard), part(mask_, 0, shard), lr);
  if (tail > 0)
    update(params.slice(sharded, tail), part(working, sharded, tail), grads.slice(sharded, tail),
           m_.slice(shard, tail), v_.slice(shard, tail), part(mask_, shard, tail), lr);
  if (shard > 0) zero_->all_gather(params.slice(0, sharded), shard);
  // The other ranks' shards of the working copy follow their freshly gathered master weights.
  if (!working.empty() && working.data != params.data) ops_.cast(working, params);
}

std::vector<float> AdamW::whole(Buf moment) {
  std::vector<float> out(count_);
  const int64_t shard = layout_.shard(), tail = layout_.tail(), sharded = layout_.sharded();
  void* memory = ops_.allocate(count_ * sizeof(float), "AdamW moments gathered for a checkpoint");
  Buf full{memory, int64_t(count_), DType::f32};
  if (shard > 0) {
    ops_.copy(full.slice(layout_.begin(), shard), moment.slice(0, shard));
    zero_->all_gather(full.slice(0, sharded), shard);
  }
  if (tail > 0) ops_.copy(full.slice(sharded, tail), moment.slice(shard, tail));
  ops_.copy_to_host(out.data(), full);
  ops_.release(memory);
  return out;
}

void AdamW::gather_moments() {
  if (!zero_) return;
  gathered_m_ = whole(m_);
  gathered_v_ = whole(v_);
}

std::vector<float> AdamW::copy_first_moment() const {
  if (zero_) {
    if (gathered_m_.size() != count_) throw InternalError("AdamW: gather_moments() before copying sharded moments");
    return gathered_m_;
  }
  std::vector<float> out(count_);
  ops_.copy_to_host(out.data(), m_);
  return out;
}

std::vector<float> AdamW::copy_second_moment() const {
  if (zero_) {
    if (gathered_v_.size() != count_) throw InternalError("AdamW: gather_moments() before copying sharded moments");
    return gathered_v_;
  }
  std::vector<float> out(count_);
  ops_.copy_to_host(out.data(), v_);
  return out;
}

void AdamW::copy_own_moments(std::int64_t length, std::vector<float>& m, std::vector<float>& v) const {
  if (length > m_.numel) throw InternalError("AdamW::copy_own_moments: more than this rank keeps");
  m.resize(size_t(length));
  v.resize(size_t(length));
  if (length == 0) return;
  ops_.copy_to_host(m.data(), m_.slice(0, length));
  ops_.copy_to_host(v.data(), v_.slice(0, length));
}

void AdamW::put_local(Buf moment, std::span<const float> whole_moment) {
  if (!zero_) {
    ops_.copy_from_host(moment, whole_moment.data());
    return;
  }
  const int64_t shard = layout_.shard(), tail = layout_.tail();
  if (shard > 0) ops_.copy_from_host(moment.slice(0, shard), whole_moment.data() + layout_.begin());
  if (tail > 0) ops_.copy_from_host(moment.slice(shard, tail), whole_moment.data() + layout_.sharded());
}

void AdamW::restore(std::span<const float> m, std::span<const float> v, std::int64_t steps) {
  if (m.size() != count_ || v.size() != count_)
    throw InternalError("AdamW::restore: moments of another length than the parameters");
  put_local(m_, m);
  put_local(v_, v);
  step_ = steps;
}

float clip_grad_norm(tensor::Ops& ops, Buf grads, float max_norm) {
  float norm = float(std::sqrt(ops.sum_of_squares(grads)));
  if (max_norm > 0.0f && std::isfinite(norm) && norm > max_norm) ops.scale(grads, max_norm / norm);
  return norm;
}

}  // namespace dsk::train

#include "train/adamw.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "tensor/allocation.hpp"
#include "train/first_rank_gather.hpp"
#include "train/zero_split.hpp"

namespace dsk::train {

using tensor::Buf;
using tensor::DType;

AdamW::AdamW(tensor::Ops& ops, std::size_t parameter_count, AdamWSettings settings,
             std::span<const std::uint8_t> decay_mask, dist::Communicator* zero, const ExpertOwnership* experts)
    : ops_(ops),
      settings_(settings),
      count_(parameter_count),
      zero_(zero != nullptr && zero->size() > 1 ? zero : nullptr),
      arena_(ops, "optimizer state (AdamW m and v)") {
  if (!decay_mask.empty() && decay_mask.size() != parameter_count)
    throw InternalError("AdamW: the decay mask's length differs from the parameter count");
  layout_ = dist::ShardLayout{int64_t(count_), zero_ ? zero_->size() : 1, zero_ ? zero_->rank() : 0};
  // This rank's elements of a flat buffer: all of it, its shard followed by the tail, or all but
  // the other ranks' experts.
  if (zero_) {
    // The whole layout sharded as one piece, or under expert parallelism each data-parallel piece
    // (between two MoE layers' routed experts) on its own and this rank's own experts whole.
    data_parallel_ = experts ? complement(experts->routed(), int64_t(count_))
                             : std::vector<FlatRange>{FlatRange{0, int64_t(count_)}};
    local_ = zero_updated_ranges(data_parallel_, zero_->size(), zero_->rank());
    if (experts) {
      experts_ = experts;
      held_ = experts->local(int64_t(count_));
      local_.insert(local_.end(), experts->owned().begin(), experts->owned().end());
      std::sort(local_.begin(), local_.end(), [](const FlatRange& a, const FlatRange& b) { return a.begin < b.begin; });
    }
  } else if (experts) {
    experts_ = experts;
    held_ = local_ = experts->local(int64_t(count_));
  } else {
    local_.push_back({0, int64_t(count_)});
  }
  int64_t local = 0;
  for (const FlatRange& range : local_) local += range.length;
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
  std::vector<std::uint8_t> local_mask;
  local_mask.reserve(size_t(local));
  for (const FlatRange& range : local_)
    local_mask.insert(local_mask.end(), decay_mask.begin() + range.begin, decay_mask.begin() + range.begin + range.length);
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

int64_t AdamW::held_offset(Buf b, const FlatRange& range) const {
  if (size_t(b.numel) == count_) return range.begin;
  if (!experts_ || b.numel != total_length(held_))
    throw InternalError("AdamW::step: buffer sizes differ from the optimizer's parameter count");
  return packed_offset(held_, range.begin, range.length);
}

void AdamW::step(Buf params, Buf working, Buf grads, float lr) {
  // Under expert parallelism the weights and the gradients may each hold only what is not another
  // rank's expert, in order (Model::drop_weights, drop_gradients).
  ++step_;
  auto part = [](Buf b, int64_t offset, int64_t n) { return b.empty() ? Buf{} : b.slice(offset, n); };
  int64_t at = 0;  // in m_, v_ and mask_
  for (const FlatRange& range : local_) {
    const int64_t weight_at = held_offset(params, range);
    update(params.slice(weight_at, range.length), part(working, weight_at, range.length),
           grads.slice(held_offset(grads, range), range.length), m_.slice(at, range.length),
           v_.slice(at, range.length), part(mask_, at, range.length), lr);
    at += range.length;
  }
  if (!zero_) return;
  for (const FlatRange& piece : data_parallel_) {
    const ZeroSplit split = zero_split(piece, zero_->size(), zero_->rank());
    if (split.shard.length > 0)
      zero_->all_gather(params.slice(held_offset(params, split.sharded), split.sharded.length), split.shard.length);
  }
  // The other ranks' shards of the working copy follow their freshly gathered master weights.
  if (!working.empty() && working.data != params.data) ops_.cast(working, params);
}

std::vector<float> AdamW::whole(Buf moment) {
  std::vector<float> out(count_);
  const int64_t shard = layout_.shard(), tail = layout_.tail(), sharded = layout_.sharded();
  const tensor::Allocation gathered(ops_, DType::f32, int64_t(count_), "AdamW moments gathered for a checkpoint");
  const Buf full = gathered.buf();
  if (shard > 0) {
    ops_.copy(full.slice(layout_.begin(), shard), moment.slice(0, shard));
    zero_->all_gather(full.slice(0, sharded), shard);
  }
  if (tail > 0) ops_.copy(full.slice(sharded, tail), moment.slice(shard, tail));
  ops_.copy_to_host(out.data(), full);
  return out;
}

void AdamW::gather_moments() {
  if (!sharded()) return;
  gathered_m_ = whole(m_);
  gathered_v_ = whole(v_);
}

void AdamW::release_gathered_moments() {
  std::vector<float>().swap(gathered_m_);
  std::vector<float>().swap(gathered_v_);
}

// Rank 0's host copy of a moment, its own ranges filled (zeros elsewhere).
std::vector<float> AdamW::own_ranges_on_host(Buf moment) const {
  std::vector<float> out(count_, 0.0f);
  int64_t at = 0;
  for (const FlatRange& range : local_) {
    ops_.copy_to_host(out.data() + range.begin, moment.slice(at, range.length));
    at += range.length;
  }
  return out;
}

void AdamW::gather_state_to_first_rank(Buf params, std::vector<float>& master, std::vector<float>& m,
                                       std::vector<float>& v) const {
  if (!experts_) throw InternalError("AdamW::gather_state_to_first_rank without expert parallelism");
  dist::Communicator& comm = experts_->communicator();
  const bool first = comm.rank() == 0;
  if (first != (master.size() == count_))
    throw InternalError("AdamW::gather_state_to_first_rank: rank 0 alone passes a copy of the parameters");
  GatherSteps steps = experts_->first_group_experts();
  const std::vector<FlatRange> all{FlatRange{0, int64_t(count_)}};
  gather_to_first_rank(comm, ops_, steps, params, size_t(params.numel) == count_ ? all : held_, master);
  // With ZeRO-1 the other ranks' shards of each data-parallel piece too (the tails rank 0 holds).
  if (zero_) {
    for (const FlatRange& piece : data_parallel_) {
      std::vector<std::vector<FlatRange>>& step = steps.emplace_back(size_t(comm.size()));
      for (int q = 1; q < zero_->size(); ++q) {
        const FlatRange shard = zero_split(piece, zero_->size(), q).shard;
        if (shard.length > 0) step[size_t(q)].push_back(shard);
      }
    }
  }
  m.clear();
  v.clear();
  if (first) m = own_ranges_on_host(m_);
  gather_to_first_rank(comm, ops_, steps, m_, local_, m);
  if (first) v = own_ranges_on_host(v_);
  gather_to_first_rank(comm, ops_, steps, v_, local_, v);
}

std::int64_t AdamW::state_bytes() const {
  return (m_.numel + v_.numel) * int64_t(sizeof(float)) + mask_.numel;
}

std::vector<float> AdamW::copy_first_moment() const {
  if (experts_) throw InternalError("AdamW: an expert-parallel optimizer's moments go to rank 0 alone");
  if (zero_) {
    if (gathered_m_.size() != count_) throw InternalError("AdamW: gather_moments() before copying sharded moments");
    return gathered_m_;
  }
  std::vector<float> out(count_);
  ops_.copy_to_host(out.data(), m_);
  return out;
}

std::vector<float> AdamW::copy_second_moment() const {
  if (experts_) throw InternalError("AdamW: an expert-parallel optimizer's moments go to rank 0 alone");
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

void AdamW::put_local(Buf moment, std::span<const float> packed, std::span<const FlatRange> given) {
  int64_t at = 0;
  for (const FlatRange& range : local_) {
    ops_.copy_from_host(moment.slice(at, range.length), packed.data() + packed_offset(given, range.begin, range.length));
    at += range.length;
  }
}

void AdamW::restore(std::span<const float> m, std::span<const float> v, std::int64_t steps,
                    std::span<const FlatRange> given) {
  const std::vector<FlatRange> all{FlatRange{0, int64_t(count_)}};
  if (given.empty()) given = all;
  if (m.size() != size_t(total_length(given)) || v.size() != m.size())
    throw InternalError("AdamW::restore: moments of another length than the ranges they hold");
  put_local(m_, m, given);
  put_local(v_, v, given);
  step_ = steps;
}

float clip_grad_norm(tensor::Ops& ops, Buf grads, float max_norm) {
  float norm = float(std::sqrt(ops.sum_of_squares(grads)));
  if (max_norm > 0.0f && std::isfinite(norm) && norm > max_norm) ops.scale(grads, max_norm / norm);
  return norm;
}

}  // namespace dsk::train

#include "train/gradient_sync.hpp"

#include <cmath>

#include "core/error.hpp"

namespace dsk::train {

using tensor::Buf;
using tensor::DType;

GradientSync::GradientSync(dist::Communicator& comm, tensor::Ops& ops, int64_t count, bool zero1, DType wire)
    : comm_(comm),
      ops_(ops),
      layout_{count, comm.size(), comm.rank()},
      zero1_(zero1 && comm.size() > 1),
      arena_(ops, "bf16 gradients for the all-reduce") {
  if (wire == DType::f32 || comm.size() == 1) return;
  auto carve = [&](tensor::Arena& arena) { wire_ = arena.take(DType::bf16, count); };
  carve(arena_);
  arena_.commit();
  carve(arena_);
}

void GradientSync::reduce(Buf grads) {
  Buf sent = grads;
  if (!wire_.empty()) {
    ops_.cast(wire_, grads);
    sent = wire_;
  }
  if (!zero1_) {
    comm_.all_reduce_sum(sent);
    if (!wire_.empty()) ops_.cast(grads, wire_);
    return;
  }
  const int64_t shard = layout_.shard(), begin = layout_.begin(), sharded = layout_.sharded(), tail = layout_.tail();
  if (shard > 0) comm_.reduce_scatter_sum(sent.slice(0, sharded), shard);
  if (tail > 0) comm_.all_reduce_sum(sent.slice(sharded, tail));
  if (wire_.empty()) return;
  if (shard > 0) ops_.cast(grads.slice(begin, shard), wire_.slice(begin, shard));
  if (tail > 0) ops_.cast(grads.slice(sharded, tail), wire_.slice(sharded, tail));
}

// Of what this rank holds after reduce(): everything, or its shard plus the tail (the tail is the
// same on every rank, so only rank 0 counts it).
double GradientSync::squared_norm(Buf grads) {
  if (!zero1_) return ops_.sum_of_squares(grads);
  const int64_t shard = layout_.shard(), tail = layout_.tail();
  double local = shard > 0 ? ops_.sum_of_squares(grads.slice(layout_.begin(), shard)) : 0.0;
  double tail_squares = tail > 0 ? ops_.sum_of_squares(grads.slice(layout_.sharded(), tail)) : 0.0;
  return comm_.all_reduce_sum(local) + tail_squares;
}

void GradientSync::scale(Buf grads, float factor) {
  if (!zero1_) {
    ops_.scale(grads, factor);
    return;
  }
  if (layout_.shard() > 0) ops_.scale(grads.slice(layout_.begin(), layout_.shard()), factor);
  if (layout_.tail() > 0) ops_.scale(grads.slice(layout_.sharded(), layout_.tail()), factor);
}

double GradientSync::reduce_and_clip(Buf grads, float max_norm) {
  if (comm_.size() > 1) reduce(grads);
  // As clip_grad_norm (adamw.hpp) computes it, so that one rank gives the same bits as before.
  const float norm = float(std::sqrt(squared_norm(grads)));
  if (max_norm > 0.0f && std::isfinite(norm) && norm > max_norm) scale(grads, max_norm / norm);
  return norm;
}

DType parse_grad_dtype(const std::string& name, const tensor::Ops& ops) {
  if (name == "auto") return ops.activation_dtype();
  if (name == "fp32") return DType::f32;
  if (name == "bf16") {
    if (ops.activation_dtype() != DType::bf16)
      throw UsageError("dist.grad_dtype bf16 needs the CUDA backend in bf16 (the CPU backend and precision fp32 "
                       "send fp32 gradients)");
    return DType::bf16;
  }
  throw UsageError(str("dist.grad_dtype \"", name, "\" is not one of auto, fp32, bf16"));
}

}  // namespace dsk::train

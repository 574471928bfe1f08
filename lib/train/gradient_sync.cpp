#include "train/gradient_sync.hpp"

#include <cmath>

#include "core/error.hpp"

namespace dsk::train {

using tensor::Buf;
using tensor::DType;

GradientSync::GradientSync(dist::Communicator& comm, tensor::Ops& ops, int64_t count, std::vector<GradientRange> stages,
                           int64_t bucket_bytes, bool zero1, GradientWire wire)
    : comm_(comm),
      ops_(ops),
      layout_{count, comm.size(), comm.rank()},
      zero1_(zero1 && comm.size() > 1 && !wire.int8),
      buckets_(plan_buckets(stages, bucket_bytes)),
      pending_(buckets_.size()),
      started_(buckets_.size(), false),
      arena_(ops, "bf16 gradients for the all-reduce") {
  if (comm.size() == 1) return;
  if (wire.int8) {
    int8_.emplace(comm, ops, buckets_, count, wire.error_feedback);
    return;
  }
  if (wire.dtype == DType::f32) return;
  auto carve = [&](tensor::Arena& arena) { wire_ = arena.take(DType::bf16, count); };
  carve(arena_);
  arena_.commit();
  carve(arena_);
}

GradientSync::~GradientSync() {
  // A step abandoned by an exception: its collectives still have to finish before the buffers go.
  for (auto& pending : pending_)
    if (pending) pending->wait();
}

bool GradientSync::overlaps() const { return comm_.size() > 1 && !zero1_ && buckets_.size() > 1; }

void GradientSync::stage_done(int stage, Buf grads) {
  for (size_t b = 0; b < buckets_.size(); b++) {
    if (buckets_[b].last_stage == stage && !started_[b]) start_bucket(int(b), grads);
    // MPI moves non-blocking collectives on only inside its calls: give the started ones a turn.
    if (pending_[b]) pending_[b]->progress();
  }
  if (int8_) int8_->progress();
}

void GradientSync::start_bucket(int b, Buf grads) {
  const GradientBucket& bucket = buckets_[size_t(b)];
  started_[size_t(b)] = true;
  if (int8_) {
    int8_->start(b, grads);
    return;
  }
  Buf sent = grads.slice(bucket.offset, bucket.numel);
  if (!wire_.empty()) {
    Buf wire = wire_.slice(bucket.offset, bucket.numel);
    ops_.cast(wire, sent);
    sent = wire;
  }
  pending_[size_t(b)] = comm_.start_all_reduce_sum(sent);
}

void GradientSync::finish_bucket(int b, Buf grads) {
  const GradientBucket& bucket = buckets_[size_t(b)];
  started_[size_t(b)] = false;
  if (int8_) {
    int8_->finish(b, grads);
    return;
  }
  pending_[size_t(b)]->wait();
  pending_[size_t(b)].reset();
  if (!wire_.empty()) ops_.cast(grads.slice(bucket.offset, bucket.numel), wire_.slice(bucket.offset, bucket.numel));
}

// ZeRO-1: this rank's shard and the tail, summed over the ranks.
void GradientSync::reduce_sharded(Buf grads) {
  Buf sent = grads;
  if (!wire_.empty()) {
    ops_.cast(wire_, grads);
    sent = wire_;
  }
  const int64_t shard = layout_.shard(), begin = layout_.begin(), sharded = layout_.sharded(), tail = layout_.tail();
  if (shard > 0) comm_.reduce_scatter_sum(sent.slice(0, sharded), shard);
  if (tail > 0) comm_.all_reduce_sum(sent.slice(sharded, tail));
  if (wire_.empty()) return;
  if (shard > 0) ops_.cast(grads.slice(begin, shard), wire_.slice(begin, shard));
  if (tail > 0) ops_.cast(grads.slice(sharded, tail), wire_.slice(sharded, tail));
}

// Of what this rank holds after the reduction: everything (int8 too: every rank then holds the
// same whole sum), or with ZeRO-1 its shard plus the tail (the tail is the same on every rank, so
// only rank 0 counts it).
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
  if (comm_.size() > 1 && zero1_) {
    reduce_sharded(grads);
  } else if (comm_.size() > 1) {
    // In bucket order, as every rank starts them; what no stage_done() started starts now.
    for (size_t b = 0; b < buckets_.size(); b++)
      if (!started_[b]) start_bucket(int(b), grads);
    for (size_t b = 0; b < buckets_.size(); b++) finish_bucket(int(b), grads);
  }
  // As clip_grad_norm (adamw.hpp) computes it, so that one rank gives the same bits as before.
  const float norm = float(std::sqrt(squared_norm(grads)));
  if (max_norm > 0.0f && std::isfinite(norm) && norm > max_norm) scale(grads, max_norm / norm);
  return norm;
}

GradientWire parse_gradient_wire(const std::string& name, bool error_feedback, const tensor::Ops& ops) {
  GradientWire wire;
  wire.error_feedback = error_feedback;
  if (name == "auto") {
    wire.dtype = ops.activation_dtype();
  } else if (name == "fp32") {
    wire.dtype = DType::f32;
  } else if (name == "bf16") {
    if (ops.activation_dtype() != DType::bf16)
      throw UsageError("dist.grad_dtype bf16 needs the CUDA backend in bf16 (the CPU backend and precision fp32 "
                       "send fp32 gradients; int8 compresses on any backend)");
    wire.dtype = DType::bf16;
  } else if (name == "int8") {
    wire.int8 = true;
  } else {
    throw UsageError(str("dist.grad_dtype \"", name, "\" is not one of auto, fp32, bf16, int8"));
  }
  return wire;
}

}  // namespace dsk::train

// The gradient half of data parallelism: after every rank has run its share of a step's
// micro-batches, sum the ranks' gradients (each already carries the 1/grad_accum of the global
// batch, so the sum is the global mean) and clip by the global norm.
//
// Without ZeRO the gradients are all-reduced in buckets (gradient_buckets.hpp): during the
// backward of the rank's last micro-batch, the model calls stage_done() as each layer's gradients
// become final, and a bucket's all-reduce starts (non-blocking: MPI_Iallreduce; NCCL on its own
// stream) as soon as its last stage is done, overlapping the rest of the backward;
// reduce_and_clip() starts what has not started and waits for all. The sums are those of one
// all-reduce of the whole buffer: each element is summed over the same ranks by the same library,
// and with two ranks (a + b == b + a) the bits are the same for any bucketing.
//
// With ZeRO-1 the same buckets are reduce-scattered instead, started and overlapped the same way,
// so each rank gets the summed gradients of only its shard (and of the small tail), which is all
// its optimizer updates (adamw.hpp); the norm is then summed from the shards. The shards are of
// the whole buffer (zero_split.hpp), not of a bucket: a bucket's reduce-scatter gives each rank
// the part of the bucket within its shard (blocks of unequal length: MPI_Ireduce_scatter; NCCL
// grouped reduces, or its reduce-scatter where they are equal) and all-reduces the part of the
// tail in it. With two ranks the sums are again those of one reduce-scatter, bit for bit.
//
// Under expert parallelism (ExpertGradientSplit), the routed experts stay out of the all-ranks
// buckets (with ZeRO-1 the buffer between two MoE layers' experts is then sharded piece by piece,
// as AdamW shards their state, and a bucket's reduce-scatter is one per piece it meets): each
// rank sums the gradients of the experts it holds only over the ranks that hold the same experts
// (a sub-communicator: one rank per expert-parallel group; none when there is one group), and
// leaves the other experts' gradients alone (its AdamW does not update them:
// expert_ownership.hpp). The norm adds the experts' squares once per group (the pieces'
// sums of squares come back from the device at once: Ops::sums_of_squares). int8 splits a bucket
// the same way: its shared pieces compressed and all-gathered over all ranks, this rank's experts
// over their replicas (gradient_compression.hpp).
//
// On the wire (dist.grad_dtype): f32; bf16 (halves the bytes; the CUDA backend's activation
// dtype): rounded once before the sum and summed in bf16 by NCCL; int8 (a quarter; any backend):
// per-chunk quantization with error feedback, all-gathered and summed locally
// (gradient_compression.hpp); with ZeRO-1 too, since every rank then holds the whole sum.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dist/communicator.hpp"
#include "tensor/arena.hpp"
#include "tensor/ops.hpp"
#include "train/flat_range.hpp"
#include "train/gradient_buckets.hpp"
#include "train/gradient_compression.hpp"
#include "train/zero_split.hpp"

namespace dsk::train {

// The gradients between ranks: their dtype on the wire (f32 or bf16; int8 when compressed).
struct GradientWire {
  tensor::DType dtype = tensor::DType::f32;
  bool int8 = false;
  bool error_feedback = true;  // int8 only
};

// The routed experts' ranges of the gradient buffer (ascending) and which of them this rank
// holds, with the communicator of the ranks that hold the same ones; empty: no expert parallelism.
struct ExpertGradientSplit {
  std::vector<GradientRange> routed, owned;
  dist::Communicator* replicas = nullptr;
};

class GradientSync {
 public:
  // count: gradient elements; stages: the backward's (gradient_stages_of); bucket_bytes: 0 for
  // one bucket; zero1: reduce-scatter instead of all-reduce; experts: see above.
  GradientSync(dist::Communicator& comm, tensor::Ops& ops, int64_t count, std::vector<GradientRange> stages,
               int64_t bucket_bytes, bool zero1, GradientWire wire, const ExpertGradientSplit& experts = {});
  ~GradientSync();

  // Whether stage_done() starts reductions during the backward (several ranks, several
  // buckets): then the caller hooks it into the backward.
  bool overlaps() const;
  // The backward has finished `stage` of grads: starts the bucket it completes, if any.
  void stage_done(int stage, tensor::Buf grads);

  // Sums over ranks (finishing what stage_done started), then clips to max_norm (> 0) by the
  // global norm; returns the norm before clipping (the same on every rank).
  double reduce_and_clip(tensor::Buf grads, float max_norm);

  const std::vector<GradientBucket>& buckets() const { return buckets_; }
  // This rank's int8 error-feedback residual (f32 [count]), which checkpoints carry; empty
  // without int8 error feedback or with one rank.
  tensor::Buf error_feedback_residual() const { return int8_ ? int8_->residual() : tensor::Buf{}; }
  // What a step sends, for the log: "gradient sync: N bytes a step all-reduced over R ranks in B
  // buckets" (ZeRO-1: "reduce-scattered over R ranks (ZeRO-1) in B buckets", under expert
  // parallelism "(ZeRO-1, P pieces)"), under expert parallelism then "; routed experts: this
  // rank's M bytes summed over K ranks, the others' left out"; empty with one rank.
  std::string describe() const;

 private:
  void start_bucket(int b, tensor::Buf grads);
  void finish_bucket(int b, tensor::Buf grads);
  double squared_norm(tensor::Buf grads);
  void scale(tensor::Buf grads, float factor);

  dist::Communicator& comm_;
  tensor::Ops& ops_;
  bool zero1_;  // reduce-scatters in place of all-reduces (not with int8)
  tensor::DType wire_dtype_;
  bool int8_wire_;
  dist::Communicator* replicas_ = nullptr;  // expert parallelism: the experts' ranks; else null
  std::vector<GradientBucket> buckets_;
  // ZeRO-1: the pieces sharded each on its own (zero_split.hpp): the whole buffer, or with expert
  // parallelism the buffer less the routed experts; and per bucket its shared pieces' parts of them.
  std::vector<FlatRange> data_parallel_;
  std::vector<std::vector<ZeroPart>> zero_parts_;
  std::vector<GradientRange> owned_;  // expert parallelism: this rank's experts (summed over replicas_)
  std::vector<std::vector<std::unique_ptr<dist::PendingCollective>>> pending_;  // per bucket, while under way
  std::vector<bool> started_;
  tensor::Arena arena_;
  tensor::Buf wire_;  // bf16 copy of the gradients (empty when the wire is f32 or int8)
  std::optional<Int8GradientCompression> int8_;
};

// dist.grad_dtype and dist.error_feedback: "auto" -> the backend's activation dtype; "fp32",
// "bf16" as asked, UsageError when the backend cannot (bf16 on the CPU backend); "int8" on any.
GradientWire parse_gradient_wire(const std::string& name, bool error_feedback, const tensor::Ops& ops);

}  // namespace dsk::train

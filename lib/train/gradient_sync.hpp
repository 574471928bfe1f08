// The gradient half of data parallelism: after every rank has run its share of a step's
// micro-batches, sum the ranks' gradients (each already carries the 1/grad_accum of the global
// batch, so the sum is the global mean) and clip by the global norm. Without ZeRO it is one
// all-reduce of the whole buffer; with ZeRO-1 a reduce-scatter, so each rank gets the summed
// gradients of only its shard (and of the small tail), which is all its optimizer updates
// (adamw.hpp); the norm is then summed from the shards.
//
// On the wire the gradients are f32 or bf16 (dist.grad_dtype; bf16 halves the bytes sent and is
// what the CUDA backend's activations are, fp32 the CPU backend's only choice): bf16 gradients
// are rounded once before the sum and summed in bf16 by NCCL.
#pragma once

#include <cstdint>
#include <string>

#include "dist/communicator.hpp"
#include "tensor/arena.hpp"
#include "tensor/ops.hpp"

namespace dsk::train {

class GradientSync {
 public:
  // count: gradient elements; zero1: reduce-scatter instead of all-reduce; wire: f32 or bf16
  // (bf16 only where it is the backend's activation dtype).
  GradientSync(dist::Communicator& comm, tensor::Ops& ops, int64_t count, bool zero1, tensor::DType wire);

  // Sums over ranks, then clips to max_norm (> 0) by the global norm; returns the norm before
  // clipping (the same on every rank).
  double reduce_and_clip(tensor::Buf grads, float max_norm);

 private:
  void reduce(tensor::Buf grads);
  double squared_norm(tensor::Buf grads);
  void scale(tensor::Buf grads, float factor);

  dist::Communicator& comm_;
  tensor::Ops& ops_;
  dist::ShardLayout layout_;
  bool zero1_;
  tensor::Arena arena_;
  tensor::Buf wire_;  // bf16 copy of the gradients (empty when the wire is f32)
};

// "auto" -> the backend's activation dtype; "fp32" / "bf16" as asked, UsageError when the backend
// cannot (bf16 on the CPU backend).
tensor::DType parse_grad_dtype(const std::string& name, const tensor::Ops& ops);

}  // namespace dsk::train

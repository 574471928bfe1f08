// Which gradients travel together between data-parallel ranks. The backward finishes the
// gradients in stages (model.hpp: Model::gradient_stages: the head, the layers from the last down,
// the embedding), each a contiguous range of the flat gradient buffer, each adjacent to the one
// before. Consecutive stages are grouped into buckets of about dist.bucket_mb MiB of fp32
// gradients (PyTorch DDP's bucket_cap_mb), so that each bucket's reduction starts as soon as its
// last stage is done and runs while the backward goes on below it; a bucket is still one range.
//
// Under expert parallelism (expert_ownership.hpp) the routed experts' ranges stay out of the
// all-ranks reduction: a bucket's `shared` pieces are its range less every routed expert, and its
// `experts` pieces are the experts this rank holds, summed only over the ranks that hold them too.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/model.hpp"
#include "tensor/ops.hpp"

namespace dsk::train {

struct GradientRange {
  int64_t offset = 0, numel = 0;  // in floats
};

struct GradientBucket {
  int64_t offset = 0, numel = 0;  // in floats, into the gradient buffer
  int last_stage = 0;             // its reduction may start once the backward has finished this stage
  // The range less the routed experts (all-reduced over all ranks), and this rank's experts in it
  // (summed over the ranks that hold the same experts); both in ascending order.
  std::vector<GradientRange> shared, experts;
};

// Stages in the order backward finishes them; a bucket takes stages until its shared pieces hold
// at least bucket_bytes (4 bytes a gradient), so a large stage may make a bucket alone (a stage is
// never split); bucket_bytes 0: one bucket of all. routed: the ranges of every routed expert (none
// without expert parallelism: shared is then the whole range), owned: those of this rank's
// experts (within routed), both ascending and disjoint. InternalError when the stages do not tile
// [0, total) as adjacent ranges in that order, or the expert ranges are out of order.
std::vector<GradientBucket> plan_buckets(std::span<const GradientRange> stages, int64_t bucket_bytes,
                                         std::span<const GradientRange> routed = {},
                                         std::span<const GradientRange> owned = {});

// [offset, offset + numel) less `removed` (ascending, disjoint), and its overlap with `kept`.
std::vector<GradientRange> ranges_outside(GradientRange range, std::span<const GradientRange> removed);
std::vector<GradientRange> ranges_inside(GradientRange range, std::span<const GradientRange> kept);

// The backward stages of `grads`: the model's when grads is its gradient buffer (dsk-train,
// dsk-distill), else one stage of all (adapters: their gradients are final only at the end).
std::vector<GradientRange> gradient_stages_of(const model::Model& model, tensor::Buf model_gradients,
                                              tensor::Buf grads);

}  // namespace dsk::train

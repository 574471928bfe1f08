// Which gradients travel together between data-parallel ranks. The backward finishes the
// gradients in stages (model.hpp: Model::gradient_stages: the head, the layers from the last down,
// the embedding), each a contiguous range of the flat gradient buffer, each adjacent to the one
// before. Consecutive stages are grouped into buckets of about dist.bucket_mb MiB of fp32
// gradients (PyTorch DDP's bucket_cap_mb), so that each bucket's reduction starts as soon as its
// last stage is done and runs while the backward goes on below it; a bucket is still one range.
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
};

// Stages in the order backward finishes them; a bucket takes stages until it holds at least
// bucket_bytes (4 bytes a gradient), so a large stage may make a bucket alone (a stage is never
// split); bucket_bytes 0: one bucket of all. InternalError when the
// stages do not tile [0, total) as adjacent ranges in that order.
std::vector<GradientBucket> plan_buckets(std::span<const GradientRange> stages, int64_t bucket_bytes);

// The backward stages of `grads`: the model's when grads is its gradient buffer (dsk-train,
// dsk-distill), else one stage of all (adapters: their gradients are final only at the end).
std::vector<GradientRange> gradient_stages_of(const model::Model& model, tensor::Buf model_gradients,
                                              tensor::Buf grads);

}  // namespace dsk::train

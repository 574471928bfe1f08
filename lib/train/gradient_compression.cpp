#include "train/gradient_compression.hpp"

#include "core/error.hpp"
#include "cpu/kernels.hpp"

namespace dsk::train {

using tensor::Buf;
using tensor::DType;

Int8GradientCompression::Int8GradientCompression(dist::Communicator& comm, tensor::Ops& ops,
                                                 std::span<const GradientBucket> buckets, int64_t count,
                                                 bool error_feedback)
    : comm_(comm),
      ops_(ops),
      buckets_(buckets.begin(), buckets.end()),
      arena_(ops, "int8 gradient compression"),
      buffers_(buckets.size()) {
  const int ranks = comm.size();
  auto carve = [&](tensor::Arena& arena) {
    residual_ = error_feedback ? arena.take(DType::f32, count) : Buf{};
    for (size_t b = 0; b < buckets_.size(); b++) {
      const int64_t chunks = kernels::cpu::quantize_chunks(buckets_[b].numel, kInt8Chunk);
      buffers_[b].levels = arena.take(DType::u8, int64_t(ranks) * buckets_[b].numel);
      buffers_[b].scales = arena.take(DType::f32, int64_t(ranks) * chunks);
    }
  };
  carve(arena_);
  arena_.commit();
  carve(arena_);
  if (!residual_.empty()) ops_.zero(residual_);
}

void Int8GradientCompression::start(int b, Buf grads) {
  const GradientBucket& bucket = buckets_[size_t(b)];
  BucketBuffers& buffers = buffers_[size_t(b)];
  const int64_t chunks = buffers.scales.numel / comm_.size();
  const int rank = comm_.rank();
  // Rank r's own row is where an in-place all-gather takes its input from.
  ops_.quantize_int8(buffers.levels.slice(rank * bucket.numel, bucket.numel),
                     buffers.scales.slice(rank * chunks, chunks), grads.slice(bucket.offset, bucket.numel),
                     residual_.empty() ? Buf{} : residual_.slice(bucket.offset, bucket.numel), kInt8Chunk);
  buffers.levels_gather = comm_.start_all_gather(buffers.levels, bucket.numel);
  buffers.scales_gather = comm_.start_all_gather(buffers.scales, chunks);
}

void Int8GradientCompression::finish(int b, Buf grads) {
  const GradientBucket& bucket = buckets_[size_t(b)];
  BucketBuffers& buffers = buffers_[size_t(b)];
  if (!buffers.levels_gather) throw InternalError(str("int8 bucket ", b, " finished before it was started"));
  buffers.levels_gather->wait();
  buffers.scales_gather->wait();
  buffers.levels_gather.reset();
  buffers.scales_gather.reset();
  ops_.dequantize_sum_int8(grads.slice(bucket.offset, bucket.numel), buffers.levels, buffers.scales, comm_.size(),
                           kInt8Chunk);
}

void Int8GradientCompression::progress() {
  for (BucketBuffers& buffers : buffers_) {
    if (buffers.levels_gather) buffers.levels_gather->progress();
    if (buffers.scales_gather) buffers.scales_gather->progress();
  }
}

}  // namespace dsk::train

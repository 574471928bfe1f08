#include "train/gradient_compression.hpp"

#include "core/error.hpp"
#include "cpu/kernels.hpp"

namespace dsk::train {

using tensor::Buf;
using tensor::DType;

Int8GradientCompression::Int8GradientCompression(dist::Communicator& comm, tensor::Ops& ops,
                                                 std::span<const GradientBucket> buckets, int64_t count,
                                                 bool error_feedback, dist::Communicator* replicas)
    : ops_(ops), arena_(ops, "int8 gradient compression"), pieces_(buckets.size()) {
  for (size_t b = 0; b < buckets.size(); b++) {
    for (const GradientRange& range : buckets[b].shared) pieces_[b].push_back(Piece{range, &comm, {}, {}, {}, {}});
    // One group: the owner's gradient is already the sum of every token routed to its experts.
    if (replicas && replicas->size() > 1)
      for (const GradientRange& range : buckets[b].experts)
        pieces_[b].push_back(Piece{range, replicas, {}, {}, {}, {}});
  }
  auto carve = [&](tensor::Arena& arena) {
    residual_ = error_feedback ? arena.take(DType::f32, count) : Buf{};
    for (std::vector<Piece>& bucket : pieces_)
      for (Piece& piece : bucket) {
        const int64_t ranks = piece.comm->size(), chunks = kernels::cpu::quantize_chunks(piece.range.numel, kInt8Chunk);
        piece.levels = arena.take(DType::u8, ranks * piece.range.numel);
        piece.scales = arena.take(DType::f32, ranks * chunks);
      }
  };
  carve(arena_);
  arena_.commit();
  carve(arena_);
  if (!residual_.empty()) ops_.zero(residual_);
}

Int8GradientCompression::~Int8GradientCompression() {
  for (std::vector<Piece>& bucket : pieces_)
    for (Piece& piece : bucket) {
      if (piece.levels_gather) piece.levels_gather->wait();
      if (piece.scales_gather) piece.scales_gather->wait();
    }
}

void Int8GradientCompression::start(int b, Buf grads) {
  for (Piece& piece : pieces_[size_t(b)]) {
    const int64_t numel = piece.range.numel, chunks = piece.scales.numel / piece.comm->size();
    const int rank = piece.comm->rank();
    // Rank r's own row is where an in-place all-gather takes its input from.
    ops_.quantize_int8(piece.levels.slice(rank * numel, numel), piece.scales.slice(rank * chunks, chunks),
                       grads.slice(piece.range.offset, numel),
                       residual_.empty() ? Buf{} : residual_.slice(piece.range.offset, numel), kInt8Chunk);
    piece.levels_gather = piece.comm->start_all_gather(piece.levels, numel);
    piece.scales_gather = piece.comm->start_all_gather(piece.scales, chunks);
  }
}

void Int8GradientCompression::finish(int b, Buf grads) {
  for (Piece& piece : pieces_[size_t(b)]) {
    if (!piece.levels_gather) throw InternalError(str("int8 bucket ", b, " finished before it was started"));
    piece.levels_gather->wait();
    piece.scales_gather->wait();
    piece.levels_gather.reset();
    piece.scales_gather.reset();
    ops_.dequantize_sum_int8(grads.slice(piece.range.offset, piece.range.numel), piece.levels, piece.scales,
                             piece.comm->size(), kInt8Chunk);
  }
}

void Int8GradientCompression::progress() {
  for (std::vector<Piece>& bucket : pieces_)
    for (Piece& piece : bucket) {
      if (piece.levels_gather) piece.levels_gather->progress();
      if (piece.scales_gather) piece.scales_gather->progress();
    }
}

}  // namespace dsk::train

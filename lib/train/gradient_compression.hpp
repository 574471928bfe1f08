// int8 gradient compression for data parallelism (dist.grad_dtype: int8), with error feedback
// (1-bit Adam / PowerSGD's fix for biased compressors, as the DeepSeek seeds describe it).
//
// Sums of int8 values overflow, so the ranks never all-reduce them: each rank quantizes its
// bucket of gradients (per chunk of kInt8Chunk values: a fp32 scale max|g| / 127 and int8 levels),
// the ranks all-gather the int8 levels and the scales (4x fewer bytes than fp32 on the wire, plus
// one scale per chunk), and every rank dequantizes and sums the ranks' contributions in rank
// order, so all ranks hold the same bits. With error feedback, what the levels missed (g -
// q * scale) is kept per parameter in fp32 and added to the next step's gradient before it is
// quantized, so no part of a gradient is lost, only delayed; without it the error is dropped.
//
// Under expert parallelism a bucket is its pieces (gradient_buckets.hpp), each quantized and
// gathered on its own: the shared ones over all ranks, this rank's experts over the ranks that
// hold them too (none with one group: the owner's gradient is whole already, and exact). The
// residual then covers what this rank holds, experts included, at their places in its buffer.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "dist/communicator.hpp"
#include "tensor/arena.hpp"
#include "tensor/ops.hpp"
#include "train/gradient_buckets.hpp"

namespace dsk::train {

inline constexpr int kInt8Chunk = 1024;  // values per scale: 0.4% more bytes, outliers stay local

class Int8GradientCompression {
 public:
  // count: gradient elements; buckets as plan_buckets gives them (their shared pieces go over
  // comm); replicas: expert parallelism's communicator of this rank's experts (null: none), over
  // which the buckets' expert pieces go.
  Int8GradientCompression(dist::Communicator& comm, tensor::Ops& ops, std::span<const GradientBucket> buckets,
                          int64_t count, bool error_feedback, dist::Communicator* replicas = nullptr);
  // Waits for the all-gathers still under way (a step abandoned by an exception): they write
  // into this object's buffers.
  ~Int8GradientCompression();
  Int8GradientCompression(const Int8GradientCompression&) = delete;
  Int8GradientCompression& operator=(const Int8GradientCompression&) = delete;

  // Quantizes bucket b's pieces of grads (plus the residual) and starts the all-gathers of their
  // levels and scales.
  void start(int b, tensor::Buf grads);
  // Waits for bucket b's all-gathers and writes the sum over each piece's ranks of the
  // dequantized values into its range of grads.
  void finish(int b, tensor::Buf grads);
  // Lets the all-gathers under way advance (dist::PendingCollective::progress).
  void progress();

  // The error-feedback residual (f32 [count], zero at first; empty without error feedback).
  tensor::Buf residual() const { return residual_; }

 private:
  struct Piece {
    GradientRange range;
    dist::Communicator* comm;    // the ranks that sum it
    tensor::Buf levels, scales;  // [ranks, numel] u8 and [ranks, chunks] f32: rank r's at row r
    std::unique_ptr<dist::PendingCollective> levels_gather, scales_gather;
  };

  tensor::Ops& ops_;
  tensor::Arena arena_;
  tensor::Buf residual_;
  std::vector<std::vector<Piece>> pieces_;  // per bucket, in the order every rank starts them
};

}  // namespace dsk::train

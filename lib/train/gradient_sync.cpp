#include "train/gradient_sync.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "train/zero_split.hpp"

namespace dsk::train {

using tensor::Buf;
using tensor::DType;

namespace {

// Whether the experts go apart from the all-ranks buckets (see gradient_sync.hpp).
bool splits_experts(const ExpertGradientSplit& experts, int ranks) {
  return !experts.routed.empty() && experts.replicas && ranks > 1;
}

// ZeRO-1's pieces (zero_split.hpp): [0, count), or less the routed experts' ranges (ascending)
// when they go apart.
std::vector<FlatRange> data_parallel_pieces(const ExpertGradientSplit& experts, bool split, int64_t count) {
  if (!split) return {FlatRange{0, count}};
  std::vector<FlatRange> routed;
  for (const GradientRange& range : experts.routed) routed.push_back({range.offset, range.numel});
  return complement(routed, count);
}

Buf part(Buf buffer, const FlatRange& range) { return buffer.slice(range.begin, range.length); }

std::vector<GradientBucket> plan(std::span<const GradientRange> stages, int64_t bucket_bytes,
                                 const ExpertGradientSplit& experts, bool split) {
  return split ? plan_buckets(stages, bucket_bytes, experts.routed, experts.owned) : plan_buckets(stages, bucket_bytes);
}

// ZeRO-1: each bucket's shared pieces as parts of the data-parallel pieces that hold them (a
// shared piece never crosses a routed expert, so one piece holds it whole).
std::vector<std::vector<ZeroPart>> zero_parts_of(const std::vector<GradientBucket>& buckets,
                                                 const std::vector<FlatRange>& pieces, int ranks, int rank) {
  std::vector<std::vector<ZeroPart>> parts(buckets.size());
  for (size_t b = 0; b < buckets.size(); b++)
    for (const GradientRange& shared : buckets[b].shared) {
      const FlatRange range{shared.offset, shared.numel};
      auto holds = [&](const FlatRange& piece) {
        return piece.begin <= range.begin && range.begin + range.length <= piece.begin + piece.length;
      };
      const auto piece = std::find_if(pieces.begin(), pieces.end(), holds);
      if (piece == pieces.end())
        throw InternalError(str("gradient bucket ", b, "'s piece [", range.begin, ", +", range.length,
                                ") is in no ZeRO-1 piece"));
      parts[b].push_back(zero_part(*piece, range, ranks, rank));
    }
  return parts;
}

int64_t total_numel(const std::vector<GradientRange>& ranges) {
  int64_t total = 0;
  for (const GradientRange& range : ranges) total += range.numel;
  return total;
}

}  // namespace

GradientSync::GradientSync(dist::Communicator& comm, tensor::Ops& ops, int64_t count, std::vector<GradientRange> stages,
                           int64_t bucket_bytes, bool zero1, GradientWire wire, const ExpertGradientSplit& experts)
    : comm_(comm),
      ops_(ops),
      zero1_(zero1 && comm.size() > 1 && !wire.int8),
      wire_dtype_(wire.dtype),
      int8_wire_(wire.int8),
      replicas_(splits_experts(experts, comm.size()) ? experts.replicas : nullptr),
      buckets_(plan(stages, bucket_bytes, experts, replicas_ != nullptr)),
      data_parallel_(zero1_ ? data_parallel_pieces(experts, replicas_ != nullptr, count) : std::vector<FlatRange>{}),
      zero_parts_(zero1_ ? zero_parts_of(buckets_, data_parallel_, comm.size(), comm.rank())
                         : std::vector<std::vector<ZeroPart>>{}),
      owned_(replicas_ ? experts.owned : std::vector<GradientRange>{}),
      pending_(buckets_.size()),
      started_(buckets_.size(), false),
      arena_(ops, "bf16 gradients for the all-reduce") {
  if (comm.size() == 1) return;
  if (wire.int8) {
    int8_.emplace(comm, ops, buckets_, count, wire.error_feedback, replicas_);
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
  for (auto& bucket : pending_)
    for (auto& pending : bucket) pending->wait();
}

bool GradientSync::overlaps() const { return comm_.size() > 1 && buckets_.size() > 1; }

void GradientSync::stage_done(int stage, Buf grads) {
  for (size_t b = 0; b < buckets_.size(); b++) {
    if (buckets_[b].last_stage == stage && !started_[b]) start_bucket(int(b), grads);
    // MPI moves non-blocking collectives on only inside its calls: give the started ones a turn.
    for (auto& pending : pending_[b]) pending->progress();
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
  const Buf sent = wire_.empty() ? grads : wire_;
  std::vector<std::unique_ptr<dist::PendingCollective>>& pending = pending_[size_t(b)];
  auto to_wire = [&](const GradientRange& piece) {
    if (!wire_.empty()) ops_.cast(wire_.slice(piece.offset, piece.numel), grads.slice(piece.offset, piece.numel));
  };
  for (size_t i = 0; i < bucket.shared.size(); i++) {
    const GradientRange& piece = bucket.shared[i];
    to_wire(piece);
    if (!zero1_) {
      pending.push_back(comm_.start_all_reduce_sum(sent.slice(piece.offset, piece.numel)));
      continue;
    }
    // ZeRO-1: each rank gets the sums of its shard's elements in the piece, and all the tail's.
    const ZeroPart& zero = zero_parts_[size_t(b)][i];
    if (zero.sharded.length > 0)
      pending.push_back(comm_.start_reduce_scatter_sum(part(sent, zero.sharded), zero.counts));
    if (zero.tail.length > 0) pending.push_back(comm_.start_all_reduce_sum(part(sent, zero.tail)));
  }
  if (replicas_ && replicas_->size() > 1)
    for (const GradientRange& piece : bucket.experts) {
      to_wire(piece);
      pending.push_back(replicas_->start_all_reduce_sum(sent.slice(piece.offset, piece.numel)));
    }
}

// Back from the wire what this rank holds summed: the whole bucket, or with ZeRO-1 its shards'
// and the tails' parts of the shared pieces (the rest of the wire is left undefined), and its experts.
void GradientSync::finish_bucket(int b, Buf grads) {
  const GradientBucket& bucket = buckets_[size_t(b)];
  started_[size_t(b)] = false;
  if (int8_) {
    int8_->finish(b, grads);
    return;
  }
  for (auto& pending : pending_[size_t(b)]) pending->wait();
  pending_[size_t(b)].clear();
  if (wire_.empty()) return;
  auto unwire = [&](const FlatRange& range) {
    if (range.length > 0) ops_.cast(part(grads, range), part(wire_, range));
  };
  for (size_t i = 0; i < bucket.shared.size(); i++) {
    if (!zero1_) {
      unwire({bucket.shared[i].offset, bucket.shared[i].numel});
      continue;
    }
    unwire(zero_parts_[size_t(b)][i].shard);
    unwire(zero_parts_[size_t(b)][i].tail);
  }
  if (replicas_ && replicas_->size() > 1)
    for (const GradientRange& piece : bucket.experts) unwire({piece.offset, piece.numel});
}

// Of what this rank holds after the reduction: everything (int8 too: every rank then holds the
// same whole sum, and under expert parallelism every replica of an expert the same sum of it), or
// with ZeRO-1 its shard plus the tail (the tail is the same on every rank, so only rank 0 counts
// it).
double GradientSync::squared_norm(Buf grads) {
  if (zero1_ && replicas_) {
    // Each rank's shards, the tails (the same on every rank: rank 0 counts them) and the experts
    // (held by one rank of every group: counted once per replica), in one sum over the ranks.
    std::vector<Buf> pieces;
    std::vector<int> kinds;  // 0 shard, 1 tail, 2 expert
    for (const FlatRange& piece : data_parallel_) {
      const ZeroSplit split = zero_split(piece, comm_.size(), comm_.rank());
      pieces.push_back(part(grads, split.shard));
      kinds.push_back(0);
      pieces.push_back(part(grads, split.tail));
      kinds.push_back(1);
    }
    for (const GradientRange& piece : owned_) {
      pieces.push_back(grads.slice(piece.offset, piece.numel));
      kinds.push_back(2);
    }
    const std::vector<double> sums = ops_.sums_of_squares(pieces);
    double squares[3] = {0, 0, 0};
    for (size_t i = 0; i < sums.size(); i++) squares[kinds[i]] += sums[i];
    const double tails = comm_.rank() == 0 ? squares[1] : 0.0;
    return comm_.all_reduce_sum(squares[0] + tails + squares[2] / double(replicas_->size()));
  }
  if (replicas_) {
    // The shared pieces are the same on every rank; each expert is held, with the same summed
    // gradient, by one rank of every group: the world's sum of the experts' squares counts it once
    // per replica.
    // The pieces' sums come back from the device at once, then add up in the order of the buckets.
    std::vector<Buf> pieces;
    for (const GradientBucket& bucket : buckets_)
      for (const auto* ranges : {&bucket.shared, &bucket.experts})
        for (const GradientRange& piece : *ranges) pieces.push_back(grads.slice(piece.offset, piece.numel));
    const std::vector<double> sums = ops_.sums_of_squares(pieces);
    double shared = 0, experts = 0;
    size_t at = 0;
    for (const GradientBucket& bucket : buckets_) {
      for (size_t i = 0; i < bucket.shared.size(); i++) shared += sums[at++];
      for (size_t i = 0; i < bucket.experts.size(); i++) experts += sums[at++];
    }
    return shared + comm_.all_reduce_sum(experts) / double(replicas_->size());
  }
  if (!zero1_) return ops_.sum_of_squares(grads);
  // ZeRO-1 alone: one piece, the whole buffer.
  const ZeroSplit split = zero_split(data_parallel_.at(0), comm_.size(), comm_.rank());
  double local = split.shard.length > 0 ? ops_.sum_of_squares(part(grads, split.shard)) : 0.0;
  double tail_squares = split.tail.length > 0 ? ops_.sum_of_squares(part(grads, split.tail)) : 0.0;
  return comm_.all_reduce_sum(local) + tail_squares;
}

void GradientSync::scale(Buf grads, float factor) {
  if (!zero1_) {
    ops_.scale(grads, factor);
    return;
  }
  for (const FlatRange& mine : zero_updated_ranges(data_parallel_, comm_.size(), comm_.rank()))
    ops_.scale(part(grads, mine), factor);
  for (const GradientRange& piece : owned_) ops_.scale(grads.slice(piece.offset, piece.numel), factor);
}

double GradientSync::reduce_and_clip(Buf grads, float max_norm) {
  if (comm_.size() > 1) {
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

std::string GradientSync::describe() const {
  if (comm_.size() == 1) return {};
  int64_t shared = 0, experts = 0;
  for (const GradientBucket& bucket : buckets_) {
    shared += total_numel(bucket.shared);
    experts += total_numel(bucket.experts);
  }
  const int64_t element = int8_wire_ ? 1 : int64_t(tensor::dtype_size(wire_dtype_));
  const std::string how = zero1_ ? str("reduce-scattered over ", comm_.size(), " ranks (ZeRO-1",
                                       replicas_ ? str(", ", data_parallel_.size(), " pieces") : std::string(), ")")
                                 : str(int8_wire_ ? "all-gathered as int8 levels" : "all-reduced", " over ",
                                       comm_.size(), " ranks");
  std::string line = str("gradient sync: ", shared * element, " bytes a step ", how, " in ", buckets_.size(),
                         buckets_.size() == 1 ? " bucket" : " buckets");
  if (replicas_)
    line += str("; routed experts: this rank's ", experts * element, " bytes summed over ", replicas_->size(),
                replicas_->size() == 1 ? " rank (nothing sent)" : " ranks", ", the others' left out");
  return line;
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

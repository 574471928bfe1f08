#include "train/first_rank_gather.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "tensor/arena.hpp"

namespace dsk::train {
namespace {

using tensor::Buf;
using tensor::DType;

// What one step has this rank send, as one block: the range where it lies in `source`, or
// packed into `packing` when there are several.
Buf outgoing(tensor::Ops& ops, std::span<const FlatRange> sent, Buf source, std::span<const FlatRange> held,
             Buf packing) {
  if (sent.empty()) return Buf{nullptr, 0, DType::f32};
  auto located = [&](const FlatRange& range) {
    return source.slice(packed_offset(held, range.begin, range.length), range.length);
  };
  if (sent.size() == 1) return located(sent[0]);
  int64_t at = 0;
  for (const FlatRange& range : sent) {
    ops.copy(packing.slice(at, range.length), located(range));
    at += range.length;
  }
  return packing.slice(0, at);
}

}  // namespace

void gather_to_first_rank(dist::Communicator& comm, tensor::Ops& ops, const GatherSteps& steps, Buf source,
                          std::span<const FlatRange> held, std::span<float> whole) {
  const int ranks = comm.size(), rank = comm.rank();
  int64_t widest_in = 0, widest_out = 0;
  for (const auto& step : steps) {
    if (int(step.size()) != ranks) throw InternalError("gather_to_first_rank: a step without one entry per rank");
    int64_t in = 0;
    for (int q = 1; q < ranks; ++q) in += total_length(step[size_t(q)]);
    widest_in = std::max(widest_in, in);
    if (step[size_t(rank)].size() > 1) widest_out = std::max(widest_out, total_length(step[size_t(rank)]));
  }
  if (rank == 0 && widest_in > 0 && whole.empty())
    throw InternalError("gather_to_first_rank: rank 0 has no copy to gather into");
  if (rank != 0) widest_in = 0;
  tensor::Arena arena(ops, "flat ranges gathered for rank 0");
  Buf incoming, packing;
  auto carve = [&](tensor::Arena& a) {
    incoming = widest_in > 0 ? a.take(DType::f32, widest_in) : Buf{nullptr, 0, DType::f32};
    packing = widest_out > 0 ? a.take(DType::f32, widest_out) : Buf{};
  };
  carve(arena);
  arena.commit();
  carve(arena);
  std::vector<int64_t> send_counts(size_t(ranks), 0), recv_counts(size_t(ranks), 0);
  for (const auto& step : steps) {
    const Buf block = rank == 0 ? Buf{nullptr, 0, DType::f32} : outgoing(ops, step[size_t(rank)], source, held, packing);
    send_counts[0] = block.numel;
    if (rank == 0)
      for (int q = 1; q < ranks; ++q) recv_counts[size_t(q)] = total_length(step[size_t(q)]);
    comm.all_to_all(block, send_counts, incoming, recv_counts);
    if (rank != 0) continue;
    int64_t at = 0;
    for (int q = 1; q < ranks; ++q)
      for (const FlatRange& range : step[size_t(q)]) {
        if (range.begin < 0 || size_t(range.begin + range.length) > whole.size())
          throw InternalError("gather_to_first_rank: a range beyond rank 0's copy");
        ops.copy_to_host(whole.data() + range.begin, incoming.slice(at, range.length));
        at += range.length;
      }
  }
}

}  // namespace dsk::train

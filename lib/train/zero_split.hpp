// ZeRO-1's split of the flat layout over the ranks, the one place its ranges are computed: GradientSync
// reduce-scatters and sums the gradients by them, AdamW keeps the state of, updates and all-gathers
// the weights by them. The layout is split piece by piece: the whole of it, or under expert
// parallelism each data-parallel piece between two MoE layers' routed experts (at the same place of
// every rank's held buffers). A piece's first ranks * (length / ranks) elements are sharded
// (dist::ShardLayout of its length: rank r's shard at r * shard), and the rest, the tail (fewer than
// ranks elements), is summed over all ranks and updated by every rank alike.
#pragma once

#include <span>
#include <vector>

#include "train/flat_range.hpp"

namespace dsk::train {

struct ZeroSplit {
  FlatRange sharded;  // reduce-scattered before the update, all-gathered after it
  FlatRange shard;    // this rank's part of sharded (empty when the piece is shorter than ranks)
  FlatRange tail;     // after sharded, to the piece's end (may be empty)
};

// Of `piece` (in the flat layout, absolute), for rank `rank` of `ranks`.
ZeroSplit zero_split(FlatRange piece, int ranks, int rank);

// What rank `rank` updates of `pieces` (ascending): each piece's shard, then its tail, the empty
// ones left out, in order.
std::vector<FlatRange> zero_updated_ranges(std::span<const FlatRange> pieces, int ranks, int rank);

}  // namespace dsk::train

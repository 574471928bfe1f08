// ZeRO-1's split of the flat layout over the ranks, the one place its ranges are computed: GradientSync
// reduce-scatters and sums the gradients by them, AdamW keeps the state of, updates and all-gathers
// the weights by them. The layout is split piece by piece: the whole of it, or under expert
// parallelism each data-parallel piece between two MoE layers' routed experts (at the same place of
// every rank's held buffers). A piece's first ranks * (length / ranks) elements are sharded
// (dist::ShardLayout of its length: rank r's shard at r * shard), and the rest, the tail (fewer than
// ranks elements), is summed over all ranks and updated by every rank alike. A piece is reduced
// part by part (zero_part: a gradient bucket's share of it, as the bucket's backward finishes),
// each part's elements summed to the same ranks as the whole piece's.
#pragma once

#include <cstdint>
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

// A part of a piece reduced on its own: where it meets the piece's shards (`sharded`: rank 0's
// elements of it first, then rank 1's..., counts[r] of rank r's, `shard` this rank's: a
// reduce-scatter of unequal blocks) and its tail (`tail`: all-reduced). Every rank gets the same
// counts. The parts of a piece together reduce to each rank exactly its zero_split shard.
struct ZeroPart {
  FlatRange sharded;
  std::vector<std::int64_t> counts;  // ranks of them, summing to sharded.length
  FlatRange shard;
  FlatRange tail;
};

// Of `part` (within `piece`; InternalError otherwise), for rank `rank` of `ranks`.
ZeroPart zero_part(FlatRange piece, FlatRange part, int ranks, int rank);

// What rank `rank` updates of `pieces` (ascending): each piece's shard, then its tail, the empty
// ones left out, in order.
std::vector<FlatRange> zero_updated_ranges(std::span<const FlatRange> pieces, int ranks, int rank);

}  // namespace dsk::train

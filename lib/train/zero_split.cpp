#include "train/zero_split.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "dist/communicator.hpp"

namespace dsk::train {

namespace {

std::int64_t end_of(const FlatRange& range) { return range.begin + range.length; }

// Empty (length 0, at the later begin) when they do not meet.
FlatRange overlap(const FlatRange& a, const FlatRange& b) {
  const std::int64_t begin = std::max(a.begin, b.begin);
  return {begin, std::max<std::int64_t>(0, std::min(end_of(a), end_of(b)) - begin)};
}

}  // namespace

ZeroSplit zero_split(FlatRange piece, int ranks, int rank) {
  const dist::ShardLayout shards{piece.length, ranks, rank};
  return {{piece.begin, shards.sharded()},
          {piece.begin + shards.begin(), shards.shard()},
          {piece.begin + shards.sharded(), shards.tail()}};
}

ZeroPart zero_part(FlatRange piece, FlatRange part, int ranks, int rank) {
  if (part.begin < piece.begin || end_of(part) > end_of(piece) || part.length < 0)
    throw InternalError(str("ZeRO-1 part [", part.begin, ", +", part.length, ") is not within its piece [", piece.begin,
                            ", +", piece.length, ")"));
  const ZeroSplit split = zero_split(piece, ranks, rank);
  ZeroPart out{overlap(part, split.sharded), {}, overlap(part, split.shard), overlap(part, split.tail)};
  for (int r = 0; r < ranks; ++r)
    out.counts.push_back(r == rank ? out.shard.length : overlap(part, zero_split(piece, ranks, r).shard).length);
  return out;
}

std::vector<FlatRange> zero_updated_ranges(std::span<const FlatRange> pieces, int ranks, int rank) {
  std::vector<FlatRange> out;
  for (const FlatRange& piece : pieces) {
    const ZeroSplit split = zero_split(piece, ranks, rank);
    for (const FlatRange& range : {split.shard, split.tail})
      if (range.length > 0) out.push_back(range);
  }
  return out;
}

}  // namespace dsk::train

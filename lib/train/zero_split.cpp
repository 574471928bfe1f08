#include "train/zero_split.hpp"

#include "dist/communicator.hpp"

namespace dsk::train {

ZeroSplit zero_split(FlatRange piece, int ranks, int rank) {
  const dist::ShardLayout shards{piece.length, ranks, rank};
  return {{piece.begin, shards.sharded()},
          {piece.begin + shards.begin(), shards.shard()},
          {piece.begin + shards.sharded(), shards.tail()}};
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

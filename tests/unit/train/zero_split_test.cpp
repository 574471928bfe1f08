// ZeRO-1's split of a piece of the flat layout (zero_split.hpp): the ranks' shards follow one another
// from the piece's start, the tail takes the rest, and over all ranks the updated ranges cover
// every element of every piece once, also for pieces shorter than the number of ranks.
#include <doctest/doctest.h>

#include <vector>

#include "train/zero_split.hpp"

using namespace dsk::train;

TEST_CASE("zero_split: the shards from the piece's start, then the tail") {
  const ZeroSplit split = zero_split({100, 11}, 3, 2);
  CHECK(split.sharded.begin == 100);
  CHECK(split.sharded.length == 9);
  CHECK(split.shard.begin == 106);
  CHECK(split.shard.length == 3);
  CHECK(split.tail.begin == 109);
  CHECK(split.tail.length == 2);
  const ZeroSplit short_piece = zero_split({7, 2}, 4, 1);
  CHECK(short_piece.shard.length == 0);
  CHECK(short_piece.tail.begin == 7);
  CHECK(short_piece.tail.length == 2);
}

TEST_CASE("zero_updated_ranges: the ranks together update every element of the pieces once, the tails on every rank") {
  const std::vector<FlatRange> pieces{{0, 10}, {16, 3}, {25, 8}};
  for (int ranks : {1, 2, 3, 4, 5}) {
    CAPTURE(ranks);
    std::vector<int> updates(33, 0);
    for (int rank = 0; rank < ranks; ++rank) {
      const std::vector<FlatRange> ranges = zero_updated_ranges(pieces, ranks, rank);
      for (size_t i = 0; i < ranges.size(); ++i) {
        CHECK(ranges[i].length > 0);
        if (i > 0) CHECK(ranges[i - 1].begin + ranges[i - 1].length <= ranges[i].begin);
        for (std::int64_t e = ranges[i].begin; e < ranges[i].begin + ranges[i].length; ++e) updates[size_t(e)]++;
      }
    }
    for (const FlatRange& piece : pieces) {
      const ZeroSplit split = zero_split(piece, ranks, 0);
      for (std::int64_t e = piece.begin; e < piece.begin + piece.length; ++e) {
        const bool in_tail = e >= split.tail.begin;
        CHECK(updates[size_t(e)] == (in_tail ? ranks : 1));
      }
    }
    CHECK(updates[12] == 0);  // between the pieces: someone else's (a routed expert's)
  }
}

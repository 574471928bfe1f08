// ZeRO-1's split of a piece of the flat layout (zero_split.hpp): the ranks' shards follow one another
// from the piece's start, the tail takes the rest, and over all ranks the updated ranges cover
// every element of every piece once, also for pieces shorter than the number of ranks.
#include <doctest/doctest.h>

#include <algorithm>
#include <vector>

#include "core/error.hpp"
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

// A gradient bucket's share of a piece, reduced on its own as the bucket's backward finishes: the
// counts are its overlap with each rank's shard, the same on every rank; over parts that tile the
// piece each rank's own blocks are exactly its shard, and the parts' tails the piece's tail.
TEST_CASE("zero_part: a piece reduced in parts gives every rank its zero_split shard and tail") {
  const FlatRange piece{40, 23};  // 3 ranks: shards of 7 at 40, 47, 54; tail [61, +2)
  const ZeroPart inside = zero_part(piece, {44, 12}, 3, 1);  // [44, 56): 3 of rank 0's, 7, 2
  CHECK(inside.sharded.begin == 44);
  CHECK(inside.sharded.length == 12);
  CHECK(inside.counts == std::vector<std::int64_t>{3, 7, 2});
  CHECK((inside.shard.begin == 47 && inside.shard.length == 7));
  CHECK(inside.tail.length == 0);
  const ZeroPart end = zero_part(piece, {58, 5}, 3, 0);  // rank 2's last 3, the tail
  CHECK(end.counts == std::vector<std::int64_t>{0, 0, 3});
  CHECK(end.shard.length == 0);
  CHECK((end.tail.begin == 61 && end.tail.length == 2));
  CHECK_THROWS_AS(zero_part(piece, {60, 4}, 3, 0), dsk::InternalError);

  // Parts from the piece's end down, as the backward finishes them, of every length.
  for (int ranks : {1, 2, 3, 5}) {
    for (std::int64_t step : {1, 2, 4, 9, 23}) {
      CAPTURE(ranks);
      CAPTURE(step);
      for (int rank = 0; rank < ranks; ++rank) {
        const ZeroSplit whole = zero_split(piece, ranks, rank);
        std::int64_t mine = 0, tail = 0, shard_begin = -1;
        for (std::int64_t end = piece.begin + piece.length; end > piece.begin; end -= step) {
          const std::int64_t begin = std::max(piece.begin, end - step);
          const ZeroPart part = zero_part(piece, {begin, end - begin}, ranks, rank);
          REQUIRE(part.counts.size() == size_t(ranks));
          std::int64_t counted = 0, before = 0;
          for (int r = 0; r < ranks; ++r) {
            if (r < rank) before += part.counts[size_t(r)];
            counted += part.counts[size_t(r)];
          }
          CHECK(counted == part.sharded.length);
          CHECK(part.sharded.length + part.tail.length == end - begin);
          CHECK(part.counts[size_t(rank)] == part.shard.length);
          if (part.shard.length > 0) {
            CHECK(part.shard.begin == part.sharded.begin + before);
            shard_begin = shard_begin < 0 ? part.shard.begin : std::min(shard_begin, part.shard.begin);
          }
          mine += part.shard.length;
          tail += part.tail.length;
        }
        CHECK(mine == whole.shard.length);
        if (mine > 0) CHECK(shard_begin == whole.shard.begin);
        CHECK(tail == whole.tail.length);
      }
    }
  }
}

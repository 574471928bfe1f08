// The block manager (serve/paged_kv.hpp) on its own: tables grow by whole blocks from the free
// list, closing returns them, identical full prompt blocks are shared (chained: a block is shared
// only after an identical prefix), at least one prompt token is always left to compute, cached
// blocks outlive their owners until reused, and prefix sharing off shares nothing.
#include <doctest/doctest.h>

#include <set>

#include "core/error.hpp"
#include "serve/paged_kv.hpp"

using dsk::serve::BlockManager;

namespace {
std::vector<int32_t> range(int first, int count) {
  std::vector<int32_t> v;
  for (int i = 0; i < count; i++) v.push_back(first + i);
  return v;
}
std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
}  // namespace

TEST_CASE("tables grow by whole blocks and closing frees them") {
  BlockManager blocks(8, 4, false);
  CHECK(blocks.free_blocks() == 8);
  CHECK(blocks.open(1, range(0, 10)) == 0);
  CHECK(blocks.can_grow(1, 10));
  blocks.grow(1, 10);
  CHECK(blocks.table(1).size() == 3);
  CHECK(blocks.used_blocks() == 3);
  blocks.grow(1, 12);  // still 3 blocks
  CHECK(blocks.table(1).size() == 3);
  blocks.grow(1, 13);
  CHECK(blocks.table(1).size() == 4);
  CHECK(blocks.open(2, range(0, 20)) == 0);  // no sharing when switched off
  CHECK(blocks.can_grow(2, 16));
  CHECK_FALSE(blocks.can_grow(2, 17));
  CHECK_THROWS_AS(blocks.grow(2, 17), dsk::InternalError);
  blocks.grow(2, 16);
  std::set<int32_t> all(blocks.table(1).begin(), blocks.table(1).end());
  all.insert(blocks.table(2).begin(), blocks.table(2).end());
  CHECK(all.size() == 8);  // no block owned twice
  CHECK(blocks.free_blocks() == 0);
  blocks.close(1);
  CHECK(blocks.free_blocks() == 4);
  CHECK_FALSE(blocks.has(1));
  CHECK_THROWS_AS(blocks.table(1), dsk::InternalError);
  CHECK_THROWS_AS(BlockManager(0, 4, true), dsk::UsageError);
}

TEST_CASE("identical full prompt blocks are shared, chained on their prefix, reference counted") {
  BlockManager blocks(16, 4, true);
  const std::vector<int32_t> prompt = range(100, 14);  // 3 full blocks + 2
  CHECK(blocks.open(1, prompt) == 0);
  blocks.grow(1, 14);
  blocks.filled(1, prompt, 14);  // registers blocks 0..2
  CHECK(blocks.used_blocks() == 4);

  // Same first 9 tokens: blocks 0 and 1 are shared (block 2 differs at token 9).
  std::vector<int32_t> other = prompt;
  other[9] = 7;
  CHECK(blocks.open(2, other) == 8);
  CHECK(blocks.shared_hits() == 2);
  CHECK(blocks.table(2)[0] == blocks.table(1)[0]);
  CHECK(blocks.table(2)[1] == blocks.table(1)[1]);
  blocks.grow(2, 14);
  CHECK(blocks.table(2)[2] != blocks.table(1)[2]);
  CHECK(blocks.used_blocks() == 6);  // 4 + 2 new, the shared two counted once

  // The same second block after a different first block is not the same block (chained hash).
  std::vector<int32_t> shifted = concat(range(500, 4), std::vector<int32_t>(prompt.begin() + 4, prompt.end()));
  CHECK(blocks.open(3, shifted) == 0);
  blocks.close(3);

  // Closing the first owner keeps the shared blocks for the second.
  blocks.close(1);
  CHECK(blocks.used_blocks() == 4);
  blocks.close(2);
  CHECK(blocks.used_blocks() == 0);
}

TEST_CASE("a fully cached prompt still leaves its last token to compute") {
  BlockManager blocks(8, 4, true);
  const std::vector<int32_t> prompt = range(0, 8);  // exactly 2 blocks
  blocks.open(1, prompt);
  blocks.grow(1, 8);
  blocks.filled(1, prompt, 8);
  CHECK(blocks.open(2, prompt) == 4);  // block 1 would cover the last token: not reused
  blocks.grow(2, 8);
  CHECK(blocks.table(2)[1] != blocks.table(1)[1]);
}

TEST_CASE("cached blocks outlive their owner until the free list reuses them") {
  BlockManager blocks(4, 2, true);
  const std::vector<int32_t> prompt = {1, 2, 3, 4, 5};
  blocks.open(1, prompt);
  blocks.grow(1, 5);
  blocks.filled(1, prompt, 5);
  blocks.close(1);
  CHECK(blocks.free_blocks() == 4);
  CHECK(blocks.open(2, prompt) == 4);  // found again after its owner left
  CHECK(blocks.used_blocks() == 2);
  blocks.close(2);
  // Fill the pool with other tokens: the cached blocks are reused last, then forgotten.
  blocks.open(3, std::vector<int32_t>(7, 9));
  blocks.grow(3, 8);
  blocks.close(3);
  CHECK(blocks.open(4, prompt) == 0);
}

// The cache shared by the threads that encode with one tokenizer: what goes in comes out,
// colliding hashes probe on, a full table refuses (so the per-thread caches take over), and
// threads that race to insert the same pieces all read back one entry per piece.
#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

#include "tokenizer/shared_piece_cache.hpp"

using dsk::tokenizer::SharedPieceCache;

namespace {
std::vector<uint32_t> ids_of(const std::string& piece) { return {uint32_t(piece.size()), uint32_t(piece[0]), 7}; }
}  // namespace

TEST_CASE("shared piece cache: stored pieces come back, others do not") {
  SharedPieceCache cache(4);
  std::vector<uint32_t> ids{1, 2, 3};
  CHECK(cache.find("hello", 5) == nullptr);
  CHECK(cache.insert("hello", 5, ids));
  // the same hash for another piece: it probes to the next slot
  CHECK(cache.insert("world", 5, std::vector<uint32_t>{9}));
  REQUIRE(cache.find("hello", 5) != nullptr);
  CHECK(cache.find("hello", 5)->ids == ids);
  REQUIRE(cache.find("world", 5) != nullptr);
  CHECK(cache.find("world", 5)->ids == std::vector<uint32_t>{9});
  CHECK(cache.find("other", 5) == nullptr);
  CHECK(cache.insert("hello", 5, std::vector<uint32_t>{4}));  // already there: kept as it was
  CHECK(cache.find("hello", 5)->ids == ids);
}

TEST_CASE("shared piece cache: once half full it refuses") {
  SharedPieceCache cache(3);  // 8 slots: takes 4
  for (int i = 0; i < 4; ++i) CHECK(cache.insert("p" + std::to_string(i), size_t(i), std::vector<uint32_t>{uint32_t(i)}));
  CHECK_FALSE(cache.insert("p9", 9, std::vector<uint32_t>{9}));
  CHECK(cache.find("p9", 9) == nullptr);
  for (int i = 0; i < 4; ++i) REQUIRE(cache.find("p" + std::to_string(i), size_t(i)) != nullptr);
}

TEST_CASE("shared piece cache: threads racing on the same pieces read back the same ids") {
  SharedPieceCache cache(12);
  std::vector<std::string> pieces;
  for (int i = 0; i < 1500; ++i) pieces.push_back("piece" + std::to_string(i));
  auto work = [&] {
    for (int round = 0; round < 3; ++round)
      for (const auto& piece : pieces) {
        const size_t hash = std::hash<std::string_view>{}(piece);
        if (const auto* entry = cache.find(piece, hash)) {
          CHECK(entry->ids == ids_of(piece));
        } else {
          auto ids = ids_of(piece);
          CHECK(cache.insert(piece, hash, ids));
        }
      }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back(work);
  for (auto& thread : threads) thread.join();
  for (const auto& piece : pieces) {
    const auto* entry = cache.find(piece, std::hash<std::string_view>{}(piece));
    REQUIRE(entry != nullptr);
    CHECK(entry->ids == ids_of(piece));
  }
}

// The loader: windows come from inside one shard, are deterministic by seed and cursor, and a
// restored cursor continues with the same windows.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <set>
#include <vector>

#include "core/error.hpp"
#include "io/token_shard.hpp"
#include "train/token_windows.hpp"

using namespace dsk::train;
namespace fs = std::filesystem;

namespace {

// Two shards whose tokens tell where they come from: shard s holds s*1000 + i.
std::vector<fs::path> write_shards(const fs::path& dir) {
  fs::create_directories(dir);
  std::vector<fs::path> paths;
  for (std::uint32_t s = 0; s < 2; ++s) {
    paths.push_back(dir / ("train-0000" + std::to_string(s) + ".tok"));
    dsk::io::ShardWriter writer(paths.back(), 4096, 4095);
    std::vector<std::uint32_t> tokens;
    for (std::uint32_t i = 0; i < 40; ++i) tokens.push_back(s * 1000 + i);
    writer.append(tokens);
    writer.end_document();
    writer.commit();
  }
  return paths;
}

}  // namespace

TEST_CASE("token windows are contiguous, inside one shard, and deterministic by seed and cursor") {
  fs::path dir = fs::temp_directory_path() / ("dsk-train-windows-" + std::to_string(::getpid()));
  auto paths = write_shards(dir);
  TokenWindows a(paths, 8, 7), b(paths, 8, 7), other_seed(paths, 8, 8);
  CHECK(a.start_positions() == 2 * (41 - 9 + 1));

  std::set<std::uint32_t> shards_seen;
  std::vector<std::vector<std::uint32_t>> first;
  bool seeds_differ = false;
  for (int k = 0; k < 50; ++k) {
    std::vector<std::uint32_t> wa, wb, wc;
    a.next(wa);
    b.next(wb);
    other_seed.next(wc);
    REQUIRE(wa.size() == 9);
    CHECK(wa == wb);
    seeds_differ |= wa != wc;
    for (std::size_t i = 1; i < wa.size(); ++i)  // consecutive ids of one shard, or its EOS at the end
      CHECK((wa[i] == wa[i - 1] + 1 || wa[i] == 4095));
    shards_seen.insert(wa[0] / 1000);
    first.push_back(wa);
  }
  CHECK(seeds_differ);
  CHECK(shards_seen.size() == 2);

  TokenWindows resumed(paths, 8, 7);
  resumed.set_cursor(20);
  std::vector<std::uint32_t> w;
  resumed.next(w);
  CHECK(w == first[20]);
  CHECK(resumed.cursor() == 21);
  fs::remove_all(dir);
}

TEST_CASE("shards shorter than a window are a data error") {
  fs::path dir = fs::temp_directory_path() / ("dsk-train-short-" + std::to_string(::getpid()));
  auto paths = write_shards(dir);
  CHECK_THROWS_AS(TokenWindows(paths, 100, 1), dsk::DataError);
  fs::remove_all(dir);
}

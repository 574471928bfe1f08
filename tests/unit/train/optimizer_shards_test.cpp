// The ranks' parts of a ZeRO-1 optimizer state: the ranges tile the flat layout for any number of
// ranks, parts written by 3 ranks join bit for bit into the whole state, and a missing, truncated,
// foreign or stale part is a DataError naming the file. A reader keeping some ranges (expert
// parallelism) gets those alone, from parts or one file.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "train/optimizer_shards.hpp"

using namespace dsk::train;
namespace fs = std::filesystem;

namespace {

std::vector<float> slice(const std::vector<float>& values, OptimizerPart part) {
  return {values.begin() + part.begin, values.begin() + part.begin + part.length};
}

// Writes the parts of `ranks` ranks of a state of master[i] = i, m = 2i, v = 3i, and the manifest.
void write_parts(const fs::path& dsk_dir, int ranks, std::int64_t count, std::int64_t adam_steps,
                 std::vector<float>& master, std::vector<float>& m, std::vector<float>& v) {
  master.clear(), m.clear(), v.clear();
  for (std::int64_t i = 0; i < count; ++i) {
    master.push_back(float(i) + 0.5f);
    m.push_back(2.0f * float(i));
    v.push_back(3e-9f * float(i));
  }
  fs::create_directories(dsk_dir);
  for (int rank = 0; rank < ranks; ++rank) {
    const OptimizerPart part = optimizer_part({count, ranks, rank});
    save_optimizer_part(dsk_dir / optimizer_part_name(rank, ranks), std::uint64_t(count), part, adam_steps,
                        slice(master, part), slice(m, part), slice(v, part));
  }
  write_optimizer_manifest(dsk_dir, std::uint64_t(count), ranks, adam_steps);
}

}  // namespace

TEST_CASE("the ranks' parts tile the flat layout, the last one taking the tail") {
  for (int ranks : {1, 2, 3, 4, 7}) {
    for (std::int64_t count : {0, 1, 5, 6, 100}) {
      std::int64_t next = 0;
      for (int rank = 0; rank < ranks; ++rank) {
        const OptimizerPart part = optimizer_part({count, ranks, rank});
        CHECK(part.begin == next);
        next += part.length;
      }
      CHECK(next == count);
    }
  }
  CHECK(optimizer_part_name(1, 4) == "optimizer.rank-00001-of-00004.bin.zst");
}

TEST_CASE("parts written by 3 ranks join into the whole state; bad parts are refused") {
  const fs::path dsk_dir = fs::temp_directory_path() / ("dsk-optimizer-parts-" + std::to_string(::getpid())) / "dsk";
  std::vector<float> master, m, v;
  write_parts(dsk_dir, 3, 11, 7, master, m, v);
  CHECK(has_optimizer_parts(dsk_dir));
  OptimizerState state = load_optimizer_parts(dsk_dir, 11);
  CHECK(state.adam_steps == 7);
  CHECK(state.master == master);
  CHECK(state.m == m);
  CHECK(state.v == v);
  CHECK_THROWS_AS(load_optimizer_parts(dsk_dir, 12), dsk::DataError);  // another model

  SUBCASE("a missing part") {
    fs::remove(dsk_dir / optimizer_part_name(1, 3));
    CHECK_THROWS_WITH_AS(load_optimizer_parts(dsk_dir, 11), doctest::Contains("optimizer.rank-00001-of-00003"),
                         dsk::DataError);
  }
  SUBCASE("a truncated part") {
    const fs::path part = dsk_dir / optimizer_part_name(2, 3);
    fs::resize_file(part, fs::file_size(part) / 2);
    CHECK_THROWS_AS(load_optimizer_parts(dsk_dir, 11), dsk::DataError);
  }
  SUBCASE("a part of another step (a stale file)") {
    std::vector<float> master2, m2, v2;
    const fs::path other = dsk_dir.parent_path() / "other";
    write_parts(other, 3, 11, 8, master2, m2, v2);
    fs::copy_file(other / optimizer_part_name(0, 3), dsk_dir / optimizer_part_name(0, 3),
                  fs::copy_options::overwrite_existing);
    CHECK_THROWS_WITH_AS(load_optimizer_parts(dsk_dir, 11), doctest::Contains("AdamW step 8"), dsk::DataError);
  }
  SUBCASE("a part of another range") {
    const OptimizerPart wrong{0, 3};
    save_optimizer_part(dsk_dir / optimizer_part_name(1, 3), 11, wrong, 7, slice(master, wrong), slice(m, wrong),
                        slice(v, wrong));
    CHECK_THROWS_WITH_AS(load_optimizer_parts(dsk_dir, 11), doctest::Contains("the manifest says"), dsk::DataError);
  }
  fs::remove_all(dsk_dir.parent_path());
}

TEST_CASE("a reader keeping some ranges gets their elements only, packed in order, from parts or one file") {
  const fs::path dsk_dir = fs::temp_directory_path() / ("dsk-optimizer-kept-" + std::to_string(::getpid())) / "dsk";
  std::vector<float> master, m, v;
  write_parts(dsk_dir, 3, 11, 7, master, m, v);  // parts [0, 3), [3, 6), [6, 11)
  save_optimizer_state(dsk_dir / "optimizer.bin.zst", 7, master, m, v);
  // Ranges across part boundaries, one within a part, one at the end.
  const std::vector<FlatRange> kept = {{1, 4}, {7, 1}, {9, 2}};
  auto packed = [&](const std::vector<float>& whole) {
    std::vector<float> out;
    for (const FlatRange& range : kept) out.insert(out.end(), whole.begin() + range.begin, whole.begin() + range.begin + range.length);
    return out;
  };
  for (const OptimizerState& state : {load_optimizer_parts(dsk_dir, 11, kept),
                                      load_optimizer_state(dsk_dir / "optimizer.bin.zst", 11, kept)}) {
    CHECK(state.adam_steps == 7);
    CHECK(state.master == packed(master));
    CHECK(state.m == packed(m));
    CHECK(state.v == packed(v));
  }
  CHECK(packed_offset(kept, 9, 2) == 5);
  CHECK_THROWS_AS(packed_offset(kept, 4, 2), dsk::InternalError);  // runs out of its range
  fs::remove_all(dsk_dir.parent_path());
}

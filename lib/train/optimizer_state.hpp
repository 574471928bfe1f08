// The optimizer state of a checkpoint (dsk/optimizer.bin.zst): fp32 master weights and the AdamW
// moments m and v, zstd-compressed. Layout of the decompressed bytes (little-endian hosts only):
//   "DSKADAM1"  u64 parameter_count  i64 adam_steps  f32[count] master  f32[count] m  f32[count] v
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include "train/flat_range.hpp"

namespace dsk::io {
class ZstdReader;
}

namespace dsk::train {

// master, m and v hold the elements of the ranges the reader kept, packed in order (all of them
// when it kept everything).
struct OptimizerState {
  std::int64_t adam_steps = 0;
  std::vector<float> master, m, v;
};

// Written to a temporary name and renamed into place when whole.
void save_optimizer_state(const std::filesystem::path& path, std::int64_t adam_steps, std::span<const float> master,
                          std::span<const float> m, std::span<const float> v);
// DataError naming the file on a bad magic, a parameter count other than expected_count, or truncation.
// kept: the flat ranges to keep (ascending, disjoint; empty: all), so that a rank holding part of
// the model (expert parallelism) never holds the rest of the state, not even while it reads.
OptimizerState load_optimizer_state(const std::filesystem::path& path, std::uint64_t expected_count,
                                    std::span<const FlatRange> kept = {});

// Reads exactly size bytes of an optimizer state; DataError "ends early (truncated)" otherwise.
void read_exactly(io::ZstdReader& in, void* out, std::size_t size);
// Reads the `length` floats of flat elements [begin, begin + length) and puts those within `kept`
// at their places in `packed` (packed_offset(kept, ...)), a chunk at a time.
void read_kept(io::ZstdReader& in, std::int64_t begin, std::int64_t length, std::span<const FlatRange> kept,
               float* packed);
// [0, count) when kept is empty, else kept.
std::vector<FlatRange> kept_or_all(std::span<const FlatRange> kept, std::uint64_t count);

}  // namespace dsk::train

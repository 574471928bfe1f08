// The optimizer state of a checkpoint (dsk/optimizer.bin.zst): fp32 master weights and the AdamW
// moments m and v, zstd-compressed. Layout of the decompressed bytes (little-endian hosts only):
//   "DSKADAM1"  u64 parameter_count  i64 adam_steps  f32[count] master  f32[count] m  f32[count] v
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

namespace dsk::io {
class ZstdReader;
}

namespace dsk::train {

struct OptimizerState {
  std::int64_t adam_steps = 0;
  std::vector<float> master, m, v;
};

// Written to a temporary name and renamed into place when whole.
void save_optimizer_state(const std::filesystem::path& path, std::int64_t adam_steps, std::span<const float> master,
                          std::span<const float> m, std::span<const float> v);
// DataError naming the file on a bad magic, a parameter count other than expected_count, or truncation.
OptimizerState load_optimizer_state(const std::filesystem::path& path, std::uint64_t expected_count);

// Reads exactly size bytes of an optimizer state; DataError "ends early (truncated)" otherwise.
void read_exactly(io::ZstdReader& in, void* out, std::size_t size);

}  // namespace dsk::train

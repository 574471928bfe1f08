// The optimizer state of a checkpoint written by the ranks of a ZeRO-1 run, each its own part
// (../shared/DESIGN.md, "Formats"; man/dsk-formats.5):
//
//   dsk/optimizer.yaml                              the manifest (rank 0): the parts and their ranges
//   dsk/optimizer.rank-00000-of-00004.bin.zst       rank 0's part
//   ...
//   dsk/optimizer.rank-00003-of-00004.bin.zst       the last rank's part (its shard and the tail)
//
// Each part is a contiguous range [begin, begin + length) of the flat parameter layout (the
// ranks' dist::ShardLayout shards; the last rank's range also covers the tail), zstd-compressed:
//   "DSKADAMS"  u64 parameter_count  u64 begin  u64 length  i64 adam_steps
//   f32[length] master  f32[length] m  f32[length] v
// Together the ranges cover [0, parameter_count) once, so any number of ranks can resume from
// them: the reader concatenates the parts and each rank takes its own shard of the whole.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

#include "dist/communicator.hpp"
#include "train/optimizer_state.hpp"

namespace dsk::train {

// The range of the flat layout that rank `layout.rank` writes.
struct OptimizerPart {
  std::int64_t begin = 0, length = 0;
};
OptimizerPart optimizer_part(const dist::ShardLayout& layout);

// "optimizer.rank-00001-of-00004.bin.zst"
std::string optimizer_part_name(int rank, int ranks);

// One rank's part, written to a temporary name and renamed into place when whole (and synced).
void save_optimizer_part(const std::filesystem::path& path, std::uint64_t parameter_count, OptimizerPart part,
                         std::int64_t adam_steps, std::span<const float> master, std::span<const float> m,
                         std::span<const float> v);
// The manifest of `ranks` parts of `parameter_count` elements (rank 0 writes it).
void write_optimizer_manifest(const std::filesystem::path& dsk_dir, std::uint64_t parameter_count, int ranks,
                              std::int64_t adam_steps);

// Whether dsk_dir holds a sharded optimizer state (a manifest) rather than dsk/optimizer.bin.zst.
bool has_optimizer_parts(const std::filesystem::path& dsk_dir);
// Reads every part the manifest names and joins them into the whole state, or the `kept` ranges
// of it (load_optimizer_state). DataError naming the file when a part is missing, truncated, of
// another range or model, or of another step.
OptimizerState load_optimizer_parts(const std::filesystem::path& dsk_dir, std::uint64_t expected_count,
                                    std::span<const FlatRange> kept = {});

}  // namespace dsk::train

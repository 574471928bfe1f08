#include "train/optimizer_shards.hpp"

#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <cstring>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "io/zstd_stream.hpp"
#include "train/yaml_field.hpp"

namespace dsk::train {
namespace fs = std::filesystem;
namespace {

constexpr char kPartMagic[8] = {'D', 'S', 'K', 'A', 'D', 'A', 'M', 'S'};
constexpr const char* kManifestName = "optimizer.yaml";
constexpr const char* kManifestFormat = "dsk-adamw-parts-1";

// Reads one part into its range of state (whose vectors hold the kept elements).
void read_part(const fs::path& path, std::uint64_t count, OptimizerPart expected, std::int64_t adam_steps,
               std::span<const FlatRange> kept, OptimizerState& state) {
  if (!fs::exists(path))
    throw DataError(str(path.string(), ": missing (the checkpoint's optimizer.yaml names it): the checkpoint is not whole"));
  io::ZstdReader in(path);
  char magic[8];
  read_exactly(in, magic, sizeof magic);
  if (std::memcmp(magic, kPartMagic, sizeof kPartMagic) != 0)
    throw DataError(path.string() + ": not a part of a dsk optimizer state (bad magic)");
  std::uint64_t header[3];  // parameter_count, begin, length
  std::int64_t steps = 0;
  read_exactly(in, header, sizeof header);
  read_exactly(in, &steps, sizeof steps);
  if (header[0] != count || header[1] != std::uint64_t(expected.begin) || header[2] != std::uint64_t(expected.length))
    throw DataError(str(path.string(), ": holds elements [", header[1], ", ", header[1] + header[2], ") of ", header[0],
                        ", the manifest says [", expected.begin, ", ", expected.begin + expected.length, ") of ",
                        count));
  if (steps != adam_steps)
    throw DataError(str(path.string(), ": written at AdamW step ", steps, ", the manifest says ", adam_steps,
                        " (parts of different checkpoints)"));
  for (auto* values : {&state.master, &state.m, &state.v})
    read_kept(in, expected.begin, expected.length, kept, values->data());
}

}  // namespace

OptimizerPart optimizer_part(const dist::ShardLayout& layout) {
  const bool last = layout.rank == layout.ranks - 1;
  return {layout.begin(), layout.shard() + (last ? layout.tail() : 0)};
}

std::string optimizer_part_name(int rank, int ranks) {
  char name[64];
  std::snprintf(name, sizeof name, "optimizer.rank-%05d-of-%05d.bin.zst", rank, ranks);
  return name;
}

void save_optimizer_part(const fs::path& path, std::uint64_t parameter_count, OptimizerPart part,
                         std::int64_t adam_steps, std::span<const float> master, std::span<const float> m,
                         std::span<const float> v) {
  const auto length = std::size_t(part.length);
  if (master.size() != length || m.size() != length || v.size() != length)
    throw InternalError("save_optimizer_part: master, m and v differ from the part's length");
  io::ZstdWriter out(path, {});
  const std::uint64_t header[3] = {parameter_count, std::uint64_t(part.begin), std::uint64_t(part.length)};
  out.write(kPartMagic, sizeof kPartMagic);
  out.write(reinterpret_cast<const char*>(header), sizeof header);
  out.write(reinterpret_cast<const char*>(&adam_steps), sizeof adam_steps);
  for (auto values : {master, m, v}) out.write(reinterpret_cast<const char*>(values.data()), values.size_bytes());
  out.commit();
}

void write_optimizer_manifest(const fs::path& dsk_dir, std::uint64_t parameter_count, int ranks,
                              std::int64_t adam_steps) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "format" << YAML::Value << kManifestFormat;
  out << YAML::Key << "parameters" << YAML::Value << parameter_count;
  out << YAML::Key << "adam_steps" << YAML::Value << adam_steps;
  out << YAML::Key << "parts" << YAML::Value << YAML::BeginSeq;
  for (int rank = 0; rank < ranks; ++rank) {
    const OptimizerPart part = optimizer_part({std::int64_t(parameter_count), ranks, rank});
    out << YAML::BeginMap;
    out << YAML::Key << "file" << YAML::Value << optimizer_part_name(rank, ranks);
    out << YAML::Key << "begin" << YAML::Value << part.begin;
    out << YAML::Key << "length" << YAML::Value << part.length;
    out << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
  write_file_atomic(dsk_dir / kManifestName, std::string(out.c_str()) + "\n");
}

bool has_optimizer_parts(const fs::path& dsk_dir) { return fs::exists(dsk_dir / kManifestName); }

OptimizerState load_optimizer_parts(const fs::path& dsk_dir, std::uint64_t expected_count,
                                    std::span<const FlatRange> kept_ranges) {
  const fs::path manifest_path = dsk_dir / kManifestName;
  YAML::Node manifest;
  try {
    manifest = YAML::Load(read_file(manifest_path));
  } catch (const YAML::Exception& e) {
    throw DataError(str(manifest_path.string(), ": not valid YAML: ", e.what()));
  }
  if (!manifest.IsMap() || required_yaml_field<std::string>(manifest, "format", manifest_path) != kManifestFormat)
    throw DataError(str(manifest_path.string(), ": not a dsk optimizer manifest (format ", kManifestFormat, ")"));
  const auto count = required_yaml_field<std::uint64_t>(manifest, "parameters", manifest_path);
  if (count != expected_count)
    throw DataError(str(manifest_path.string(), ": optimizer state holds ", count, " parameters, the model has ",
                        expected_count));
  const std::vector<FlatRange> kept = kept_or_all(kept_ranges, count);
  const std::int64_t held = total_length(kept);
  OptimizerState state;
  state.adam_steps = required_yaml_field<std::int64_t>(manifest, "adam_steps", manifest_path);
  for (auto* values : {&state.master, &state.m, &state.v}) values->resize(std::size_t(held));
  const YAML::Node parts = manifest["parts"];
  if (!parts || !parts.IsSequence() || parts.size() == 0)
    throw DataError(str(manifest_path.string(), ": parts must be a list of the ranks' files"));
  // The parts, in order, must tile [0, count) exactly.
  std::uint64_t covered = 0;
  for (const YAML::Node& entry : parts) {
    const auto file = required_yaml_field<std::string>(entry, "file", manifest_path);
    const OptimizerPart part{required_yaml_field<std::int64_t>(entry, "begin", manifest_path),
                             required_yaml_field<std::int64_t>(entry, "length", manifest_path)};
    if (file.find('/') != std::string::npos || part.begin < 0 || part.length < 0 ||
        std::uint64_t(part.begin) != covered || covered + std::uint64_t(part.length) > count)
      throw DataError(str(manifest_path.string(), ": part ", file, " [", part.begin, ", ", part.begin + part.length,
                          ") does not continue the parts before it within ", count, " parameters"));
    read_part(dsk_dir / file, count, part, state.adam_steps, kept, state);
    covered += std::uint64_t(part.length);
  }
  if (covered != count)
    throw DataError(str(manifest_path.string(), ": the parts cover ", covered, " of ", count, " parameters"));
  return state;
}

}  // namespace dsk::train

#include "train/optimizer_state.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "core/error.hpp"
#include "io/zstd_stream.hpp"

namespace dsk::train {
namespace {

constexpr char kMagic[8] = {'D', 'S', 'K', 'A', 'D', 'A', 'M', '1'};

}  // namespace

void read_exactly(io::ZstdReader& in, void* out, std::size_t size) {
  char* bytes = static_cast<char*>(out);
  std::size_t done = 0;
  while (done < size) {
    std::size_t n = in.read(bytes + done, size - done);
    if (n == 0) throw DataError(in.name() + ": optimizer state ends early (truncated)");
    done += n;
  }
}

void read_kept(io::ZstdReader& in, std::int64_t begin, std::int64_t length, std::span<const FlatRange> kept,
               float* packed) {
  std::vector<float> chunk(std::size_t(std::min<std::int64_t>(length, std::int64_t(1) << 20)));
  std::int64_t packed_begin = 0;  // of kept[first] in packed
  std::size_t first = 0;          // the first kept range that does not end before the chunk
  for (std::int64_t at = begin, end = begin + length; at < end;) {
    const std::int64_t n = std::min<std::int64_t>(std::int64_t(chunk.size()), end - at);
    read_exactly(in, chunk.data(), std::size_t(n) * sizeof(float));
    while (first < kept.size() && kept[first].begin + kept[first].length <= at)
      packed_begin += kept[first++].length;
    std::int64_t range_at = packed_begin;
    for (std::size_t k = first; k < kept.size() && kept[k].begin < at + n; range_at += kept[k++].length) {
      const std::int64_t low = std::max(at, kept[k].begin), high = std::min(at + n, kept[k].begin + kept[k].length);
      std::copy(chunk.begin() + (low - at), chunk.begin() + (high - at), packed + range_at + (low - kept[k].begin));
    }
    at += n;
  }
}

std::vector<FlatRange> kept_or_all(std::span<const FlatRange> kept, std::uint64_t count) {
  if (kept.empty()) return {FlatRange{0, std::int64_t(count)}};
  return {kept.begin(), kept.end()};
}

void save_optimizer_state(const std::filesystem::path& path, std::int64_t adam_steps, std::span<const float> master,
                          std::span<const float> m, std::span<const float> v) {
  if (m.size() != master.size() || v.size() != master.size())
    throw InternalError("save_optimizer_state: master, m and v differ in length");
  io::ZstdWriter out(path, {});
  std::uint64_t count = master.size();
  out.write(kMagic, sizeof kMagic);
  out.write(reinterpret_cast<const char*>(&count), sizeof count);
  out.write(reinterpret_cast<const char*>(&adam_steps), sizeof adam_steps);
  for (auto values : {master, m, v}) out.write(reinterpret_cast<const char*>(values.data()), values.size_bytes());
  out.commit();
}

OptimizerState load_optimizer_state(const std::filesystem::path& path, std::uint64_t expected_count,
                                    std::span<const FlatRange> kept_ranges) {
  io::ZstdReader in(path);
  char magic[8];
  read_exactly(in, magic, sizeof magic);
  if (std::memcmp(magic, kMagic, sizeof kMagic) != 0)
    throw DataError(path.string() + ": not a dsk optimizer state (bad magic)");
  std::uint64_t count = 0;
  read_exactly(in, &count, sizeof count);
  if (count != expected_count)
    throw DataError(path.string() + ": optimizer state holds " + std::to_string(count) + " parameters, the model has " +
                    std::to_string(expected_count));
  const std::vector<FlatRange> kept = kept_or_all(kept_ranges, count);
  const std::int64_t held = total_length(kept);
  OptimizerState state;
  read_exactly(in, &state.adam_steps, sizeof state.adam_steps);
  for (auto* values : {&state.master, &state.m, &state.v}) {
    values->resize(std::size_t(held));
    read_kept(in, 0, std::int64_t(count), kept, values->data());
  }
  return state;
}

}  // namespace dsk::train

#include "train/token_windows.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace dsk::train {
namespace {

// splitmix64: a stateless 64-bit mix, so window k needs no sequential generator state.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

TokenWindows::TokenWindows(const std::vector<std::filesystem::path>& shard_paths, std::int64_t seq_len,
                           std::uint64_t seed)
    : seq_len_(seq_len), seed_(seed) {
  if (seq_len < 1) throw UsageError("data.seq_len must be at least 1");
  window_starts_.push_back(0);
  for (const auto& path : shard_paths) {
    io::ShardReader shard(path);
    std::uint64_t window = std::uint64_t(seq_len) + 1;
    if (shard.size() < window) continue;  // too short to hold one window
    window_starts_.push_back(window_starts_.back() + shard.size() - window + 1);
    shards_.push_back(std::move(shard));
  }
  if (shards_.empty())
    throw DataError(std::string("no shard holds seq_len + 1 = ") + std::to_string(seq_len + 1) + " tokens (" +
                    std::to_string(shard_paths.size()) + " shard(s) given" +
                    (shard_paths.empty() ? std::string() : ", the first " + shard_paths.front().string()) + ")");
}

void TokenWindows::window(std::uint64_t k, std::vector<std::uint32_t>& out) const {
  std::uint64_t position = mix(seed_ ^ mix(k)) % window_starts_.back();
  auto after = std::upper_bound(window_starts_.begin(), window_starts_.end(), position);
  std::size_t shard = std::size_t(after - window_starts_.begin()) - 1;
  std::vector<std::uint32_t> tokens;
  shards_[shard].read(position - window_starts_[shard], std::uint64_t(seq_len_) + 1, tokens);
  out.insert(out.end(), tokens.begin(), tokens.end());
}

void TokenWindows::next(std::vector<std::uint32_t>& out) { window(cursor_++, out); }

}  // namespace dsk::train

// The training data loader: windows of seq_len + 1 tokens (inputs and the next-token targets)
// drawn at random positions of mmap'd token shards. A window never crosses a shard boundary.
// Window k of a run is a pure function of (seed, k), so the whole state is one counter, the
// cursor: save it with a checkpoint and restore it to continue with the very same windows.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "io/token_shard.hpp"

namespace dsk::train {

class TokenWindows {
 public:
  // DataError naming the shard list when no shard holds seq_len + 1 tokens.
  TokenWindows(const std::vector<std::filesystem::path>& shard_paths, std::int64_t seq_len, std::uint64_t seed);

  // Appends the next window (seq_len + 1 ids) to out and advances the cursor.
  void next(std::vector<std::uint32_t>& out);
  // Window k without moving the cursor.
  void window(std::uint64_t k, std::vector<std::uint32_t>& out) const;

  std::uint64_t cursor() const { return cursor_; }
  void set_cursor(std::uint64_t cursor) { cursor_ = cursor; }
  std::uint64_t start_positions() const { return window_starts_.back(); }

 private:
  std::vector<io::ShardReader> shards_;
  std::vector<std::uint64_t> window_starts_;  // prefix sums of each shard's start positions; size shards + 1
  std::int64_t seq_len_;
  std::uint64_t seed_;
  std::uint64_t cursor_ = 0;
};

}  // namespace dsk::train

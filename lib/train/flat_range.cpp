#include "train/flat_range.hpp"

#include "core/error.hpp"

namespace dsk::train {

std::int64_t total_length(std::span<const FlatRange> ranges) {
  std::int64_t total = 0;
  for (const FlatRange& range : ranges) total += range.length;
  return total;
}

std::vector<FlatRange> complement(std::span<const FlatRange> left_out, std::int64_t count) {
  std::vector<FlatRange> out;
  std::int64_t at = 0;
  for (const FlatRange& range : left_out) {
    if (range.begin > at) out.push_back({at, range.begin - at});
    at = range.begin + range.length;
  }
  if (count > at) out.push_back({at, count - at});
  return out;
}

std::int64_t packed_offset(std::span<const FlatRange> ranges, std::int64_t begin, std::int64_t length) {
  std::int64_t before = 0;
  for (const FlatRange& range : ranges) {
    if (range.begin <= begin && begin + length <= range.begin + range.length) return before + (begin - range.begin);
    before += range.length;
  }
  throw InternalError(str("flat elements [", begin, ", ", begin + length, ") are not within one of the kept ranges"));
}

}  // namespace dsk::train

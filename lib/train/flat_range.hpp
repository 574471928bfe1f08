// A range of a flat parameter layout, in elements: what an optimizer, a checkpoint reader or the
// expert ownership (expert_ownership.hpp) says a rank keeps.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace dsk::train {

struct FlatRange {
  std::int64_t begin = 0, length = 0;
};

std::int64_t total_length(std::span<const FlatRange> ranges);
// [0, count) without `left_out` (ascending, disjoint), in order.
std::vector<FlatRange> complement(std::span<const FlatRange> left_out, std::int64_t count);

// Where flat element `begin` and the `length` after it sit in values packed from `ranges`
// (ascending, disjoint: element ranges[0].begin at 0, then the next range's right after);
// InternalError unless one range holds them all.
std::int64_t packed_offset(std::span<const FlatRange> ranges, std::int64_t begin, std::int64_t length);

}  // namespace dsk::train

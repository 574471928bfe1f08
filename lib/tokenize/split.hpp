// The train/validation split: a pure function of the document's number in the input, the
// fraction and a seed, so that it does not depend on thread count, batching, or the text.
#pragma once

#include <cstdint>

namespace dsk::tokenize {

// SplitMix64 finalizer: a good 64-bit mix, the same everywhere.
inline uint64_t mix64(uint64_t value) {
  value += 0x9E3779B97F4A7C15ull;
  value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9ull;
  value = (value ^ (value >> 27)) * 0x94D049BB133111EBull;
  return value ^ (value >> 31);
}

// True when document number `document_index` (0-based, in input order) goes to validation:
// its hash, read as a number in [0, 1), is below val_fraction. 0 sends nothing, 1 everything.
inline bool is_validation_document(uint64_t document_index, double val_fraction, uint64_t seed) {
  if (val_fraction <= 0) return false;
  if (val_fraction >= 1) return true;
  const double unit = static_cast<double>(mix64(document_index ^ mix64(seed)) >> 11) * 0x1.0p-53;
  return unit < val_fraction;
}

}  // namespace dsk::tokenize

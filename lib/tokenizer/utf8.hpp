// UTF-8 checks for encode(): HF tokenizers takes Rust strings, so text must be valid UTF-8.
// replace_invalid_utf8 does what Python's bytes.decode("utf-8", errors="replace") does: each
// maximal subpart of an ill-formed sequence becomes one U+FFFD (Unicode 15, section 3.9).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace dsk::tokenizer {

// Byte offset of the first ill-formed sequence, or nullopt when `text` is valid UTF-8.
std::optional<size_t> first_invalid_utf8(std::string_view text);

std::string replace_invalid_utf8(std::string_view text);

// Length of the UTF-8 sequence starting with `lead` (1 for continuation or invalid bytes).
inline size_t utf8_length(unsigned char lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

}  // namespace dsk::tokenizer

// UTF-8 validity, as the Unicode standard defines it (no overlongs, no surrogates, nothing past
// U+10FFFF). The tokenizer is only ever given valid UTF-8 (HF tokenizers take Rust strings, which
// are valid UTF-8 by construction); dsk-tokenize checks every document first and, by policy,
// skips it, repairs it, or stops.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace dsk::tokenize {

// Byte offset of the first byte of the first ill-formed sequence, or std::string_view::npos.
size_t find_invalid_utf8(std::string_view text);

// Replaces each maximal ill-formed subsequence by U+FFFD (the "substitution of maximal subparts"
// practice of Unicode chapter 3, as Python's errors="replace" and the WHATWG decoder do).
// *replacements, when given, receives how many U+FFFD were inserted.
std::string replace_invalid_utf8(std::string_view text, size_t* replacements = nullptr);

}  // namespace dsk::tokenize

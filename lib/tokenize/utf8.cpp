#include "tokenize/utf8.hpp"

namespace dsk::tokenize {
namespace {

// Length of the well-formed sequence starting at text[at], or 0 when ill-formed; *valid_prefix
// receives how many bytes form a maximal prefix of some well-formed sequence (at least 1), which
// is what one U+FFFD replaces.
size_t sequence_length(std::string_view text, size_t at, size_t* valid_prefix) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(at);
  *valid_prefix = 1;
  if (lead < 0x80) return 1;
  size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;  // the allowed range of the second byte (Table 3-7)
  if (lead >= 0xC2 && lead <= 0xDF) length = 2;
  else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;  // nothing past U+10FFFF
  } else {
    return 0;
  }
  for (size_t i = 1; i < length; ++i) {
    if (at + i >= text.size()) return 0;
    unsigned char next = byte(at + i);
    bool allowed = i == 1 ? (next >= low && next <= high) : (next >= 0x80 && next <= 0xBF);
    if (!allowed) return 0;
    *valid_prefix = i + 1;
  }
  return length;
}

}  // namespace

size_t find_invalid_utf8(std::string_view text) {
  size_t at = 0, prefix = 0;
  while (at < text.size()) {
    // Fast path over ASCII.
    if (static_cast<unsigned char>(text[at]) < 0x80) {
      ++at;
      continue;
    }
    size_t length = sequence_length(text, at, &prefix);
    if (length == 0) return at;
    at += length;
  }
  return std::string_view::npos;
}

std::string replace_invalid_utf8(std::string_view text, size_t* replacements) {
  std::string out;
  out.reserve(text.size());
  size_t count = 0, at = 0, prefix = 0;
  while (at < text.size()) {
    size_t length = sequence_length(text, at, &prefix);
    if (length > 0) {
      out.append(text.substr(at, length));
      at += length;
    } else {
      out.append("\xEF\xBF\xBD");
      ++count;
      at += prefix;
    }
  }
  if (replacements) *replacements = count;
  return out;
}

}  // namespace dsk::tokenize

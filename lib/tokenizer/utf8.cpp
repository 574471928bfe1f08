#include "tokenizer/utf8.hpp"

namespace dsk::tokenizer {
namespace {

// Length of the well-formed prefix of the sequence at text[at]: the whole sequence when it is
// valid (returns {length, true}), else the maximal subpart, at least 1 byte ({length, false}).
std::pair<size_t, bool> scan_sequence(std::string_view text, size_t at) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  unsigned char lead = byte(at);
  if (lead < 0x80) return {1, true};
  size_t need;
  unsigned char low = 0x80, high = 0xBF;  // allowed range of the second byte (Table 3-7)
  if (lead >= 0xC2 && lead <= 0xDF) {
    need = 1;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    need = 2;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    need = 3;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return {1, false};
  }
  for (size_t k = 1; k <= need; ++k) {
    if (at + k >= text.size()) return {k, false};
    unsigned char c = byte(at + k);
    bool ok = k == 1 ? (c >= low && c <= high) : (c >= 0x80 && c <= 0xBF);
    if (!ok) return {k, false};
  }
  return {need + 1, true};
}

}  // namespace

std::optional<size_t> first_invalid_utf8(std::string_view text) {
  for (size_t at = 0; at < text.size();) {
    if (static_cast<unsigned char>(text[at]) < 0x80) {
      ++at;
      continue;
    }
    auto [length, valid] = scan_sequence(text, at);
    if (!valid) return at;
    at += length;
  }
  return std::nullopt;
}

std::string replace_invalid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t at = 0; at < text.size();) {
    auto [length, valid] = scan_sequence(text, at);
    if (valid) {
      out.append(text.substr(at, length));
    } else {
      out.append("\xEF\xBF\xBD");
    }
    at += length;
  }
  return out;
}

}  // namespace dsk::tokenizer

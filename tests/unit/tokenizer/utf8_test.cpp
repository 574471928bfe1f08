// UTF-8 validation and the U+FFFD replacement that must match Python's errors="replace"
// (maximal subparts, Unicode 15 section 3.9; expected strings checked with CPython 3.11).
#include <doctest/doctest.h>

#include "tokenizer/utf8.hpp"

using namespace dsk::tokenizer;

namespace {
const std::string kReplacement = "\xEF\xBF\xBD";
std::string times(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += kReplacement;
  return s;
}
}  // namespace

TEST_CASE("valid UTF-8 passes unchanged") {
  std::string text = "plain ascii, é, 中文, 😀, \x7f";
  CHECK_FALSE(first_invalid_utf8(text).has_value());
  CHECK(replace_invalid_utf8(text) == text);
}

TEST_CASE("the offset of the first ill-formed byte") {
  CHECK(first_invalid_utf8("ab\xff") == 2u);
  CHECK(first_invalid_utf8("日\xe2\x82") == 3u);
  CHECK(first_invalid_utf8("\xc0\xaf") == 0u);
}

TEST_CASE("maximal subparts become one U+FFFD each, as Python's errors=\"replace\"") {
  // b"\xe2\x82".decode(errors="replace") == "\ufffd": a truncated sequence is one subpart.
  CHECK(replace_invalid_utf8("a\xe2\x82z") == "a" + times(1) + "z");
  CHECK(replace_invalid_utf8("\xf0\x9f\x98") == times(1));
  // Overlong, surrogate and > U+10FFFF leads: each byte on its own.
  CHECK(replace_invalid_utf8("\xc0\xaf") == times(2));
  CHECK(replace_invalid_utf8("\xe0\x80\xaf") == times(3));
  CHECK(replace_invalid_utf8("\xed\xa0\x80") == times(3));
  CHECK(replace_invalid_utf8("\xf4\x90\x80\x80") == times(4));
  CHECK(replace_invalid_utf8("\xff\xfe") == times(2));
  // A valid character right after a truncated one survives.
  CHECK(replace_invalid_utf8("\xe2\x82\xe2\x82\xac") == times(1) + "\xe2\x82\xac");
  CHECK_FALSE(first_invalid_utf8(replace_invalid_utf8("\xf8\x88\x80\x80\x80 x \xc3")).has_value());
}

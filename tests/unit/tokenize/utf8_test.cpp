// UTF-8 checking and repair (Unicode's maximal-subpart replacement, as Python does it).
#include <doctest/doctest.h>

#include "tokenize/utf8.hpp"

using namespace dsk::tokenize;

TEST_CASE("valid UTF-8 is valid, whatever the script") {
  CHECK(find_invalid_utf8("") == std::string_view::npos);
  CHECK(find_invalid_utf8("plain ASCII\n") == std::string_view::npos);
  CHECK(find_invalid_utf8("日本語 ελληνικά 🙂 \xF4\x8F\xBF\xBF") == std::string_view::npos);  // U+10FFFF
}

TEST_CASE("ill-formed sequences are found at their first byte") {
  CHECK(find_invalid_utf8("ab\xFF") == 2);
  CHECK(find_invalid_utf8("a\xC0\xAF") == 1);          // overlong "/"
  CHECK(find_invalid_utf8("x\xED\xA0\x80") == 1);      // a surrogate, U+D800
  CHECK(find_invalid_utf8("\xF4\x90\x80\x80") == 0);   // past U+10FFFF
  CHECK(find_invalid_utf8("ok\xE6\x97") == 2);         // cut short at the end
  CHECK(find_invalid_utf8("\x80") == 0);               // a lone continuation byte
}

TEST_CASE("each maximal ill-formed subpart becomes one U+FFFD") {
  size_t count = 0;
  CHECK(replace_invalid_utf8("a\xFF" "b", &count) == "a\xEF\xBF\xBD" "b");
  CHECK(count == 1);
  // E6 97 is a valid prefix cut by "x": one replacement for both bytes.
  CHECK(replace_invalid_utf8("\xE6\x97x", &count) == "\xEF\xBF\xBDx");
  CHECK(count == 1);
  // C0 is never valid: each of C0 and AF is its own subpart.
  CHECK(replace_invalid_utf8("\xC0\xAF", &count) == "\xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(count == 2);
  CHECK(replace_invalid_utf8("fine é", &count) == "fine é");
  CHECK(count == 0);
}

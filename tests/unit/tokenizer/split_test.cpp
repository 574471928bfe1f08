// The Split pre-tokenizer behaviors, on HF's own documented example ("the-final--countdown"
// split on "-"), and ByteLevel's GPT-2 regex with add_prefix_space.
#include <doctest/doctest.h>

#include "core/error.hpp"
#include "tokenizer/pre_tokenizer.hpp"

using namespace dsk::tokenizer;
using nlohmann::json;

namespace {
std::vector<std::string> split(const json& config, std::string_view text) {
  auto pre = PreTokenizer::from_json(dsk::JsonField(config, "test"));
  std::vector<std::string_view> pieces, scratch;
  std::deque<std::string> arena;
  pre.split(text, pieces, scratch, arena);
  return {pieces.begin(), pieces.end()};
}
json dash_split(const char* behavior, bool invert = false) {
  return {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", invert}};
}
using Pieces = std::vector<std::string>;
}  // namespace

TEST_CASE("Split behaviors match HF's documentation") {
  const char* text = "the-final--countdown";
  CHECK(split(dash_split("Removed"), text) == Pieces{"the", "final", "countdown"});
  CHECK(split(dash_split("Isolated"), text) == Pieces{"the", "-", "final", "-", "-", "countdown"});
  CHECK(split(dash_split("MergedWithPrevious"), text) == Pieces{"the-", "final-", "-", "countdown"});
  CHECK(split(dash_split("MergedWithNext"), text) == Pieces{"the", "-final", "-", "-countdown"});
  CHECK(split(dash_split("Contiguous"), text) == Pieces{"the", "-", "final", "--", "countdown"});
}

TEST_CASE("Split with invert keeps what the pattern does not match as the delimiter") {
  CHECK(split(dash_split("Removed", true), "a-b") == Pieces{"-"});
}

TEST_CASE("DeepSeek's digit rule: groups of at most 3, Unicode digits included") {
  json digits = {{"type", "Split"}, {"pattern", {{"Regex", "\\p{N}{1,3}"}}}, {"behavior", "Isolated"}};
  CHECK(split(digits, "x1234567") == Pieces{"x", "123", "456", "7"});
  CHECK(split(digits, "٣٤") == Pieces{"٣٤"});
}

TEST_CASE("ByteLevel with the GPT-2 regex and add_prefix_space") {
  json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  CHECK(split(byte_level, "Hello world's  2024!") == Pieces{" Hello", " world", "'s", " ", " 2024", "!"});
}

TEST_CASE("unsupported pre-tokenizers and bad regexes are DataErrors naming the place") {
  CHECK_THROWS_WITH_AS(split({{"type", "Whitespace"}}, "x"), doctest::Contains("unsupported pre_tokenizer type \"Whitespace\""),
                       dsk::DataError);
  json bad = {{"type", "Sequence"},
              {"pretokenizers", json::array({{{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}}})}};
  CHECK_THROWS_WITH_AS(split(bad, "x"), doctest::Contains("test.pretokenizers[0].pattern"), dsk::DataError);
}

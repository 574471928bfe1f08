// Incremental detokenizing never splits a character; stop strings never reach the client.
#include <doctest/doctest.h>

#include <string>

#include "serve/text_stream.hpp"
#include "tokenizer/tokenizer.hpp"

using namespace dsk::serve;

namespace {

const dsk::tokenizer::Tokenizer& tiny_tokenizer() {
  static auto tokenizer = dsk::tokenizer::Tokenizer::load(DSK_SOURCE_DIR "/tests/fixtures/tokenizer/tiny-gpt2/tokenizer.json");
  return tokenizer;
}

bool valid_utf8_boundaries(const std::string& piece) {
  // No piece starts with a continuation byte or ends inside a character.
  if (piece.empty()) return true;
  if ((static_cast<unsigned char>(piece.front()) & 0xC0) == 0x80) return false;
  size_t i = piece.size();
  int continuation = 0;
  while (i > 0 && (static_cast<unsigned char>(piece[i - 1]) & 0xC0) == 0x80) --i, ++continuation;
  if (i == 0) return false;
  unsigned char lead = static_cast<unsigned char>(piece[i - 1]);
  int expected = lead < 0x80 ? 0 : lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : 1;
  return continuation == expected;
}

// Feeds `pieces` through a filter, returns what was emitted in total.
std::string filter(StopStringFilter& stop, const std::vector<std::string>& pieces, std::vector<std::string>* emitted = nullptr) {
  std::string out;
  for (const std::string& piece : pieces) {
    std::string part = stop.push(piece);
    if (emitted) emitted->push_back(part);
    out += part;
  }
  return out + stop.flush();
}

}  // namespace

TEST_CASE("multi-byte characters are emitted whole, and the text equals decode of all tokens") {
  const auto& tokenizer = tiny_tokenizer();
  std::string text = "caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80 ok";  // café 中文 😀 ok
  std::vector<uint32_t> ids = tokenizer.encode(text);
  REQUIRE(ids.size() > 8);  // byte-level: the CJK and emoji bytes are separate tokens
  Detokenizer detokenizer(tokenizer);
  std::string streamed;
  for (uint32_t id : ids) {
    std::string piece = detokenizer.push(static_cast<int32_t>(id));
    CHECK(valid_utf8_boundaries(piece));
    streamed += piece;
  }
  streamed += detokenizer.flush();
  CHECK(streamed == text);
}

TEST_CASE("an incomplete character at the end flushes as U+FFFD") {
  const auto& tokenizer = tiny_tokenizer();
  std::vector<uint32_t> ids = tokenizer.encode("\xE4\xB8\xAD");
  REQUIRE(ids.size() >= 2);
  Detokenizer detokenizer(tokenizer);
  CHECK(detokenizer.push(static_cast<int32_t>(ids[0])).empty());
  CHECK(detokenizer.flush() == tokenizer.decode({ids[0]}));
}

TEST_CASE("stop strings end the text before them") {
  StopStringFilter stop({"END"});
  CHECK(filter(stop, {"hello ", "wor", "ld E", "N", "D more"}) == "hello world ");
  CHECK(stop.stopped());
  CHECK(stop.matched() == "END");
  CHECK(stop.push("after").empty());
}

TEST_CASE("a possible stop prefix is held back, then released when it is not one") {
  StopStringFilter stop({"\n\n", "STOP"});
  std::vector<std::string> emitted;
  CHECK(filter(stop, {"a\n", "b", "ST", "x"}, &emitted) == "a\nbSTx");
  CHECK(emitted[0] == "a");  // "\n" could start "\n\n"
  CHECK(emitted[1] == "\nb");
  CHECK(emitted[2].empty());  // "ST" could start "STOP"
  CHECK(emitted[3] == "STx");
  CHECK(!stop.stopped());
}

TEST_CASE("the earliest stop string wins; a stop inside one piece") {
  StopStringFilter stop({"world", "lo"});
  CHECK(filter(stop, {"hello world"}) == "hel");
  StopStringFilter none({});
  CHECK(filter(none, {"a", "b"}) == "ab");
}

TEST_CASE("the held text at the end is released") {
  StopStringFilter stop({"STOP"});
  CHECK(filter(stop, {"abc", "ST"}) == "abcST");
}

TEST_CASE("ids past the tokenizer's vocabulary (padding) decode to nothing") {
  const auto& tokenizer = tiny_tokenizer();
  Detokenizer detokenizer(tokenizer);
  CHECK(detokenizer.push(static_cast<int32_t>(tokenizer.vocab_size()) + 3).empty());
  CHECK(detokenizer.push(-1).empty());
  CHECK(detokenizer.flush().empty());
}

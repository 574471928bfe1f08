// Generated tokens to text as it streams: UTF-8-safe incremental detokenizing, then stop strings.
//
// Detokenizer: byte-level BPE tokens can end in the middle of a UTF-8 character (a CJK character
// or an emoji is often two or three tokens). Tokens are held until their bytes end on a character
// boundary, so a chunk never carries half a character (decode would show U+FFFD for it).
//
// StopStringFilter: the text is emitted up to (not including) the first occurrence of any stop
// string. Text that could be the start of a stop string is held back until the next piece shows
// whether it is; so the stop string never reaches the client, not even in part.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dsk::tokenizer {
class Tokenizer;
}

namespace dsk::serve {

class Detokenizer {
 public:
  explicit Detokenizer(const tokenizer::Tokenizer& tokenizer) : tokenizer_(&tokenizer) {}
  // The text that `token` completes (often empty while a character is incomplete).
  std::string push(int32_t token);
  // What is still held at the end of the generation (incomplete bytes decode as U+FFFD).
  std::string flush();

 private:
  const tokenizer::Tokenizer* tokenizer_;
  std::vector<uint32_t> pending_;
};

class StopStringFilter {
 public:
  explicit StopStringFilter(std::vector<std::string> stop_strings) : stops_(std::move(stop_strings)) {}
  // The text that is safe to emit after adding `piece`. Once a stop string is seen, stopped()
  // is true and every later push returns nothing.
  std::string push(const std::string& piece);
  // The held-back text at the end of the generation (when no stop string completed).
  std::string flush();
  bool stopped() const { return stopped_; }
  const std::string& matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
  std::string matched_;
};

}  // namespace dsk::serve

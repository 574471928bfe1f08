// added_tokens of tokenizer.json: strings matched in the raw text before pre-tokenization
// (leftmost, then longest, as HF's Aho-Corasick does), with their lstrip / rstrip / single_word
// rules. Each match becomes its id; the text between matches goes through the BPE.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.hpp"

namespace dsk::tokenizer {

struct AddedToken {
  uint32_t id = 0;
  std::string content;
  bool special = false;
  bool lstrip = false, rstrip = false, single_word = false;
};

// One cut of the text: either an added token (id) spanning [begin, end), or plain text.
struct Segment {
  size_t begin, end;
  bool is_token;
  uint32_t id;
};

class AddedTokens {
 public:
  // `list` is tokenizer.json's "added_tokens" array (null: none).
  static AddedTokens from_json(const JsonField& list);

  // Cuts `text` into segments; special tokens are matched only when `match_special`.
  void split(std::string_view text, bool match_special, std::vector<Segment>& segments) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  bool match_at(std::string_view text, size_t at, bool match_special, const AddedToken*& found) const;

  std::vector<AddedToken> tokens_;
  std::array<std::vector<uint32_t>, 256> by_first_byte_;  // indices into tokens_, longest first
};

}  // namespace dsk::tokenizer

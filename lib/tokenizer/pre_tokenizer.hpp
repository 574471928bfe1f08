// The pre_tokenizer of tokenizer.json: a list of steps (Split with a regex, ByteLevel) that cut
// text into pieces; BPE then runs on each piece on its own. Pieces are views into the caller's
// text, or into `arena` when a step had to add bytes (ByteLevel's add_prefix_space).
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.hpp"

namespace dsk::tokenizer {

class Regex;  // a compiled PCRE2 pattern (JIT, UTF, UCP)

enum class SplitBehavior { isolated, removed, merged_with_previous, merged_with_next, contiguous };

struct SplitStep {
  std::shared_ptr<const Regex> regex;
  SplitBehavior behavior = SplitBehavior::isolated;
  bool invert = false;
};

struct PreTokenizer {
  std::vector<SplitStep> steps;  // a ByteLevel step with use_regex is one more Split (GPT-2 regex)
  // ByteLevel's add_prefix_space, applied to every piece before the steps that follow it.
  bool add_prefix_space = false;
  size_t prefix_space_before_step = 0;
  bool has_byte_level = false;

  // `node` is tokenizer.json's "pre_tokenizer" (null: none).
  static PreTokenizer from_json(const JsonField& node);

  // Cuts `text` (valid UTF-8) into `pieces` (replacing what was there).
  void split(std::string_view text, std::vector<std::string_view>& pieces,
             std::vector<std::string_view>& scratch, std::deque<std::string>& arena) const;
};

}  // namespace dsk::tokenizer

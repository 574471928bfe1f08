#include "tokenizer/pre_tokenizer.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <optional>
#include <tuple>

#include "core/error.hpp"
#include "tokenizer/utf8.hpp"

namespace dsk::tokenizer {

// The GPT-2 pattern that ByteLevel uses when use_regex is true.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class Regex {
 public:
  Regex(const std::string& pattern, const std::string& where) {
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                          PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
    if (!code_) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error_code, message, sizeof message);
      throw DataError(str(where, ": regex /", pattern, "/ at offset ", error_offset, ": ",
                          reinterpret_cast<char*>(message)));
    }
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is absent
  }
  ~Regex() { pcre2_code_free(code_); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Calls on_match(begin, end) for each non-overlapping match in `text`, left to right.
  template <typename OnMatch>
  void for_each_match(std::string_view text, OnMatch on_match) const {
    thread_local std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
        pcre2_match_data_create(1, nullptr), &pcre2_match_data_free);
    auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t at = 0;
    while (at <= text.size()) {
      int found = pcre2_match(code_, subject, text.size(), at, PCRE2_NO_UTF_CHECK, data.get(), nullptr);
      if (found < 0) break;
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
      size_t begin = ovector[0], end = ovector[1];
      if (end == begin) {  // an empty match: HF skips it; step over one character
        if (begin >= text.size()) break;
        at = begin + utf8_length(static_cast<unsigned char>(text[begin]));
        continue;
      }
      on_match(begin, end);
      at = end;
    }
  }

 private:
  pcre2_code* code_ = nullptr;
};

namespace {

SplitBehavior behavior_from(const std::string& name, const std::string& where) {
  if (name == "Isolated") return SplitBehavior::isolated;
  if (name == "Removed") return SplitBehavior::removed;
  if (name == "MergedWithPrevious") return SplitBehavior::merged_with_previous;
  if (name == "MergedWithNext") return SplitBehavior::merged_with_next;
  if (name == "Contiguous") return SplitBehavior::contiguous;
  throw DataError(str(where, ".behavior: unsupported Split behavior \"", name, "\""));
}

// PCRE2 syntax for a literal string pattern.
std::string quote_literal(const std::string& text) { return "\\Q" + text + "\\E"; }

void add_step(PreTokenizer& pre, const JsonField& node) {
  node.object();
  std::string type = node.string_or("type", "");
  if (type == "Split") {
    const JsonField pattern = node.at("pattern").object();
    std::string source;
    if (pattern.has("Regex")) {
      source = pattern.at("Regex").string();
    } else if (pattern.has("String")) {
      source = quote_literal(pattern.at("String").string());
    } else {
      throw DataError(str(pattern.where(), ": expected {\"Regex\": ...} or {\"String\": ...}"));
    }
    SplitStep step{std::make_shared<Regex>(source, pattern.where()),
                   behavior_from(node.string_or("behavior", "Isolated"), node.where()), node.boolean_or("invert", false)};
    pre.steps.push_back(std::move(step));
  } else if (type == "ByteLevel") {
    pre.has_byte_level = true;
    if (node.boolean_or("add_prefix_space", false)) {
      pre.add_prefix_space = true;
      pre.prefix_space_before_step = pre.steps.size();
    }
    if (node.boolean_or("use_regex", true))
      pre.steps.push_back({std::make_shared<Regex>(kGpt2Pattern, node.where()), SplitBehavior::isolated, false});
  } else {
    throw DataError(str(node.where(), ": unsupported pre_tokenizer type \"", type, "\""));
  }
}

// One Split step over one piece: appends the resulting pieces to `out`.
void apply_split(const SplitStep& step, std::string_view piece, std::vector<std::string_view>& out) {
  // (begin, end, is_match) segments covering `piece`, in order.
  thread_local std::vector<std::tuple<size_t, size_t, bool>> segments;
  segments.clear();
  size_t last = 0;
  step.regex->for_each_match(piece, [&](size_t begin, size_t end) {
    if (begin > last) segments.emplace_back(last, begin, step.invert);
    segments.emplace_back(begin, end, !step.invert);
    last = end;
  });
  if (last < piece.size()) segments.emplace_back(last, piece.size(), step.invert);

  auto view = [&](size_t begin, size_t end) { return piece.substr(begin, end - begin); };
  switch (step.behavior) {
    case SplitBehavior::isolated:
      for (auto [b, e, m] : segments) out.push_back(view(b, e));
      break;
    case SplitBehavior::removed:
      for (auto [b, e, m] : segments)
        if (!m) out.push_back(view(b, e));
      break;
    case SplitBehavior::merged_with_previous: {
      // A match joins the piece before it (unless that piece is itself a match).
      bool previous_match = false;
      size_t first = out.size();
      for (auto [b, e, m] : segments) {
        if (m && !previous_match && out.size() > first) {
          out.back() = view(static_cast<size_t>(out.back().data() - piece.data()), e);
        } else {
          out.push_back(view(b, e));
        }
        previous_match = m;
      }
      break;
    }
    case SplitBehavior::merged_with_next: {
      // A match joins the piece after it (unless that piece is itself a match): walk backwards.
      bool next_match = false;
      size_t first = out.size();
      for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
        auto [b, e, m] = *it;
        if (m && !next_match && out.size() > first) {
          size_t end = static_cast<size_t>(out.back().data() - piece.data()) + out.back().size();
          out.back() = view(b, end);
        } else {
          out.push_back(view(b, e));
        }
        next_match = m;
      }
      std::reverse(out.begin() + static_cast<std::ptrdiff_t>(first), out.end());
      break;
    }
    case SplitBehavior::contiguous: {
      // Consecutive matches join into one piece.
      bool previous_match = false;
      size_t first = out.size();
      for (auto [b, e, m] : segments) {
        if (m && previous_match && out.size() > first) {
          out.back() = view(static_cast<size_t>(out.back().data() - piece.data()), e);
        } else {
          out.push_back(view(b, e));
        }
        previous_match = m;
      }
      break;
    }
  }
}

}  // namespace

PreTokenizer PreTokenizer::from_json(const JsonField& node) {
  PreTokenizer pre;
  if (node.json().is_null()) return pre;
  if (node.object().string_or("type", "") == "Sequence") {
    const JsonField list = node.at("pretokenizers");
    for (size_t i = 0; i < list.size(); ++i) add_step(pre, list.item(i));
  } else {
    add_step(pre, node);
  }
  return pre;
}

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& pieces,
                         std::vector<std::string_view>& scratch, std::deque<std::string>& arena) const {
  scratch.clear();
  scratch.push_back(text);
  for (size_t s = 0; s <= steps.size(); ++s) {
    if (add_prefix_space && s == prefix_space_before_step) {
      for (auto& piece : scratch) {
        if (!piece.empty() && piece.front() == ' ') continue;
        arena.push_back(" " + std::string(piece));
        piece = arena.back();
      }
    }
    if (s == steps.size()) break;
    pieces.clear();
    for (auto piece : scratch) apply_split(steps[s], piece, pieces);
    scratch.swap(pieces);
  }
  pieces.clear();
  pieces.insert(pieces.end(), scratch.begin(), scratch.end());
}

}  // namespace dsk::tokenizer

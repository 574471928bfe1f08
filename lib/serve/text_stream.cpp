#include "serve/text_stream.hpp"

#include <algorithm>
#include <string_view>
#include <utility>

#include "tokenizer/tokenizer.hpp"

namespace dsk::serve {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
// A UTF-8 character is at most 4 bytes, so at most 4 byte-level tokens; past that the bytes are
// ill-formed for good and go out as U+FFFD rather than stall the stream.
constexpr size_t kMaxPendingTokens = 4;

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

}  // namespace

std::string Detokenizer::push(int32_t token) {
  // Ids past the tokenizer (a model's vocabulary padded to a round size) decode to nothing.
  if (token < 0 || static_cast<size_t>(token) >= tokenizer_->vocab_size()) return {};
  pending_.push_back(static_cast<uint32_t>(token));
  std::string text = tokenizer_->decode(pending_, /*skip_special_tokens=*/true);
  if (ends_with(text, kReplacement) && pending_.size() < kMaxPendingTokens) return {};
  pending_.clear();
  return text;
}

std::string Detokenizer::flush() {
  if (pending_.empty()) return {};
  std::string text = tokenizer_->decode(pending_, true);
  pending_.clear();
  return text;
}

std::string StopStringFilter::push(const std::string& piece) {
  if (stopped_) return {};
  held_ += piece;
  if (stops_.empty()) return std::exchange(held_, {});
  // The earliest stop string wins (and the longest of those starting at the same place).
  size_t first = std::string::npos;
  for (const std::string& stop : stops_) {
    size_t at = held_.find(stop);
    if (at != std::string::npos && (at < first || (at == first && stop.size() > matched_.size()))) {
      first = at;
      matched_ = stop;
    }
  }
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, first);
    held_.clear();
    return out;
  }
  // Hold the longest suffix that is a proper prefix of some stop string.
  size_t keep = 0;
  for (const std::string& stop : stops_) {
    for (size_t length = std::min(stop.size() - 1, held_.size()); length > keep; --length) {
      if (std::string_view(held_).substr(held_.size() - length) == std::string_view(stop).substr(0, length)) {
        keep = length;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopStringFilter::flush() {
  if (stopped_) return {};
  return std::exchange(held_, {});
}

}  // namespace dsk::serve

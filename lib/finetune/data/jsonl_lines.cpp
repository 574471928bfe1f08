#include "finetune/data/jsonl_lines.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "tokenize/input_chunks.hpp"

namespace dsk::finetune {

JsonlLines::JsonlLines(std::vector<std::string> inputs) : inputs_(std::move(inputs)) {
  if (inputs_.empty()) inputs_.push_back("-");
  if (std::count(inputs_.begin(), inputs_.end(), "-") > 1) throw UsageError("stdin ('-') can be read only once");
}

JsonlLines::~JsonlLines() = default;

bool JsonlLines::open_next() {
  if (next_input_ >= inputs_.size()) return false;
  source_ = tokenize::open_input(inputs_[next_input_++]);
  name_ = source_->name();
  buffer_.clear();
  buffer_at_ = 0;
  line_number_ = 0;
  source_done_ = false;
  return true;
}

bool JsonlLines::fill() {
  if (source_done_) return false;
  buffer_.erase(0, buffer_at_);
  buffer_at_ = 0;
  size_t old_size = buffer_.size();
  buffer_.resize(old_size + (1 << 16));
  size_t got = source_->read(buffer_.data() + old_size, 1 << 16);
  buffer_.resize(old_size + got);
  if (got == 0) source_done_ = true;
  return got > 0;
}

bool JsonlLines::next(JsonlLine& line) {
  while (true) {
    if (!source_ && !open_next()) return false;
    size_t newline = buffer_.find('\n', buffer_at_);
    while (newline == std::string::npos && fill()) newline = buffer_.find('\n', buffer_at_);
    if (newline == std::string::npos && buffer_at_ == buffer_.size()) {
      source_.reset();  // this input is done
      continue;
    }
    size_t end = newline == std::string::npos ? buffer_.size() : newline;
    line.bytes.assign(buffer_, buffer_at_, end - buffer_at_);
    line.input = name_;
    line.number = ++line_number_;
    buffer_at_ = newline == std::string::npos ? buffer_.size() : newline + 1;
    return true;
  }
}

}  // namespace dsk::finetune

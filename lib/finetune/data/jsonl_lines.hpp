// JSONL lines from a list of inputs (paths, "-" for stdin, zstd-compressed or not), one at a
// time, in order, each with "file:line" for messages. Memory is one read buffer and the
// longest line; lines end at "\n" (a "\r" before it is kept, as JSON allows it as whitespace).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/zstd_stream.hpp"

namespace dsk::finetune {

struct JsonlLine {
  std::string bytes;   // without the "\n"
  std::string input;   // path, or "<stdin>"
  uint64_t number = 0; // 1-based line number in its input
  std::string where() const { return input + ":" + std::to_string(number); }
};

class JsonlLines {
 public:
  // No inputs reads stdin; "-" given twice is a UsageError. An input is opened when reached
  // (DataError naming it when it cannot be).
  explicit JsonlLines(std::vector<std::string> inputs);
  ~JsonlLines();

  // The next line (blank lines included; the caller decides); false after the last input.
  bool next(JsonlLine& line);

 private:
  std::vector<std::string> inputs_;
  size_t next_input_ = 0;
  std::unique_ptr<io::ByteSource> source_;
  std::string name_;
  std::string buffer_;
  size_t buffer_at_ = 0;
  uint64_t line_number_ = 0;
  bool source_done_ = false;

  bool open_next();
  bool fill();
};

}  // namespace dsk::finetune

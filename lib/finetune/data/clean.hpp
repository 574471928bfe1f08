// `dsk-finetune clean`: a pipe stage over instruction JSONL (examples.hpp) that drops records a
// fine-tuning run should not see, counting each reason, and passes the rest through byte for
// byte in their input order:
//
//   invalid_utf8   the line is not valid UTF-8
//   invalid_json   not JSON, or not a JSON object
//   bad_fields     an object, but not {"prompt"[, "completion"]}, {"messages"} or {"text"} with the
//                  right types (a message without a string "role", a number as "completion" ...)
//   template_error the tokenizer's chat template refuses the conversation (raise_exception: roles
//                  that do not alternate ...) or cannot tell its assistant turns apart
//   empty          a blank line, or nothing but whitespace to train on (the completion, the
//                  assistant messages, the text; the prompt of an unlabelled example)
//   duplicate      the same normalized example as an earlier record (see normalized_example)
//   too_short      shorter than the minimum length
//   too_long       longer than the maximum length
//
// Lengths are of the text the example trains on (examples.hpp example_text): in tokens when a
// tokenizer is given (its chat template renders "messages"), else in characters (code points).
// Memory is bounded except for the duplicate set: 16 bytes (a 128-bit hash) per kept record.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "chat/chat_template.hpp"
#include "core/record.hpp"
#include "finetune/data/command.hpp"
#include "finetune/data/examples.hpp"
#include "tokenizer/tokenizer.hpp"

namespace dsk::finetune {

enum class DropReason { invalid_utf8, invalid_json, bad_fields, template_error, empty, duplicate, too_short, too_long };
inline constexpr size_t kDropReasons = 8;
std::string drop_reason_name(DropReason reason);

struct CleanCounts {
  uint64_t records = 0;
  uint64_t kept = 0;
  std::array<uint64_t, kDropReasons> dropped{};
  uint64_t dropped_total() const;
};

struct CleanOptions {
  uint64_t min_length = 1;                 // tokens (with a tokenizer) or characters
  std::optional<uint64_t> max_length;      // none: no limit
  bool drop_duplicates = true;
};

// The canonical form of an example for duplicate detection: its kind and training fields only
// (other keys such as ids or sources are ignored), strings with CRLF made LF and surrounding
// whitespace removed, objects with sorted keys.
std::string normalized_example(const Example& example);

// Decides record by record; keeps state (the duplicate set, the counts).
class RecordCleaner {
 public:
  // tokenizer and chat may be null (lengths in characters; messages measured without a template).
  RecordCleaner(CleanOptions options, const tokenizer::Tokenizer* tokenizer, const chat::ChatTemplate* chat);

  // nullopt: keep the line. Counts it either way. `where` names it in debug messages.
  std::optional<DropReason> check(const std::string& line, const std::string& where);
  const CleanCounts& counts() const { return counts_; }

 private:
  CleanOptions options_;
  const tokenizer::Tokenizer* tokenizer_;
  const chat::ChatTemplate* chat_;
  CleanCounts counts_;
  struct HashOf128 {
    size_t operator()(const std::pair<uint64_t, uint64_t>& h) const { return size_t(h.first ^ (h.second * 0x9E3779B97F4A7C15ULL)); }
  };
  std::unordered_set<std::pair<uint64_t, uint64_t>, HashOf128> seen_;

  std::optional<DropReason> classify(const std::string& line, const std::string& where);
  uint64_t length_of(const std::string& text) const;  // tokens or code points
};

// Streams the inputs (paths or "-", .zst or plain) through a RecordCleaner, calling `keep` with
// each kept line (without its newline), in order.
CleanCounts clean_jsonl(const std::vector<std::string>& inputs, RecordCleaner& cleaner,
                        const std::function<void(const std::string&)>& keep);

// The counts as a record (kind: clean_report: path, records, kept, dropped, one count per
// reason, length_unit), written by --report and printed on stdout when -o is given.
Record clean_report(const CleanCounts& counts, const std::string& output, const std::string& length_unit);

// Registers `clean`: dsk-finetune clean [-o FILE] [--tokenizer DIR] [--min-tokens N] [--max-tokens N]
// [--min-chars N] [--max-chars N] [--keep-duplicates] [--report FILE] [FILE...|-]
void add_clean_command(CLI::App& app);

}  // namespace dsk::finetune

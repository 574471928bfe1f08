#include "tokenize/document_reader.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>

#include "core/error.hpp"
#include "core/log.hpp"
#include "tokenize/utf8.hpp"

namespace dsk::tokenize {
namespace {

// Gives back bytes already read (to sniff the format) before the rest of the source.
class PrefixedSource : public io::ByteSource {
 public:
  PrefixedSource(std::string prefix, std::unique_ptr<io::ByteSource> rest)
      : prefix_(std::move(prefix)), rest_(std::move(rest)) {}
  size_t read(char* out, size_t capacity) override {
    if (position_ < prefix_.size()) {
      size_t count = std::min(capacity, prefix_.size() - position_);
      std::memcpy(out, prefix_.data() + position_, count);
      position_ += count;
      return count;
    }
    return rest_->read(out, capacity);
  }
  const std::string& name() const override { return rest_->name(); }

 private:
  std::string prefix_;
  size_t position_ = 0;
  std::unique_ptr<io::ByteSource> rest_;
};

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_blank(const std::string& line) {
  return std::all_of(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r'; });
}

// "line 3, column 7" of byte `offset` in text that starts at line `first_line`.
std::string position_of(const std::string& text, size_t offset, uint64_t first_line, uint64_t& line) {
  line = first_line + std::count(text.begin(), text.begin() + offset, '\n');
  size_t line_start = text.rfind('\n', offset == 0 ? 0 : offset - 1);
  line_start = (line_start == std::string::npos || line_start >= offset) ? 0 : line_start + 1;
  char byte[8];
  std::snprintf(byte, sizeof byte, "0x%02X", static_cast<unsigned char>(text[offset]));
  return str("invalid UTF-8 (byte ", byte, " at column ", offset - line_start + 1, ")");
}

}  // namespace

InputFormat parse_input_format(const std::string& name) {
  if (name == "auto") return InputFormat::automatic;
  if (name == "text") return InputFormat::text;
  if (name == "jsonl") return InputFormat::jsonl;
  throw UsageError(str("input format '", name, "': expected auto, text or jsonl"));
}

TextDocuments parse_text_documents(const std::string& name) {
  if (name == "file") return TextDocuments::file;
  if (name == "paragraph") return TextDocuments::paragraph;
  throw UsageError(str("documents '", name, "': expected file or paragraph"));
}

ErrorPolicy parse_error_policy(const std::string& name) {
  if (name == "skip") return ErrorPolicy::skip;
  if (name == "replace") return ErrorPolicy::replace;
  if (name == "fail") return ErrorPolicy::fail;
  throw UsageError(str("on-error '", name, "': expected skip, replace or fail"));
}

std::string error_policy_name(ErrorPolicy policy) {
  switch (policy) {
    case ErrorPolicy::skip: return "skip";
    case ErrorPolicy::replace: return "replace";
    case ErrorPolicy::fail: return "fail";
  }
  return "?";
}

InputFormat resolve_format(InputFormat requested, const std::string& input) {
  if (requested != InputFormat::automatic) return requested;
  std::string name = input;
  if (ends_with(name, ".zst")) name.resize(name.size() - 4);
  return ends_with(name, ".jsonl") || ends_with(name, ".ndjson") ? InputFormat::jsonl : InputFormat::text;
}

std::unique_ptr<io::ByteSource> open_input(const std::string& path) {
  auto file = std::make_unique<io::FileSource>(path);
  std::string head(4, '\0');
  size_t got = 0;
  while (got < head.size()) {
    size_t count = file->read(head.data() + got, head.size() - got);
    if (count == 0) break;
    got += count;
  }
  head.resize(got);
  std::string name = file->name();
  bool compressed = io::has_zstd_magic(head.data(), head.size());
  auto source = std::make_unique<PrefixedSource>(std::move(head), std::move(file));
  if (compressed) return std::make_unique<io::ZstdReader>(std::move(source), name);
  return source;
}

// ---- LineReader ----

bool LineReader::next(std::string& line) {
  line.clear();
  for (;;) {
    if (position_ == size_) {
      if (ended_) break;
      size_ = source_.read(buffer_.data(), buffer_.size());
      position_ = 0;
      bytes_read_ += size_;
      if (size_ == 0) {
        ended_ = true;
        break;
      }
    }
    const char* start = buffer_.data() + position_;
    const char* newline = static_cast<const char*>(std::memchr(start, '\n', size_ - position_));
    if (newline) {
      line.append(start, newline);
      position_ += (newline - start) + 1;
      ++line_number_;
      return true;
    }
    line.append(start, size_ - position_);
    position_ = size_;
  }
  if (line.empty()) return false;
  ++line_number_;  // a last line without "\n"
  return true;
}

// ---- DocumentReader ----

DocumentReader::DocumentReader(std::vector<std::string> inputs, ReaderOptions options)
    : inputs_(std::move(inputs)), options_(std::move(options)) {
  if (inputs_.empty()) inputs_.push_back("-");
  if (std::count(inputs_.begin(), inputs_.end(), "-") > 1) throw UsageError("stdin ('-') can be read only once");
}

DocumentReader::~DocumentReader() = default;

const std::string& DocumentReader::input_name() const { return source_->name(); }

uint64_t DocumentReader::bytes_read() const { return finished_bytes_ + (lines_ ? lines_->bytes_read() : 0); }

bool DocumentReader::open_next_input() {
  if (lines_) finished_bytes_ += lines_->bytes_read();
  lines_.reset();
  source_.reset();
  if (next_input_ == inputs_.size()) return false;
  const std::string& path = inputs_[next_input_++];
  format_ = resolve_format(options_.format, path);
  source_ = open_input(path);
  lines_ = std::make_unique<LineReader>(*source_);
  whole_file_done_ = false;
  return true;
}

void DocumentReader::report(const std::string& where, const std::string& problem, bool repairable) {
  if (options_.on_error == ErrorPolicy::fail)
    throw DataError(str(where, ": ", problem, " (--on-error skip or replace to go on)"));
  if (reported_ < options_.max_reported) {
    bool repaired = repairable && options_.on_error == ErrorPolicy::replace;
    log_warn(where, ": ", problem, repaired ? "; replaced by U+FFFD" : "; skipped");
  } else if (reported_ == options_.max_reported) {
    log_warn("further input errors are counted but not shown");
  }
  ++reported_;
}

bool DocumentReader::read_whole(Document& document) {
  if (whole_file_done_) return false;
  whole_file_done_ = true;
  document.text.clear();
  std::vector<char> buffer(1 << 16);
  while (size_t count = source_->read(buffer.data(), buffer.size())) {
    document.text.append(buffer.data(), count);
    finished_bytes_ += count;
  }
  return true;
}

bool DocumentReader::read_paragraph(Document& document, uint64_t& first_line) {
  std::string line;
  document.text.clear();
  bool started = false;
  while (lines_->next(line)) {
    if (is_blank(line)) {
      if (started) return true;
      continue;
    }
    if (!started) first_line = lines_->line_number();
    else document.text += '\n';
    document.text += line;
    started = true;
  }
  return started;
}

bool DocumentReader::read_jsonl(Document& document, uint64_t& line_number) {
  std::string line;
  while (lines_->next(line)) {
    if (is_blank(line)) continue;
    line_number = lines_->line_number();
    const std::string where = str(input_name(), ":", line_number);
    ++document_count_;  // a JSONL line is a document, even a bad one
    document.number = document_count_ - 1;
    bool repaired = false;
    size_t bad = find_invalid_utf8(line);
    if (bad != std::string::npos) {
      ++errors_.invalid_utf8;
      uint64_t ignored;
      report(where, position_of(line, bad, line_number, ignored), true);
      if (options_.on_error == ErrorPolicy::skip) {
        ++errors_.skipped;
        continue;
      }
      line = replace_invalid_utf8(line);
      repaired = true;
    }
    std::string problem;
    try {
      nlohmann::json record = nlohmann::json::parse(line);
      auto field = record.is_object() ? record.find(options_.jsonl_field) : record.end();
      if (!record.is_object()) problem = "not a JSON object";
      else if (field == record.end()) problem = str("no field \"", options_.jsonl_field, "\"");
      else if (!field->is_string()) problem = str("field \"", options_.jsonl_field, "\" is not a string");
      else document.text = field->get<std::string>();
    } catch (const nlohmann::json::exception& e) {  // out_of_range too: 1e309 is no double
      std::string message = e.what();
      size_t colon = message.find("parse error");
      problem = "bad JSON: " + (colon == std::string::npos ? message : message.substr(colon));
    }
    if (!problem.empty()) {
      ++errors_.bad_records;
      report(where, problem, false);
      ++errors_.skipped;
      continue;
    }
    errors_.replaced += repaired;
    document.origin = where;
    return true;
  }
  return false;
}

bool DocumentReader::read_raw(Document& document, uint64_t& first_line) {
  first_line = 1;
  if (options_.documents == TextDocuments::file) return read_whole(document);
  return read_paragraph(document, first_line);
}

bool DocumentReader::accept(Document& document, uint64_t first_line) {
  document.number = document_count_++;
  document.origin = str(input_name(), ":", first_line);
  size_t bad = find_invalid_utf8(document.text);
  if (bad == std::string::npos) return true;
  ++errors_.invalid_utf8;
  uint64_t line = first_line;
  std::string problem = position_of(document.text, bad, first_line, line);
  report(str(input_name(), ":", line), problem, true);
  if (options_.on_error == ErrorPolicy::skip) {
    ++errors_.skipped;
    return false;
  }
  document.text = replace_invalid_utf8(document.text);
  ++errors_.replaced;
  return true;
}

bool DocumentReader::next(Document& document) {
  for (;;) {
    if (!source_ && !open_next_input()) return false;
    uint64_t first_line = 1;
    bool found = false;
    if (format_ == InputFormat::jsonl) {
      found = read_jsonl(document, first_line);  // checked and counted inside
    } else if ((found = read_raw(document, first_line))) {
      if (!accept(document, first_line)) continue;
    }
    if (!found) {
      if (!open_next_input()) return false;
      continue;
    }
    if (document.text.empty()) {
      ++errors_.empty;
      continue;
    }
    return true;
  }
}

}  // namespace dsk::tokenize

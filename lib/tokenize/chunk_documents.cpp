#include "tokenize/chunk_documents.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "core/error.hpp"
#include "tokenize/jsonl_field.hpp"
#include "tokenize/utf8.hpp"

namespace dsk::tokenize {
namespace {

bool is_blank(std::string_view line) {
  return std::all_of(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r'; });
}

// "invalid UTF-8 (byte 0xFF at column 7)" for byte `offset` of text that starts at line
// `first_line`; `line` receives the line of that byte.
std::string invalid_utf8_problem(std::string_view text, size_t offset, uint64_t first_line, uint64_t& line) {
  line = first_line + std::count(text.begin(), text.begin() + offset, '\n');
  size_t line_start = text.rfind('\n', offset == 0 ? 0 : offset - 1);
  line_start = (line_start == std::string_view::npos || line_start >= offset) ? 0 : line_start + 1;
  char byte[8];
  std::snprintf(byte, sizeof byte, "0x%02X", static_cast<unsigned char>(text[offset]));
  return str("invalid UTF-8 (byte ", byte, " at column ", offset - line_start + 1, ")");
}

// The lines of a chunk ("\n" removed; a last line without "\n" still counts), with their numbers.
class ChunkLines {
 public:
  explicit ChunkLines(const InputChunk& chunk)
      : at_(chunk.bytes.data()), end_(at_ + chunk.bytes.size()), number_(chunk.first_line - 1) {}
  bool next(std::string_view& line) {
    if (at_ == end_) return false;
    const char* newline = static_cast<const char*>(std::memchr(at_, '\n', end_ - at_));
    const char* line_end = newline ? newline : end_;
    line = std::string_view(at_, line_end - at_);
    at_ = newline ? newline + 1 : end_;
    ++number_;
    return true;
  }
  uint64_t number() const { return number_; }  // of the last line returned

 private:
  const char* at_;
  const char* end_;
  uint64_t number_;
};

class ChunkParser {
 public:
  ChunkParser(const InputChunk& chunk, const ReaderOptions& options) : chunk_(chunk), options_(options) {}

  ChunkDocuments parse() {
    switch (chunk_.layout) {
      case ChunkLayout::jsonl_lines: parse_jsonl(); break;
      case ChunkLayout::paragraphs: parse_paragraphs(); break;
      case ChunkLayout::whole_file: accept(std::string(chunk_.bytes), 1); break;
    }
    return std::move(out_);
  }

 private:
  std::string where(uint64_t line) const { return str(chunk_.input, ":", line); }

  // Under ErrorPolicy::fail a DataError; otherwise a warning for the caller to show in order.
  void report(const std::string& where, const std::string& problem, bool repairable) {
    if (options_.on_error == ErrorPolicy::fail)
      throw DataError(str(where, ": ", problem, " (--on-error skip or replace to go on)"));
    bool repaired = repairable && options_.on_error == ErrorPolicy::replace;
    out_.warnings.push_back(str(where, ": ", problem, repaired ? "; replaced by U+FFFD" : "; skipped"));
  }

  void keep(std::string text, uint64_t number, std::string origin) {
    if (text.empty()) {
      ++out_.errors.empty;
      return;
    }
    out_.documents.push_back(Document{std::move(text), number, std::move(origin)});
  }

  // A text document (a file or a paragraph) starting at `first_line`: checked, then kept.
  void accept(std::string text, uint64_t first_line) {
    const uint64_t number = out_.numbered++;
    size_t bad = find_invalid_utf8(text);
    if (bad != std::string::npos) {
      ++out_.errors.invalid_utf8;
      uint64_t line = first_line;
      std::string problem = invalid_utf8_problem(text, bad, first_line, line);
      report(where(line), problem, true);
      if (options_.on_error == ErrorPolicy::skip) {
        ++out_.errors.skipped;
        return;
      }
      text = replace_invalid_utf8(text);
      ++out_.errors.replaced;
    }
    keep(std::move(text), number, where(first_line));
  }

  void parse_paragraphs() {
    ChunkLines lines(chunk_);
    std::string_view line;
    std::string text;
    uint64_t first_line = 0;
    bool started = false;
    while (lines.next(line)) {
      if (is_blank(line)) {
        if (started) accept(std::move(text), first_line);
        started = false;
        continue;
      }
      if (!started) {
        first_line = lines.number();
        text.clear();
      } else {
        text += '\n';
      }
      text += line;
      started = true;
    }
    if (started) accept(std::move(text), first_line);
  }

  void parse_jsonl() {
    ChunkLines lines(chunk_);
    std::string_view line;
    std::string repaired_line;
    while (lines.next(line)) {
      if (is_blank(line)) continue;
      const uint64_t number = out_.numbered++;  // a JSONL line is a document, even a bad one
      const std::string at = where(lines.number());
      bool repaired = false;
      size_t bad = find_invalid_utf8(line);
      if (bad != std::string_view::npos) {
        ++out_.errors.invalid_utf8;
        uint64_t ignored;
        report(at, invalid_utf8_problem(line, bad, lines.number(), ignored), true);
        if (options_.on_error == ErrorPolicy::skip) {
          ++out_.errors.skipped;
          continue;
        }
        repaired_line = replace_invalid_utf8(line);
        line = repaired_line;
        repaired = true;
      }
      std::string text;
      std::string problem = record_text(line, text);
      if (!problem.empty()) {
        ++out_.errors.bad_records;
        report(at, problem, false);
        ++out_.errors.skipped;
        continue;
      }
      out_.errors.replaced += repaired;
      keep(std::move(text), number, at);
    }
  }

  // The field's string from a JSONL line into `text`, or what is wrong with the line.
  std::string record_text(std::string_view line, std::string& text) const {
    if (extract_jsonl_string_field(line, options_.jsonl_field, text)) return {};
    try {
      nlohmann::json record = nlohmann::json::parse(line);
      auto field = record.is_object() ? record.find(options_.jsonl_field) : record.end();
      if (!record.is_object()) return "not a JSON object";
      if (field == record.end()) return str("no field \"", options_.jsonl_field, "\"");
      if (!field->is_string()) return str("field \"", options_.jsonl_field, "\" is not a string");
      text = field->get<std::string>();
      return {};
    } catch (const nlohmann::json::parse_error& e) {
      std::string message = e.what();
      size_t colon = message.find("parse error");
      return "bad JSON: " + (colon == std::string::npos ? message : message.substr(colon));
    } catch (const nlohmann::json::out_of_range& e) {  // a number beyond a double: 1e400
      std::string message = e.what();
      size_t end_of_id = message.find("] ");
      return "bad JSON: " + (end_of_id == std::string::npos ? message : message.substr(end_of_id + 2));
    }
  }

  const InputChunk& chunk_;
  const ReaderOptions& options_;
  ChunkDocuments out_;
};

}  // namespace

ChunkDocuments chunk_documents(const InputChunk& chunk, const ReaderOptions& options) {
  return ChunkParser(chunk, options).parse();
}

}  // namespace dsk::tokenize

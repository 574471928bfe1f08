// Documents from the inputs of dsk-tokenize, in input order:
//   text, one document per file          (--documents file)
//   text, one per blank-line-separated block (--documents paragraph; lines joined by "\n")
//   JSONL, one per line, the string under a named top-level field (--jsonl-field text)
// Each input is a path or "-" (stdin); zstd-compressed input (.zst, or any input that starts
// with the zstd magic) is decompressed as it is read.
//
// Every document's text is checked to be valid UTF-8, and every JSONL line to be a JSON object
// with a string in the field. A bad one is counted, reported on stderr as "file:line: ...", and
// then, by ErrorPolicy: skipped; repaired (ill-formed bytes become U+FFFD; a bad JSONL line
// cannot be repaired and is skipped); or a DataError (exit 3). Empty documents are dropped and counted.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/zstd_stream.hpp"

namespace dsk::tokenize {

enum class InputFormat { automatic, text, jsonl };
enum class TextDocuments { file, paragraph };
enum class ErrorPolicy { skip, replace, fail };

InputFormat parse_input_format(const std::string& name);      // auto, text, jsonl
TextDocuments parse_text_documents(const std::string& name);  // file, paragraph
ErrorPolicy parse_error_policy(const std::string& name);      // skip, replace, fail
std::string error_policy_name(ErrorPolicy policy);

// automatic: JSONL for names ending .jsonl or .ndjson (before any .zst), else text; stdin is text.
InputFormat resolve_format(InputFormat requested, const std::string& input);

struct ReaderOptions {
  InputFormat format = InputFormat::automatic;
  TextDocuments documents = TextDocuments::file;
  std::string jsonl_field = "text";
  ErrorPolicy on_error = ErrorPolicy::fail;
  int max_reported = 20;  // error lines printed on stderr before they are only counted
};

struct Document {
  std::string text;
  uint64_t number = 0;  // 0-based, in input order, counting every document read (dropped ones too)
  std::string origin;   // "file:line" where it starts
};

struct InputErrorCounts {
  uint64_t invalid_utf8 = 0;  // documents (JSONL: lines) with ill-formed UTF-8
  uint64_t bad_records = 0;   // JSONL lines that are not an object with a string in the field
  uint64_t skipped = 0;       // documents dropped for either
  uint64_t replaced = 0;      // documents kept with U+FFFD in place of ill-formed bytes
  uint64_t empty = 0;         // empty documents, dropped (not an error)
};

// Opens a path or "-" for reading, decompressing when the bytes start with the zstd magic.
std::unique_ptr<io::ByteSource> open_input(const std::string& path);

// Splits a byte stream into lines ("\n" removed; a final line without "\n" still counts).
class LineReader {
 public:
  explicit LineReader(io::ByteSource& source) : source_(source), buffer_(1 << 16) {}
  bool next(std::string& line);
  uint64_t line_number() const { return line_number_; }  // of the last line returned, 1-based
  uint64_t bytes_read() const { return bytes_read_; }

 private:
  io::ByteSource& source_;
  std::vector<char> buffer_;
  size_t position_ = 0, size_ = 0;
  bool ended_ = false;
  uint64_t line_number_ = 0;
  uint64_t bytes_read_ = 0;
};

class DocumentReader {
 public:
  DocumentReader(std::vector<std::string> inputs, ReaderOptions options);
  ~DocumentReader();

  // The next document to tokenize; false after the last input.
  bool next(Document& document);
  const InputErrorCounts& errors() const { return errors_; }
  uint64_t bytes_read() const;  // of all inputs so far, after decompression

 private:
  bool open_next_input();
  bool read_raw(Document& document, uint64_t& line);  // one document as it is in the input
  bool read_jsonl(Document& document, uint64_t& line);
  bool read_paragraph(Document& document, uint64_t& line);
  bool read_whole(Document& document);
  bool accept(Document& document, uint64_t first_line);
  // Under ErrorPolicy::fail a DataError; otherwise a warning (the first max_reported of them).
  void report(const std::string& where, const std::string& problem, bool repairable);
  const std::string& input_name() const;

  std::vector<std::string> inputs_;
  ReaderOptions options_;
  size_t next_input_ = 0;
  InputFormat format_ = InputFormat::text;
  std::unique_ptr<io::ByteSource> source_;
  std::unique_ptr<LineReader> lines_;
  bool whole_file_done_ = false;
  uint64_t document_count_ = 0;
  uint64_t finished_bytes_ = 0;
  int reported_ = 0;
  InputErrorCounts errors_;
};

}  // namespace dsk::tokenize

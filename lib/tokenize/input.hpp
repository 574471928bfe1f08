// What dsk-tokenize reads, in words shared by its reading stages (input_chunks.hpp cuts the
// inputs, chunk_documents.hpp turns a cut into documents, document_reader.hpp does both in turn):
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
#include <string>

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

  InputErrorCounts& operator+=(const InputErrorCounts& other);
};

}  // namespace dsk::tokenize

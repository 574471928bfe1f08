#include "tokenize/input.hpp"

#include "core/error.hpp"

namespace dsk::tokenize {
namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
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

InputErrorCounts& InputErrorCounts::operator+=(const InputErrorCounts& other) {
  invalid_utf8 += other.invalid_utf8;
  bad_records += other.bad_records;
  skipped += other.skipped;
  replaced += other.replaced;
  empty += other.empty;
  return *this;
}

}  // namespace dsk::tokenize

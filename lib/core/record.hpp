// Records: the small flat YAML documents that tools print on stdout to describe what they
// produced, and read from stdin where a path argument is "-" (../shared/DESIGN.md):
//
//   kind: checkpoint
//   path: runs/tiny/checkpoints/step-000500
//   step: 500
//
// Keys keep their insertion order. Values are scalars (strings, integers, numbers, booleans).
// Strings are UTF-8, as YAML is: other bytes (a Latin-1 file name) survive printing only in a
// string without control characters, which is written unquoted.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dsk {

class Record {
 public:
  explicit Record(std::string kind);

  Record& set(const std::string& key, const std::string& value);
  Record& set(const std::string& key, const char* value) { return set(key, std::string(value)); }
  Record& set(const std::string& key, int64_t value);
  Record& set(const std::string& key, uint64_t value);
  Record& set(const std::string& key, int value) { return set(key, static_cast<int64_t>(value)); }
  Record& set(const std::string& key, double value);
  Record& set(const std::string& key, bool value);

  const std::string& kind() const { return kind_; }
  std::optional<std::string> get(const std::string& key) const;
  // Like get(), but a DataError naming the record's source when the key is missing.
  std::string require(const std::string& key) const;
  const std::vector<std::pair<std::string, std::string>>& fields() const { return fields_; }

  // The YAML text, starting with "kind:".
  std::string to_yaml() const;
  // Writes "---\n" + to_yaml() to stdout and flushes, so a pipe reader sees it at once.
  void print() const;

  // Parses one record (a flat YAML mapping with a "kind" key).
  static Record parse(std::string_view text, const std::string& source);
  // Reads all of stdin and returns the last record in it (a stream may hold several documents).
  // No record there (empty, not YAML, no mapping with 'kind') is a UsageError, as a record of
  // the wrong kind is in resolve_artifact_path(): either way the pipe is wired wrong (exit 2).
  static Record read_stdin();
  // The same from text; `source` names it in errors ("<stdin>").
  static Record parse_last(std::string_view text, const std::string& source);

 private:
  std::string kind_;
  std::vector<std::pair<std::string, std::string>> fields_;  // without "kind"
  std::string source_ = "<record>";
};

// Resolves a tool's path argument: a path is returned as it is; "-" reads a record from stdin,
// checks its kind is one of `accepted_kinds` and returns its "path" (the record is stored in
// *record_out when given). A record of another kind is a UsageError naming both.
std::string resolve_artifact_path(const std::string& argument, const std::vector<std::string>& accepted_kinds,
                                  Record* record_out = nullptr);

}  // namespace dsk

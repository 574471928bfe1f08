#include "core/record.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <iostream>
#include <iterator>

#include "core/error.hpp"
#include "core/yaml_string.hpp"

namespace dsk {

Record::Record(std::string kind) : kind_(std::move(kind)) {}

Record& Record::set(const std::string& key, const std::string& value) {
  if (key == "kind") {
    kind_ = value;
    return *this;
  }
  for (auto& field : fields_)
    if (field.first == key) {
      field.second = value;
      return *this;
    }
  fields_.emplace_back(key, value);
  return *this;
}

Record& Record::set(const std::string& key, int64_t value) { return set(key, std::to_string(value)); }
Record& Record::set(const std::string& key, uint64_t value) { return set(key, std::to_string(value)); }
Record& Record::set(const std::string& key, bool value) { return set(key, std::string(value ? "true" : "false")); }

Record& Record::set(const std::string& key, double value) {
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return set(key, std::string(buffer, result.ptr));
}

std::optional<std::string> Record::get(const std::string& key) const {
  if (key == "kind") return kind_;
  for (const auto& field : fields_)
    if (field.first == key) return field.second;
  return std::nullopt;
}

std::string Record::require(const std::string& key) const {
  auto value = get(key);
  if (!value) throw DataError(str(source_, ": the ", kind_, " record has no '", key, "'"));
  return *value;
}

std::string Record::to_yaml() const {
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "kind" << YAML::Value;
  emit_string(out, kind_);
  for (const auto& [key, value] : fields_) {
    out << YAML::Key;
    emit_string(out, key);
    out << YAML::Value;
    // Numbers and booleans were stored as their text; emit them plain so they read back typed.
    bool plain = !value.empty() && (value.find_first_not_of("0123456789.-+eE") == std::string::npos ||
                                    value == "true" || value == "false");
    if (plain) out << YAML::Auto << value;
    else emit_string(out, value);
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

void Record::print() const {
  std::string text = "---\n" + to_yaml();
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

Record Record::parse(std::string_view text, const std::string& source) {
  YAML::Node node;
  try {
    node = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    throw DataError(str(source, ":", e.mark.line + 1, ": not a YAML record: ", e.msg));
  }
  if (!node.IsMap() || !node["kind"]) throw DataError(str(source, ": expected a record (a YAML mapping with 'kind')"));
  if (!node["kind"].IsScalar()) throw DataError(str(source, ": the record's 'kind' must be a plain word"));
  Record record(node["kind"].Scalar());
  record.source_ = source;
  for (const auto& entry : node) {
    if (!entry.first.IsScalar()) throw DataError(str(source, ": a record's keys must be plain names"));
    std::string key = entry.first.Scalar();
    if (key == "kind") continue;
    if (!entry.second.IsScalar() && !entry.second.IsNull())
      throw DataError(str(source, ": record field '", key, "' must be a scalar"));
    record.set(key, entry.second.IsNull() ? std::string() : entry.second.Scalar());
  }
  return record;
}

Record Record::read_stdin() {
  std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  return parse_last(text, "<stdin>");
}

namespace {

// "<stdin>" reads as "stdin" in a sentence.
std::string display_name(const std::string& source) { return source == "<stdin>" ? "stdin" : source; }

bool starts_document(std::string_view line) {
  return line.starts_with("---") && (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r');
}

// The documents of a YAML stream, each loaded on its own, cut at the lines that start one
// ("---", as YAML forbids such a line inside a document). Not YAML::LoadAll: yaml-cpp 0.7's loops
// without end, allocating, on some malformed streams (",\nkind:"; jbeder/yaml-cpp#1319).
std::vector<YAML::Node> load_documents(std::string_view text, const std::string& source) {
  std::vector<YAML::Node> documents;
  size_t begin = 0, begin_line = 0, line = 0;
  auto load = [&](size_t end) {
    try {
      documents.push_back(YAML::Load(std::string(text.substr(begin, end - begin))));
    } catch (const YAML::Exception& e) {
      // One rule for stdin (dsk(7)): no usable record where one is expected is a usage error.
      throw UsageError(str("expected a record on ", display_name(source), " (a YAML mapping with 'kind'), got text "
                           "that is not YAML (", source, ":", begin_line + e.mark.line + 1, ": ", e.msg, ")"));
    }
  };
  for (size_t at = 0; at < text.size(); ++line) {
    size_t next = std::min(text.find('\n', at), text.size());
    if (at > begin && starts_document(text.substr(at, next - at))) {
      load(at);
      begin = at, begin_line = line;
    }
    at = next + 1;
  }
  load(text.size());
  return documents;
}

}  // namespace

Record Record::parse_last(std::string_view text, const std::string& source) {
  std::vector<YAML::Node> documents = load_documents(text, source);
  for (auto it = documents.rbegin(); it != documents.rend(); ++it) {
    if (it->IsMap() && (*it)["kind"]) {
      YAML::Emitter out;
      out << *it;
      return parse(out.c_str(), source);
    }
  }
  throw UsageError(str("expected a record on ", display_name(source), " (a YAML mapping with 'kind'), got ",
                       text.empty() ? "nothing" : "none"));
}

std::string resolve_artifact_path(const std::string& argument, const std::vector<std::string>& accepted_kinds,
                                  Record* record_out) {
  if (argument != "-") return argument;
  Record record = Record::read_stdin();
  bool accepted = accepted_kinds.empty();
  for (const auto& kind : accepted_kinds) accepted = accepted || record.kind() == kind;
  if (!accepted) {
    std::string expected;
    for (const auto& kind : accepted_kinds) expected += (expected.empty() ? "" : " or ") + kind;
    throw UsageError(str("the record on stdin is a ", record.kind(), ", expected a ", expected));
  }
  std::string path = record.require("path");
  if (record_out) *record_out = record;
  return path;
}

}  // namespace dsk

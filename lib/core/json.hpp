// JSON from outside (tokenizer.json, config.json, traces, answers): parsing that turns every
// failure into a DataError naming the place, and typed reads that name the field.
//
//   nlohmann::json root = parse_json(text, "tokenizer.json");
//   JsonField model = JsonField(root, "tokenizer.json").at("model");      // "tokenizer.json.model"
//   std::string type = model.string_or("type", "BPE");                  // DataError: "...model.type: expected a string, got number"
//
// Nesting is limited to kMaxJsonDepth: nlohmann parses iteratively, but copying, comparing and
// printing a value recurse, so a document nested 100,000 deep would overflow the stack later.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace dsk {

inline constexpr int kMaxJsonDepth = 256;  // libxml2's default limit too; real files nest < 10

// DataError "<where>: not valid JSON (...)" for a syntax error, a number out of double range
// (1e309) or nesting deeper than kMaxJsonDepth.
nlohmann::json parse_json(std::string_view text, const std::string& where);
// parse_json's depth check alone, for parses that stream (nlohmann's sax_parse).
void check_json_depth(std::string_view text, const std::string& where);

// "an integer", "a number", "a string", "a boolean", "an array", "an object" or "null", for
// messages such as "expected a string, got an integer".
const char* json_type_name(const nlohmann::json& value);

// A value as JSON text for an error message: at most 80 characters, bytes that are not UTF-8
// replaced (dump() would throw on them; a YAML model.config can hold them).
std::string json_excerpt(const nlohmann::json& value);

// A JSON value and where it is ("config.json.rope_scaling", "tokenizer.json.added_tokens[3]").
// Reads check the type and throw DataError naming the place; an absent or null key takes the
// fallback of the *_or reads.
class JsonField {
 public:
  JsonField(const nlohmann::json& value, std::string where) : value_(&value), where_(std::move(where)) {}

  const nlohmann::json& json() const { return *value_; }
  const std::string& where() const { return where_; }

  bool has(const char* key) const;            // an object holding key with a non-null value
  JsonField at(const char* key) const;        // DataError when absent or null
  JsonField at_or_null(const char* key) const;  // a null value when absent (or not an object)
  JsonField item(size_t index) const;         // DataError when not an array or out of range
  size_t size() const;                        // elements of an array (DataError for anything else)
  JsonField object() const;                   // itself; DataError unless an object
  JsonField array() const;                    // itself; DataError unless an array

  std::string string() const;
  bool boolean() const;
  // A non-negative integer not above max ("1e3" and 2.0 are not integers here).
  uint64_t unsigned_integer(uint64_t max) const;

  std::string string_or(const char* key, const std::string& fallback) const;
  bool boolean_or(const char* key, bool fallback) const;

  [[noreturn]] void fail(const std::string& expectation) const;

 private:
  const nlohmann::json* value_;
  std::string where_;
};

}  // namespace dsk

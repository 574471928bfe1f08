#include "core/json.hpp"

#include "core/error.hpp"

namespace dsk {
using json = nlohmann::json;

// The deepest nesting of [ and { outside strings. Malformed text may be miscounted; the parser
// reports it anyway.
void check_json_depth(std::string_view text, const std::string& where) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t at = 0; at < text.size(); ++at) {
    char c = text[at];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        throw DataError(str(where, ": not valid JSON (nested deeper than ", kMaxJsonDepth, " levels at byte ", at, ")"));
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

const char* json_type_name(const json& value) {
  if (value.is_number_integer()) return "an integer";
  if (value.is_number()) return "a number";
  if (value.is_string()) return "a string";
  if (value.is_boolean()) return "a boolean";
  if (value.is_array()) return "an array";
  if (value.is_object()) return "an object";
  return "null";
}

json parse_json(std::string_view text, const std::string& where) {
  check_json_depth(text, where);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for 1e309
    throw DataError(str(where, ": not valid JSON (", e.what(), ")"));
  }
}

std::string json_excerpt(const json& value) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  return text.size() > 80 ? text.substr(0, 77) + "..." : text;
}

void JsonField::fail(const std::string& expectation) const {
  throw DataError(str(where_, ": expected ", expectation, ", got ", json_type_name(*value_)));
}

bool JsonField::has(const char* key) const {
  if (!value_->is_object()) return false;
  auto found = value_->find(key);
  return found != value_->end() && !found->is_null();
}

JsonField JsonField::at(const char* key) const {
  object();
  if (!has(key)) throw DataError(str(where_, ".", key, ": missing"));
  return JsonField(value_->at(key), str(where_, ".", key));
}

JsonField JsonField::at_or_null(const char* key) const {
  static const nlohmann::json null_value;
  if (!value_->is_object()) return JsonField(null_value, str(where_, ".", key));
  auto found = value_->find(key);
  return JsonField(found == value_->end() ? null_value : *found, str(where_, ".", key));
}

JsonField JsonField::item(size_t index) const {
  if (index >= size()) throw DataError(str(where_, ": has no element ", index));
  return JsonField((*value_)[index], str(where_, "[", index, "]"));
}

size_t JsonField::size() const { return array().json().size(); }

JsonField JsonField::object() const {
  if (!value_->is_object()) fail("an object");
  return *this;
}

JsonField JsonField::array() const {
  if (!value_->is_array()) fail("an array");
  return *this;
}

std::string JsonField::string() const {
  if (!value_->is_string()) fail("a string");
  return value_->get<std::string>();
}

bool JsonField::boolean() const {
  if (!value_->is_boolean()) fail("true or false");
  return value_->get<bool>();
}

uint64_t JsonField::unsigned_integer(uint64_t max) const {
  if (!value_->is_number_unsigned() || value_->get<uint64_t>() > max)
    throw DataError(str(where_, ": expected an integer from 0 to ", max, ", got ", json_excerpt(*value_)));
  return value_->get<uint64_t>();
}

std::string JsonField::string_or(const char* key, const std::string& fallback) const {
  return has(key) ? at(key).string() : fallback;
}

bool JsonField::boolean_or(const char* key, bool fallback) const { return has(key) ? at(key).boolean() : fallback; }

}  // namespace dsk

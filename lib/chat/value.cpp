#include "chat/value.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "chat/eval_error.hpp"

namespace dsk::chat {

const Value* Dict::find(const std::string& key) const {
  for (const auto& [k, v] : items_)
    if (k == key) return &v;
  return nullptr;
}

Dict::Dict() = default;
Dict::Dict(std::vector<std::pair<std::string, Value>> items) : items_(std::move(items)) {}
size_t Dict::size() const { return items_.size(); }

void Dict::set(const std::string& key, Value value) {
  for (auto& [k, v] : items_)
    if (k == key) {
      v = std::move(value);
      return;
    }
  items_.emplace_back(key, std::move(value));
}

double Value::numeric() const {
  switch (kind()) {
    case Kind::boolean: return as_bool() ? 1.0 : 0.0;
    case Kind::integer: return double(as_int());
    default: return as_double();
  }
}

bool Value::truthy() const {
  switch (kind()) {
    case Kind::undefined:
    case Kind::none: return false;
    case Kind::boolean: return as_bool();
    case Kind::integer: return as_int() != 0;
    case Kind::number: return as_double() != 0.0;
    case Kind::string: return !as_string().empty();
    case Kind::list: return !as_list().empty();
    case Kind::dict: return as_dict().size() != 0;
    default: return true;
  }
}

std::string Value::type_name() const {
  switch (kind()) {
    case Kind::undefined: return "Undefined";
    case Kind::none: return "NoneType";
    case Kind::boolean: return "bool";
    case Kind::integer: return "int";
    case Kind::number: return "float";
    case Kind::string: return "str";
    case Kind::list: return "list";
    case Kind::dict: return "dict";
    case Kind::name_space: return "Namespace";
    case Kind::callable: return "function";
  }
  return "object";
}

std::string python_float_repr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  // Shortest round-trip digits in scientific form, then Python's layout: positional when the
  // exponent is in [-4, 16), else d.ddde+XX (at least two exponent digits).
  char buffer[64];
  auto end = std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::scientific).ptr;
  std::string sci(buffer, end);
  size_t e = sci.find('e');
  int exponent = std::stoi(sci.substr(e + 1));
  std::string mantissa = sci.substr(0, e);
  bool negative = mantissa[0] == '-';
  if (negative) mantissa.erase(0, 1);
  std::string digits;
  for (char c : mantissa)
    if (c != '.') digits += c;
  std::string out = negative ? "-" : "";
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) {
      out += "0." + std::string(size_t(-exponent - 1), '0') + digits;
    } else if (size_t(exponent) + 1 >= digits.size()) {
      out += digits + std::string(size_t(exponent) + 1 - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, size_t(exponent) + 1) + "." + digits.substr(size_t(exponent) + 1);
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  char exp_text[16];
  std::snprintf(exp_text, sizeof exp_text, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
  return out + exp_text;
}

namespace {

std::string python_string_repr(const std::string& s) {
  bool has_single = s.find('\'') != std::string::npos, has_double = s.find('"') != std::string::npos;
  char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (unsigned char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == quote) out += std::string("\\") + char(c);
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else out += char(c);
  }
  return out + quote;
}

}  // namespace

std::string Value::str() const {
  switch (kind()) {
    case Kind::undefined: return "";
    case Kind::string: return as_string();
    default: return repr();
  }
}

std::string Value::repr() const {
  switch (kind()) {
    case Kind::undefined: return "Undefined";
    case Kind::none: return "None";
    case Kind::boolean: return as_bool() ? "True" : "False";
    case Kind::integer: return std::to_string(as_int());
    case Kind::number: return python_float_repr(as_double());
    case Kind::string: return python_string_repr(as_string());
    case Kind::list: {
      std::string out = "[";
      for (size_t i = 0; i < as_list().size(); ++i) out += (i ? ", " : "") + as_list()[i].repr();
      return out + "]";
    }
    case Kind::dict: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, v] : as_dict().items()) {
        out += (first ? "" : ", ") + python_string_repr(k) + ": " + v.repr();
        first = false;
      }
      return out + "}";
    }
    case Kind::name_space: {
      std::string out = "<Namespace {";
      bool first = true;
      for (const auto& [k, v] : as_namespace().attributes->items()) {
        out += (first ? "" : ", ") + python_string_repr(k) + ": " + v.repr();
        first = false;
      }
      return out + "}>";
    }
    case Kind::callable: return "<function " + as_callable().name + ">";
  }
  return "";
}

bool operator==(const Value& a, const Value& b) {
  using Kind = Value::Kind;
  if (a.is_number() && b.is_number()) {
    if (a.kind() != Kind::number && b.kind() != Kind::number) {
      auto as_integer = [](const Value& v) { return v.kind() == Kind::boolean ? int64_t(v.as_bool()) : v.as_int(); };
      return as_integer(a) == as_integer(b);
    }
    return a.numeric() == b.numeric();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::undefined:
    case Kind::none: return true;
    case Kind::string: return a.as_string() == b.as_string();
    case Kind::list: return a.as_list() == b.as_list();
    case Kind::dict: {
      if (a.as_dict().size() != b.as_dict().size()) return false;
      for (const auto& [k, v] : a.as_dict().items()) {
        const Value* other = b.as_dict().find(k);
        if (!other || !(*other == v)) return false;
      }
      return true;
    }
    case Kind::name_space: return a.as_namespace().attributes == b.as_namespace().attributes;
    case Kind::callable: return &a.as_callable() == &b.as_callable();
    default: return false;
  }
}

namespace {

template <typename Json>
Value value_from_json(const Json& json) {
  switch (json.type()) {
    case nlohmann::json::value_t::null: return Value();
    case nlohmann::json::value_t::boolean: return Value(json.template get<bool>());
    case nlohmann::json::value_t::number_integer: return Value(json.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      uint64_t u = json.template get<uint64_t>();
      if (u > uint64_t(INT64_MAX)) return Value(double(u));
      return Value(int64_t(u));
    }
    case nlohmann::json::value_t::number_float: return Value(json.template get<double>());
    case nlohmann::json::value_t::string: return Value(json.template get<std::string>());
    case nlohmann::json::value_t::array: {
      List list;
      list.reserve(json.size());
      for (const auto& item : json) list.push_back(value_from_json(item));
      return Value(std::move(list));
    }
    case nlohmann::json::value_t::object: {
      Dict dict;
      for (auto it = json.begin(); it != json.end(); ++it) dict.set(it.key(), value_from_json(it.value()));
      return Value(std::move(dict));
    }
    default: return Value();
  }
}

void append_json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      default: break;
    }
    char hex[16];
    if (c < 0x20) {
      std::snprintf(hex, sizeof hex, "\\u%04x", c);
      out += hex;
    } else if (c >= 0x80 && ensure_ascii) {
      size_t length = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
      std::vector<uint32_t> point = decode_code_points(s.substr(i, length));
      i += length - 1;
      uint32_t cp = point.empty() ? 0xFFFD : point[0];
      if (cp >= 0x10000) {
        cp -= 0x10000;
        std::snprintf(hex, sizeof hex, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
      } else {
        std::snprintf(hex, sizeof hex, "\\u%04x", cp);
      }
      out += hex;
    } else {
      out += char(c);
    }
  }
  out += '"';
}

struct JsonWriter {
  const JsonDumpOptions& options;
  std::string item_separator, key_separator, indent_unit;
  bool indented;

  explicit JsonWriter(const JsonDumpOptions& o) : options(o) {
    indented = o.indent >= 0 || o.indent_text.has_value();
    indent_unit = o.indent_text ? *o.indent_text : std::string(size_t(std::max(o.indent, 0)), ' ');
    item_separator = indented ? "," : ", ";
    key_separator = ": ";
    if (o.separators) std::tie(item_separator, key_separator) = *o.separators;
  }

  void newline(std::string& out, int depth) const {
    if (!indented) return;
    out += '\n';
    for (int i = 0; i < depth; ++i) out += indent_unit;
  }

  void write(std::string& out, const Value& v, int depth) const {
    using Kind = Value::Kind;
    switch (v.kind()) {
      case Kind::none: out += "null"; return;
      case Kind::boolean: out += v.as_bool() ? "true" : "false"; return;
      case Kind::integer: out += std::to_string(v.as_int()); return;
      case Kind::number: {
        double d = v.as_double();
        out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity") : python_float_repr(d);
        return;
      }
      case Kind::string: append_json_string(out, v.as_string(), options.ensure_ascii); return;
      case Kind::list: {
        const List& list = v.as_list();
        if (list.empty()) { out += "[]"; return; }
        out += '[';
        for (size_t i = 0; i < list.size(); ++i) {
          if (i) out += item_separator;
          newline(out, depth + 1);
          write(out, list[i], depth + 1);
        }
        newline(out, depth);
        out += ']';
        return;
      }
      case Kind::dict: {
        auto items = v.as_dict().items();
        if (items.empty()) { out += "{}"; return; }
        if (options.sort_keys)
          std::stable_sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        out += '{';
        for (size_t i = 0; i < items.size(); ++i) {
          if (i) out += item_separator;
          newline(out, depth + 1);
          append_json_string(out, items[i].first, options.ensure_ascii);
          out += key_separator;
          write(out, items[i].second, depth + 1);
        }
        newline(out, depth);
        out += '}';
        return;
      }
      default:
        throw EvalError("Object of type " + v.type_name() + " is not JSON serializable");
    }
  }
};

}  // namespace

Value Value::from_json(const nlohmann::ordered_json& json) { return value_from_json(json); }
Value Value::from_json(const nlohmann::json& json) { return value_from_json(json); }

std::string python_json_dumps(const Value& value, const JsonDumpOptions& options) {
  std::string out;
  JsonWriter(options).write(out, value, 0);
  return out;
}

std::vector<uint32_t> decode_code_points(const std::string& text) {
  std::vector<uint32_t> points;
  points.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    size_t length = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (length == 0 || i + length > text.size()) {
      points.push_back(c);  // an invalid byte counts as one character
      ++i;
      continue;
    }
    uint32_t cp = length == 1 ? c : length == 2 ? (c & 0x1F) : length == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < length; ++k) cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    points.push_back(cp);
    i += length;
  }
  return points;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

std::string encode_code_points(const std::vector<uint32_t>& points, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end && i < points.size(); ++i) append_utf8(out, points[i]);
  return out;
}

bool python_isspace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

}  // namespace dsk::chat

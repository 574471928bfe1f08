// The values a chat template computes with, behaving as Python's do under Jinja2: none, bool,
// int, float, str, list, dict (insertion-ordered, as Python's), Jinja's namespace() and
// Undefined, and callables (macros, builtins, bound methods).
//
// Conventions a reader must know:
// - Strings are UTF-8; length, indexing and slicing count code points, as Python's str does.
// - Strings, lists and dicts are immutable once built (the ImmutableSandboxedEnvironment transformers
//   uses forbids mutating them); a namespace is the one mutable object.
// - str() and repr() follow Python ({{ [1, 'a'] }} prints "[1, 'a']", {{ none }} prints "None").
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace dsk::chat {

class Value;
using List = std::vector<Value>;

// An insertion-ordered str -> Value map (Python dicts keep insertion order; tojson relies on it).
class Dict {
 public:
  Dict();
  // Items whose keys are distinct (not checked). Out of line, as the members using items_ are:
  // clang wants Value complete there.
  explicit Dict(std::vector<std::pair<std::string, Value>> items);
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value value);  // replaces in place or appends
  const std::vector<std::pair<std::string, Value>>& items() const { return items_; }
  size_t size() const;

 private:
  std::vector<std::pair<std::string, Value>> items_;
};

struct CallArguments {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

// A builtin function, a bound method or a macro. `call` throws a chat::EvalError on misuse.
struct Callable {
  std::string name;
  std::function<Value(const CallArguments&)> call;
};

struct Undefined {
  std::string name;  // the error for using it ("'x' is undefined"), worded by whoever made it
};
struct None {};
struct Namespace {
  std::shared_ptr<Dict> attributes;
};

class Value {
 public:
  enum class Kind { undefined, none, boolean, integer, number, string, list, dict, name_space, callable };

  Value() : data_(None{}) {}
  Value(None) : data_(None{}) {}
  Value(Undefined u) : data_(std::move(u)) {}
  Value(bool b) : data_(b) {}
  Value(int64_t i) : data_(i) {}
  Value(int i) : data_(int64_t(i)) {}
  Value(size_t i) : data_(int64_t(i)) {}
  Value(double d) : data_(d) {}
  Value(std::string s) : data_(std::make_shared<const std::string>(std::move(s))) {}
  Value(const char* s) : data_(std::make_shared<const std::string>(s)) {}
  Value(List list) : data_(std::make_shared<const List>(std::move(list))) {}
  Value(Dict dict) : data_(std::make_shared<const Dict>(std::move(dict))) {}
  Value(Namespace ns) : data_(std::move(ns)) {}
  Value(Callable fn) : data_(std::make_shared<const Callable>(std::move(fn))) {}

  static Value undefined(std::string name) { return Value(Undefined{std::move(name)}); }

  Kind kind() const { return Kind(data_.index()); }
  bool is_undefined() const { return kind() == Kind::undefined; }
  bool is_none() const { return kind() == Kind::none; }
  bool is_string() const { return kind() == Kind::string; }
  bool is_list() const { return kind() == Kind::list; }
  bool is_dict() const { return kind() == Kind::dict; }
  bool is_number() const { return kind() == Kind::boolean || kind() == Kind::integer || kind() == Kind::number; }

  bool as_bool() const { return std::get<bool>(data_); }
  int64_t as_int() const { return std::get<int64_t>(data_); }
  double as_double() const { return std::get<double>(data_); }
  const std::string& as_string() const { return *std::get<std::shared_ptr<const std::string>>(data_); }
  const List& as_list() const { return *std::get<std::shared_ptr<const List>>(data_); }
  const Dict& as_dict() const { return *std::get<std::shared_ptr<const Dict>>(data_); }
  const Namespace& as_namespace() const { return std::get<Namespace>(data_); }
  const Callable& as_callable() const { return *std::get<std::shared_ptr<const Callable>>(data_); }
  const std::string& undefined_name() const { return std::get<Undefined>(data_).name; }

  // A number as double (bool and int included); only for is_number() values.
  double numeric() const;
  bool truthy() const;                 // Python's bool(); Undefined is false
  std::string str() const;             // Python's str(); Undefined is ""
  std::string repr() const;            // Python's repr()
  std::string type_name() const;       // Python's type name, for errors: "str", "int", "dict" ...

  // Python's ==: 1 == 1.0 == True, lists and dicts by content (dicts ignore order).
  friend bool operator==(const Value& a, const Value& b);

  // Values from JSON (messages, tools, tokenizer_config.json fields); key order is kept for
  // ordered_json. Nesting is bounded by the caller's JSON parser (core/json.hpp).
  static Value from_json(const nlohmann::ordered_json& json);
  static Value from_json(const nlohmann::json& json);

 private:
  // Strings, lists and dicts are shared, never copied: templates look the same content up often.
  std::variant<Undefined, None, bool, int64_t, double, std::shared_ptr<const std::string>, std::shared_ptr<const List>,
               std::shared_ptr<const Dict>, Namespace, std::shared_ptr<const Callable>>
      data_;
};

// Python's repr() of a float ("1.0", "0.1", "1e+16", "inf", "nan").
std::string python_float_repr(double value);

// json.dumps(value, ensure_ascii=False, indent=indent, separators=..., sort_keys=sort_keys), the
// tojson filter transformers installs. indent < 0 means None. Throws EvalError for values JSON
// cannot hold (callables, namespaces; Undefined as json.dumps would fail on it).
struct JsonDumpOptions {
  int indent = -1;
  std::optional<std::string> indent_text;  // indent given as a string
  std::optional<std::pair<std::string, std::string>> separators;
  bool sort_keys = false;
  bool ensure_ascii = false;
};
std::string python_json_dumps(const Value& value, const JsonDumpOptions& options);

// UTF-8 <-> code points, for Python-style string indexing (invalid bytes count as one each).
std::vector<uint32_t> decode_code_points(const std::string& text);
std::string encode_code_points(const std::vector<uint32_t>& points, size_t begin, size_t end);
void append_utf8(std::string& out, uint32_t code_point);
bool python_isspace(uint32_t code_point);

}  // namespace dsk::chat

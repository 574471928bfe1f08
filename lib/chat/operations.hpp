// Python's semantics for what templates do to values (internal to lib/chat): arithmetic,
// comparisons, `in`, attribute and item access (Jinja's getattr/getitem order), slicing,
// iteration, the str/dict methods the sandbox allows, and Jinja's filters and tests.
// Everything throws EvalError with Python's wording ("unsupported operand type(s) for +: ...").
#pragma once

#include <optional>
#include <string>

#include "chat/value.hpp"

namespace dsk::chat::detail {

Value binary_operation(const std::string& op, const Value& left, const Value& right);
Value negate(const Value& value);
bool compare(const std::string& op, const Value& left, const Value& right);
bool contains(const Value& container, const Value& item);

// obj.name: a method or attribute first, then a dict key (Jinja's environment.getattr).
Value get_attribute(const Value& object, const std::string& name);
// obj[key]: the item first, then an attribute when key is a string (Jinja's getitem).
Value get_item(const Value& object, const Value& key);
Value slice(const Value& object, std::optional<int64_t> start, std::optional<int64_t> stop, std::optional<int64_t> step);

// The elements a for loop visits: list items, dict keys, string characters; Undefined visits
// nothing. EvalError for anything else ("'int' object is not iterable").
List iterate(const Value& value);
int64_t length(const Value& value);

// Throws EvalError naming the undefined variable when value is Undefined (Jinja raises
// UndefinedError when one is used in arithmetic, called, or has an attribute looked up).
void require_defined(const Value& value);

Value apply_filter(const std::string& name, const Value& subject, const CallArguments& arguments);
bool apply_test(const std::string& name, const Value& subject, const CallArguments& arguments);
bool has_filter(const std::string& name);
bool has_test(const std::string& name);

// bool and int (Python's bool is an int).
bool is_integral_value(const Value& value);
int64_t integral_value(const Value& value);

// Argument binding for builtins: positional index or keyword, with a fallback.
const Value* argument(const CallArguments& arguments, size_t index, const char* keyword);

}  // namespace dsk::chat::detail

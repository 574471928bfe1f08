#include "chat/operations.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "chat/eval_error.hpp"
#include "chat/template.hpp"

namespace dsk::chat::detail {
namespace {

using Kind = Value::Kind;

bool is_integral(const Value& v) { return is_integral_value(v); }
int64_t integral(const Value& v) { return integral_value(v); }

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
  throw EvalError("unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" + b.type_name() + "'");
}

Value checked_integer(__int128 result) {
  if (result > std::numeric_limits<int64_t>::max() || result < std::numeric_limits<int64_t>::min())
    throw EvalError("integer result out of the 64-bit range");
  return Value(int64_t(result));
}

// Strings and lists a template builds are bounded like its output (template.hpp kMaxOutputBytes).
void check_size(size_t size) {
  if (size > kMaxOutputBytes) throw EvalError("a value larger than the limit of 256 MiB");
}

Value repeat(const Value& sequence, int64_t times) {
  if (times > 0 && length(sequence) > 0 && times > int64_t(kMaxOutputBytes) / length(sequence))
    throw EvalError("a value larger than the limit of 256 MiB");
  if (sequence.is_string()) {
    const std::string& unit = sequence.as_string();
    if (times <= 0 || unit.empty()) return Value(std::string());
    std::string out = unit;
    out.reserve(unit.size() * size_t(times));
    while (out.size() * 2 <= unit.size() * size_t(times)) out += out;  // doubling: log(times) copies
    out.append(out, 0, unit.size() * size_t(times) - out.size());
    return Value(std::move(out));
  }
  List out;
  for (int64_t i = 0; i < times; ++i) out.insert(out.end(), sequence.as_list().begin(), sequence.as_list().end());
  return Value(std::move(out));
}

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// Python's str.strip family: whitespace by default, else any of the given characters.
std::string strip(const std::string& text, const Value* chars, bool left, bool right) {
  std::vector<uint32_t> points = decode_code_points(text);
  std::vector<uint32_t> set;
  bool default_set = !chars || chars->is_none();
  if (!default_set) {
    if (!chars->is_string()) throw EvalError("strip arg must be None or str");
    set = decode_code_points(chars->as_string());
  }
  auto strippable = [&](uint32_t c) { return default_set ? python_isspace(c) : std::find(set.begin(), set.end(), c) != set.end(); };
  size_t begin = 0, end = points.size();
  if (left)
    while (begin < end && strippable(points[begin])) ++begin;
  if (right)
    while (end > begin && strippable(points[end - 1])) --end;
  return encode_code_points(points, begin, end);
}

List split(const std::string& text, const Value* separator, int64_t max_split, bool from_right) {
  List parts;
  if (!separator || separator->is_none()) {
    std::vector<uint32_t> p = decode_code_points(text);
    std::vector<std::pair<size_t, size_t>> words;
    size_t i = 0;
    while (i < p.size()) {
      while (i < p.size() && python_isspace(p[i])) ++i;
      if (i == p.size()) break;
      size_t start = i;
      while (i < p.size() && !python_isspace(p[i])) ++i;
      words.emplace_back(start, i);
    }
    if (max_split >= 0 && int64_t(words.size()) > max_split + 1) {
      // The rest after max_split words is one part, with its leading (or trailing) space stripped.
      if (!from_right) {
        for (int64_t w = 0; w < max_split; ++w) parts.push_back(Value(encode_code_points(p, words[size_t(w)].first, words[size_t(w)].second)));
        parts.push_back(Value(encode_code_points(p, words[size_t(max_split)].first, words.back().second)));
      } else {
        size_t keep = words.size() - size_t(max_split);
        parts.push_back(Value(encode_code_points(p, words.front().first, words[keep - 1].second)));
        for (size_t w = keep; w < words.size(); ++w) parts.push_back(Value(encode_code_points(p, words[w].first, words[w].second)));
      }
      return parts;
    }
    for (auto [a, b] : words) parts.push_back(Value(encode_code_points(p, a, b)));
    return parts;
  }
  if (!separator->is_string()) throw EvalError("must be str or None, not " + separator->type_name());
  const std::string& sep = separator->as_string();
  if (sep.empty()) throw EvalError("empty separator");
  std::vector<std::string> pieces;
  if (!from_right) {
    size_t pos = 0;
    int64_t done = 0;
    while (max_split < 0 || done < max_split) {
      size_t hit = text.find(sep, pos);
      if (hit == std::string::npos) break;
      pieces.push_back(text.substr(pos, hit - pos));
      pos = hit + sep.size();
      ++done;
    }
    pieces.push_back(text.substr(pos));
  } else {
    size_t end = text.size();
    int64_t done = 0;
    std::vector<std::string> reversed;
    while (max_split < 0 || done < max_split) {
      if (end < sep.size()) break;
      size_t hit = text.rfind(sep, end - sep.size());
      if (hit == std::string::npos) break;
      reversed.push_back(text.substr(hit + sep.size(), end - hit - sep.size()));
      end = hit;
      ++done;
    }
    reversed.push_back(text.substr(0, end));
    pieces.assign(reversed.rbegin(), reversed.rend());
  }
  for (auto& piece : pieces) parts.push_back(Value(std::move(piece)));
  return parts;
}

std::string ascii_case(std::string text, bool upper) {
  for (char& c : text)
    if (upper && c >= 'a' && c <= 'z') c = char(c - 32);
    else if (!upper && c >= 'A' && c <= 'Z') c = char(c + 32);
  return text;
}

// Python's str.title(): a letter after a non-letter starts a word (ASCII letters only here).
std::string title_case(const std::string& text) {
  std::string out = text;
  bool previous_cased = false;
  for (char& c : out) {
    bool lower = c >= 'a' && c <= 'z', upper = c >= 'A' && c <= 'Z';
    if (lower && !previous_cased) c = char(c - 32);
    else if (upper && previous_cased) c = char(c + 32);
    previous_cased = lower || upper;
  }
  return out;
}

bool affix_matches(const std::string& text, const Value& affix, bool prefix) {
  auto one = [&](const Value& candidate) {
    if (!candidate.is_string()) throw EvalError("startswith/endswith first arg must be str or a tuple of str");
    const std::string& a = candidate.as_string();
    if (a.size() > text.size()) return false;
    return prefix ? text.compare(0, a.size(), a) == 0 : text.compare(text.size() - a.size(), a.size(), a) == 0;
  };
  if (affix.is_list()) return std::any_of(affix.as_list().begin(), affix.as_list().end(), one);
  return one(affix);
}

std::string replace_all(const std::string& text, const std::string& old_text, const std::string& new_text, int64_t count) {
  if (old_text.empty()) {
    // Python inserts new_text between every character (and at both ends).
    std::vector<uint32_t> p = decode_code_points(text);
    std::string out;
    int64_t done = 0;
    for (size_t i = 0; i <= p.size(); ++i) {
      if (count < 0 || done < count) {
        out += new_text;
        ++done;
      }
      if (i < p.size()) append_utf8(out, p[i]);
    }
    return out;
  }
  std::string out;
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t hit = text.find(old_text, pos);
    if (hit == std::string::npos) break;
    out += text.substr(pos, hit - pos) + new_text;
    pos = hit + old_text.size();
    ++done;
  }
  return out + text.substr(pos);
}

int64_t optional_int(const Value* v, int64_t fallback) {
  if (!v || v->is_none()) return fallback;
  if (!is_integral(*v)) throw EvalError("expected an integer, got " + v->type_name());
  return integral(*v);
}

Value string_method(const std::string& text, const std::string& name) {
  auto bind = [&](auto body) { return Value(Callable{"str." + name, [text, body](const CallArguments& a) { return body(text, a); }}); };
  if (name == "strip" || name == "lstrip" || name == "rstrip")
    return bind([name](const std::string& t, const CallArguments& a) {
      return Value(strip(t, argument(a, 0, "chars"), name != "rstrip", name != "lstrip"));
    });
  if (name == "split" || name == "rsplit")
    return bind([name](const std::string& t, const CallArguments& a) {
      return Value(split(t, argument(a, 0, "sep"), optional_int(argument(a, 1, "maxsplit"), -1), name == "rsplit"));
    });
  if (name == "startswith" || name == "endswith")
    return bind([name](const std::string& t, const CallArguments& a) {
      const Value* affix = argument(a, 0, "prefix");
      if (!affix) throw EvalError(name + "() takes at least 1 argument");
      return Value(affix_matches(t, *affix, name == "startswith"));
    });
  if (name == "upper" || name == "lower")
    return bind([name](const std::string& t, const CallArguments&) { return Value(ascii_case(t, name == "upper")); });
  if (name == "title") return bind([](const std::string& t, const CallArguments&) { return Value(title_case(t)); });
  if (name == "capitalize")
    return bind([](const std::string& t, const CallArguments&) {
      std::string out = ascii_case(t, false);
      if (!out.empty() && out[0] >= 'a' && out[0] <= 'z') out[0] = char(out[0] - 32);
      return Value(out);
    });
  if (name == "replace")
    return bind([](const std::string& t, const CallArguments& a) {
      const Value* old_text = argument(a, 0, "old");
      const Value* new_text = argument(a, 1, "new");
      if (!old_text || !new_text || !old_text->is_string() || !new_text->is_string()) throw EvalError("replace() takes two strings");
      return Value(replace_all(t, old_text->as_string(), new_text->as_string(), optional_int(argument(a, 2, "count"), -1)));
    });
  if (name == "find" || name == "rfind" || name == "count")
    return bind([name](const std::string& t, const CallArguments& a) {
      const Value* needle = argument(a, 0, "sub");
      if (!needle || !needle->is_string()) throw EvalError(name + "() argument must be str");
      const std::string& n = needle->as_string();
      if (name == "count") {
        if (n.empty()) return Value(int64_t(decode_code_points(t).size() + 1));
        int64_t hits = 0;
        for (size_t pos = t.find(n); pos != std::string::npos; pos = t.find(n, pos + n.size())) ++hits;
        return Value(hits);
      }
      size_t hit = name == "find" ? t.find(n) : t.rfind(n);
      if (hit == std::string::npos) return Value(int64_t(-1));
      return Value(int64_t(decode_code_points(t.substr(0, hit)).size()));
    });
  if (name == "splitlines")
    return bind([](const std::string& t, const CallArguments&) {
      List lines;
      size_t pos = 0;
      while (pos < t.size()) {
        size_t end = t.find_first_of("\r\n", pos);
        if (end == std::string::npos) {
          lines.push_back(Value(t.substr(pos)));
          break;
        }
        lines.push_back(Value(t.substr(pos, end - pos)));
        pos = end + (t[end] == '\r' && end + 1 < t.size() && t[end + 1] == '\n' ? 2 : 1);
      }
      return Value(std::move(lines));
    });
  if (name == "isdigit" || name == "isspace" || name == "isalpha" || name == "isalnum")
    return bind([name](const std::string& t, const CallArguments&) {
      if (t.empty()) return Value(false);
      for (uint32_t c : decode_code_points(t)) {
        bool digit = c >= '0' && c <= '9', alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        bool ok = name == "isdigit" ? digit : name == "isspace" ? python_isspace(c) : name == "isalpha" ? alpha : (alpha || digit);
        if (!ok) return Value(false);
      }
      return Value(true);
    });
  if (name == "format" || name == "join" || name == "zfill" || name == "center" || name == "ljust" || name == "rjust")
    throw EvalError("str." + name + "() is not supported in chat templates here");
  return Value::undefined("'str object' has no attribute '" + name + "'");
}

Value dict_method(const Value& dict, const std::string& name) {
  auto bind = [&](auto body) { return Value(Callable{"dict." + name, [dict, body](const CallArguments& a) { return body(dict.as_dict(), a); }}); };
  if (name == "items")
    return bind([](const Dict& d, const CallArguments&) {
      List out;
      for (const auto& [k, v] : d.items()) out.push_back(Value(List{Value(k), v}));
      return Value(std::move(out));
    });
  if (name == "keys")
    return bind([](const Dict& d, const CallArguments&) {
      List out;
      for (const auto& [k, v] : d.items()) out.push_back(Value(k));
      return Value(std::move(out));
    });
  if (name == "values")
    return bind([](const Dict& d, const CallArguments&) {
      List out;
      for (const auto& [k, v] : d.items()) out.push_back(v);
      return Value(std::move(out));
    });
  if (name == "get")
    return bind([](const Dict& d, const CallArguments& a) {
      const Value* key = argument(a, 0, "key");
      if (!key) throw EvalError("get expected at least 1 argument");
      const Value* fallback = argument(a, 1, "default");
      const Value* hit = key->is_string() ? d.find(key->as_string()) : nullptr;
      return hit ? *hit : fallback ? *fallback : Value();
    });
  return Value();
}

[[noreturn]] void mutation_refused(const std::string& type, const std::string& name) {
  throw EvalError("access to attribute '" + name + "' of '" + type + "' object is unsafe (the sandbox forbids changing a " + type + ")");
}

bool is_mutating_method(const Value& object, const std::string& name) {
  static const char* list_methods[] = {"append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse"};
  static const char* dict_methods[] = {"pop", "popitem", "setdefault", "update", "clear"};
  if (object.is_list()) return std::any_of(std::begin(list_methods), std::end(list_methods), [&](const char* m) { return name == m; });
  if (object.is_dict()) return std::any_of(std::begin(dict_methods), std::end(dict_methods), [&](const char* m) { return name == m; });
  return false;
}

std::optional<int64_t> python_index(int64_t index, int64_t size) {
  if (index < 0) index += size;
  if (index < 0 || index >= size) return std::nullopt;
  return index;
}

}  // namespace

bool is_integral_value(const Value& v) { return v.kind() == Kind::integer || v.kind() == Kind::boolean; }
int64_t integral_value(const Value& v) { return v.kind() == Kind::boolean ? int64_t(v.as_bool()) : v.as_int(); }

const Value* argument(const CallArguments& arguments, size_t index, const char* keyword) {
  if (index < arguments.positional.size()) return &arguments.positional[index];
  for (const auto& [k, v] : arguments.keyword)
    if (k == keyword) return &v;
  return nullptr;
}

void require_defined(const Value& value) {
  if (value.is_undefined()) throw EvalError(value.undefined_name().empty() ? "value is undefined" : value.undefined_name());
}

Value binary_operation(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") {
    std::string left_text, right_text;  // only for values that are not strings already
    const std::string& left = a.is_string() ? a.as_string() : (left_text = a.str());
    const std::string& right = b.is_string() ? b.as_string() : (right_text = b.str());
    check_size(left.size() + right.size());
    return Value(left + right);
  }
  require_defined(a);
  require_defined(b);
  if (a.is_number() && b.is_number()) {
    bool integers = is_integral(a) && is_integral(b);
    if (op == "/") {
      if (b.numeric() == 0) throw EvalError("division by zero");
      return Value(a.numeric() / b.numeric());
    }
    if (integers) {
      __int128 x = integral(a), y = integral(b);
      if (op == "+") return checked_integer(x + y);
      if (op == "-") return checked_integer(x - y);
      if (op == "*") return checked_integer(x * y);
      if (y == 0 && (op == "//" || op == "%")) throw EvalError("integer division or modulo by zero");
      if (op == "//") return Value(floor_div(integral(a), integral(b)));
      if (op == "%") return Value(integral(a) - floor_div(integral(a), integral(b)) * integral(b));
      if (op == "**") {
        if (y < 0) return Value(std::pow(double(x), double(y)));
        __int128 result = 1;
        for (__int128 i = 0; i < y; ++i) {
          result *= x;
          if (result > std::numeric_limits<int64_t>::max() || result < std::numeric_limits<int64_t>::min())
            throw EvalError("integer result out of the 64-bit range");
        }
        return Value(int64_t(result));
      }
    }
    double x = a.numeric(), y = b.numeric();
    if (op == "+") return Value(x + y);
    if (op == "-") return Value(x - y);
    if (op == "*") return Value(x * y);
    if (op == "**") return Value(std::pow(x, y));
    if (y == 0) throw EvalError("float division by zero");
    if (op == "//") return Value(std::floor(x / y));
    if (op == "%") return Value(x - std::floor(x / y) * y);
  }
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      check_size(a.as_string().size() + b.as_string().size());
      return Value(a.as_string() + b.as_string());
    }
    if (a.is_list() && b.is_list()) {
      check_size(a.as_list().size() + b.as_list().size());
      List out = a.as_list();
      out.insert(out.end(), b.as_list().begin(), b.as_list().end());
      return Value(std::move(out));
    }
  }
  if (op == "*") {
    if ((a.is_string() || a.is_list()) && is_integral(b)) return repeat(a, integral(b));
    if ((b.is_string() || b.is_list()) && is_integral(a)) return repeat(b, integral(a));
  }
  if (op == "%" && a.is_string()) throw EvalError("printf-style string formatting ('%') is not supported");
  unsupported(op, a, b);
}

Value negate(const Value& v) {
  require_defined(v);
  if (is_integral(v)) return checked_integer(-__int128(integral(v)));
  if (v.kind() == Kind::number) return Value(-v.as_double());
  throw EvalError("bad operand type for unary -: '" + v.type_name() + "'");
}

bool compare(const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return a == b;
  if (op == "!=") return !(a == b);
  if (op == "in") return contains(b, a);
  if (op == "not in") return !contains(b, a);
  int order;
  if (a.is_number() && b.is_number()) {
    double x = a.numeric(), y = b.numeric();
    order = x < y ? -1 : x > y ? 1 : 0;
  } else if (a.is_string() && b.is_string()) {
    order = a.as_string().compare(b.as_string());  // UTF-8 byte order is code point order
  } else if (a.is_list() && b.is_list()) {
    const List &x = a.as_list(), &y = b.as_list();
    size_t i = 0;
    while (i < x.size() && i < y.size() && x[i] == y[i]) ++i;
    if (i < x.size() && i < y.size()) return compare(op, x[i], y[i]);
    order = x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  } else {
    require_defined(a);
    require_defined(b);
    throw EvalError("'" + op + "' not supported between instances of '" + a.type_name() + "' and '" + b.type_name() + "'");
  }
  if (op == "<") return order < 0;
  if (op == ">") return order > 0;
  if (op == "<=") return order <= 0;
  return order >= 0;
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Kind::string:
      if (!item.is_string()) throw EvalError("'in <string>' requires string as left operand, not " + item.type_name());
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Kind::list: return std::find(container.as_list().begin(), container.as_list().end(), item) != container.as_list().end();
    case Kind::dict: return item.is_string() && container.as_dict().find(item.as_string()) != nullptr;
    case Kind::undefined: require_defined(container); return false;
    default: throw EvalError("argument of type '" + container.type_name() + "' is not iterable");
  }
}

Value get_attribute(const Value& object, const std::string& name) {
  std::string missing = "'" + object.type_name() + " object' has no attribute '" + name + "'";
  switch (object.kind()) {
    case Kind::undefined: require_defined(object); break;
    case Kind::string: return string_method(object.as_string(), name);
    case Kind::dict: {
      if (is_mutating_method(object, name)) mutation_refused("dict", name);
      Value method = dict_method(object, name);
      if (!method.is_none()) return method;
      if (const Value* hit = object.as_dict().find(name)) return *hit;
      return Value::undefined(missing);
    }
    case Kind::list:
      if (is_mutating_method(object, name)) mutation_refused("list", name);
      return Value::undefined(missing);
    case Kind::name_space:
      if (const Value* hit = object.as_namespace().attributes->find(name)) return *hit;
      return Value::undefined(missing);
    default: break;
  }
  return Value::undefined(missing);
}

Value get_item(const Value& object, const Value& key) {
  switch (object.kind()) {
    case Kind::undefined: require_defined(object); break;
    case Kind::dict:
      if (key.is_string()) {
        if (const Value* hit = object.as_dict().find(key.as_string())) return *hit;
        return get_attribute(object, key.as_string());
      }
      break;
    case Kind::list:
      if (is_integral(key)) {
        if (auto i = python_index(integral(key), int64_t(object.as_list().size()))) return object.as_list()[size_t(*i)];
        return Value::undefined("list index out of range");
      }
      break;
    case Kind::string:
      if (is_integral(key)) {
        std::vector<uint32_t> points = decode_code_points(object.as_string());
        if (auto i = python_index(integral(key), int64_t(points.size()))) return Value(encode_code_points(points, size_t(*i), size_t(*i) + 1));
        return Value::undefined("string index out of range");
      }
      break;
    default: break;
  }
  if (key.is_string()) return get_attribute(object, key.as_string());
  return Value::undefined("'" + object.type_name() + " object' has no item " + key.repr());
}

Value slice(const Value& object, std::optional<int64_t> start, std::optional<int64_t> stop, std::optional<int64_t> step_opt) {
  require_defined(object);
  if (!object.is_list() && !object.is_string()) throw EvalError("'" + object.type_name() + "' object is not subscriptable");
  int64_t step = step_opt.value_or(1);
  if (step == 0) throw EvalError("slice step cannot be zero");
  std::vector<uint32_t> points;
  int64_t size;
  if (object.is_string()) {
    points = decode_code_points(object.as_string());
    size = int64_t(points.size());
  } else {
    size = int64_t(object.as_list().size());
  }
  // Python's PySlice_AdjustIndices.
  auto adjust = [&](std::optional<int64_t> v, int64_t fallback) {
    if (!v) return fallback;
    int64_t i = *v;
    if (i < 0) {
      i += size;
      if (i < 0) i = step < 0 ? -1 : 0;
    } else if (i >= size) {
      i = step < 0 ? size - 1 : size;
    }
    return i;
  };
  int64_t begin = adjust(start, step < 0 ? size - 1 : 0);
  int64_t end = adjust(stop, step < 0 ? -1 : size);
  std::vector<int64_t> picks;
  for (int64_t i = begin; step > 0 ? i < end : i > end; i += step) picks.push_back(i);
  if (object.is_string()) {
    std::string out;
    for (int64_t i : picks) append_utf8(out, points[size_t(i)]);
    return Value(out);
  }
  List out;
  for (int64_t i : picks) out.push_back(object.as_list()[size_t(i)]);
  return Value(std::move(out));
}

List iterate(const Value& value) {
  switch (value.kind()) {
    case Kind::undefined: return {};
    case Kind::list: return value.as_list();
    case Kind::dict: {
      List keys;
      for (const auto& [k, v] : value.as_dict().items()) keys.push_back(Value(k));
      return keys;
    }
    case Kind::string: {
      std::vector<uint32_t> points = decode_code_points(value.as_string());
      List chars;
      for (size_t i = 0; i < points.size(); ++i) chars.push_back(Value(encode_code_points(points, i, i + 1)));
      return chars;
    }
    default: throw EvalError("'" + value.type_name() + "' object is not iterable");
  }
}

int64_t length(const Value& value) {
  switch (value.kind()) {
    case Kind::undefined: return 0;
    case Kind::string: return int64_t(decode_code_points(value.as_string()).size());
    case Kind::list: return int64_t(value.as_list().size());
    case Kind::dict: return int64_t(value.as_dict().size());
    default: throw EvalError("object of type '" + value.type_name() + "' has no len()");
  }
}

}  // namespace dsk::chat::detail

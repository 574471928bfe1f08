// Jinja2's builtin filters and tests that chat templates use, with Jinja's semantics, plus the
// tojson filter transformers installs (json.dumps with ensure_ascii=False, not Jinja's HTML-safe one).
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>

#include "chat/eval_error.hpp"
#include "chat/operations.hpp"

namespace dsk::chat::detail {
namespace {

using Kind = Value::Kind;
using Filter = std::function<Value(const Value&, const CallArguments&)>;
using Test = std::function<bool(const Value&, const CallArguments&)>;

bool flag(const CallArguments& a, size_t index, const char* keyword, bool fallback) {
  const Value* v = argument(a, index, keyword);
  return v ? v->truthy() : fallback;
}

const Value& required(const CallArguments& a, size_t index, const char* keyword, const char* filter) {
  const Value* v = argument(a, index, keyword);
  if (!v) throw EvalError(std::string(filter) + ": missing argument '" + keyword + "'");
  return *v;
}

// Jinja's attribute lookup for filters: "a.b" walks attributes/items; "0" indexes.
Value attribute_path(const Value& item, const Value& attribute) {
  if (is_integral_value(attribute)) return get_item(item, attribute);
  Value current = item;
  std::string path = attribute.str();
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    current = numeric ? get_item(current, Value(int64_t(std::stoll(part)))) : get_item(current, Value(part));
    if (dot == std::string::npos) return current;
    start = dot + 1;
  }
}

Value sequence_of(const Value& v) { return Value(iterate(v)); }

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

Value to_json(const Value& v, const CallArguments& a) {
  JsonDumpOptions options;
  if (const Value* ensure_ascii = argument(a, 0, "ensure_ascii")) options.ensure_ascii = ensure_ascii->truthy();
  if (const Value* indent = argument(a, 1, "indent"); indent && !indent->is_none()) {
    if (indent->is_string()) options.indent_text = indent->as_string();
    else if (indent->kind() == Kind::integer) options.indent = int(std::clamp<int64_t>(indent->as_int(), 0, 64));
    else throw EvalError("tojson: indent must be an integer or a string");
  }
  if (const Value* separators = argument(a, 2, "separators"); separators && !separators->is_none()) {
    if (!separators->is_list() || separators->as_list().size() != 2 || !separators->as_list()[0].is_string() || !separators->as_list()[1].is_string())
      throw EvalError("tojson: separators must be a pair of strings");
    options.separators = std::make_pair(separators->as_list()[0].as_string(), separators->as_list()[1].as_string());
  }
  options.sort_keys = flag(a, 3, "sort_keys", false);
  return Value(python_json_dumps(v, options));
}

List select_items(const Value& seq, const CallArguments& a, bool by_attribute, bool keep_matching) {
  // select(test, *args) / selectattr(attr, test, *args); no test means "truthy".
  size_t test_at = by_attribute ? 1 : 0;
  std::string test_name;
  CallArguments test_arguments;
  if (a.positional.size() > test_at) {
    test_name = a.positional[test_at].str();
    test_arguments.positional.assign(a.positional.begin() + long(test_at) + 1, a.positional.end());
  }
  test_arguments.keyword = a.keyword;
  List out;
  for (const Value& item : iterate(seq)) {
    Value subject = by_attribute ? attribute_path(item, required(a, 0, "attribute", "selectattr")) : item;
    bool hit = test_name.empty() ? subject.truthy() : apply_test(test_name, subject, test_arguments);
    if (hit == keep_matching) out.push_back(item);
  }
  return out;
}

Value map_items(const Value& seq, const CallArguments& a) {
  List out;
  if (const Value* attribute = argument(a, 99, "attribute")) {
    const Value* fallback = argument(a, 99, "default");
    for (const Value& item : iterate(seq)) {
      Value v = attribute_path(item, *attribute);
      out.push_back(v.is_undefined() && fallback ? *fallback : v);
    }
    return Value(std::move(out));
  }
  if (a.positional.empty()) throw EvalError("map: a filter name or attribute= is required");
  std::string filter = a.positional[0].str();
  CallArguments rest;
  rest.positional.assign(a.positional.begin() + 1, a.positional.end());
  rest.keyword = a.keyword;
  for (const Value& item : iterate(seq)) out.push_back(apply_filter(filter, item, rest));
  return Value(std::move(out));
}

Value sort_items(const Value& seq, const CallArguments& a) {
  List items = iterate(seq);
  bool reverse = flag(a, 0, "reverse", false);
  bool case_sensitive = flag(a, 1, "case_sensitive", false);
  const Value* attribute = argument(a, 2, "attribute");
  auto key = [&](const Value& item) {
    Value k = attribute ? attribute_path(item, *attribute) : item;
    if (!case_sensitive && k.is_string()) {
      std::string lower = k.as_string();
      for (char& c : lower)
        if (c >= 'A' && c <= 'Z') c = char(c + 32);
      return Value(lower);
    }
    return k;
  };
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    return reverse ? compare("<", key(y), key(x)) : compare("<", key(x), key(y));
  });
  return Value(std::move(items));
}

Value indent_text(const Value& v, const CallArguments& a) {
  const Value* width = argument(a, 0, "width");
  std::string pad = !width ? "    " : width->is_string() ? width->as_string() : std::string(size_t(std::clamp<int64_t>(width->kind() == Kind::integer ? width->as_int() : 4, 0, 256)), ' ');
  bool first = flag(a, 1, "first", false), blank = flag(a, 2, "blank", false);
  std::string text = v.str(), out;
  size_t pos = 0;
  bool at_first = true;
  while (true) {
    size_t end = text.find('\n', pos);
    std::string line = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    bool indent = (at_first ? first : true) && (blank || !line.empty());
    out += (indent ? pad : "") + line;
    if (end == std::string::npos) break;
    out += '\n';
    pos = end + 1;
    at_first = false;
  }
  return Value(out);
}

Value default_value(const Value& v, const CallArguments& a) {
  const Value* fallback = argument(a, 0, "default_value");
  bool boolean = flag(a, 1, "boolean", false);
  if (v.is_undefined() || (boolean && !v.truthy())) return fallback ? *fallback : Value("");
  return v;
}

const std::map<std::string, Filter>& filters() {
  static const std::map<std::string, Filter> table = {
      {"trim", [](const Value& v, const CallArguments& a) { return get_attribute(Value(v.str()), "strip").as_callable().call(a); }},
      {"length", [](const Value& v, const CallArguments&) { return Value(length(v)); }},
      {"count", [](const Value& v, const CallArguments&) { return Value(length(v)); }},
      {"tojson", to_json},
      {"string", [](const Value& v, const CallArguments&) { return Value(v.str()); }},
      {"lower", [](const Value& v, const CallArguments&) { return get_attribute(Value(v.str()), "lower").as_callable().call({}); }},
      {"upper", [](const Value& v, const CallArguments&) { return get_attribute(Value(v.str()), "upper").as_callable().call({}); }},
      {"title", [](const Value& v, const CallArguments&) { return get_attribute(Value(v.str()), "title").as_callable().call({}); }},
      {"capitalize", [](const Value& v, const CallArguments&) { return get_attribute(Value(v.str()), "capitalize").as_callable().call({}); }},
      {"replace", [](const Value& v, const CallArguments& a) { return get_attribute(Value(v.str()), "replace").as_callable().call(a); }},
      {"default", default_value},
      {"d", default_value},
      {"join", [](const Value& v, const CallArguments& a) {
         const Value* separator = argument(a, 0, "d");
         const Value* attribute = argument(a, 1, "attribute");
         std::string out;
         bool first = true;
         for (const Value& item : iterate(v)) {
           out += (first ? "" : separator ? separator->str() : "") + (attribute ? attribute_path(item, *attribute) : item).str();
           first = false;
         }
         return Value(out);
       }},
      {"items", [](const Value& v, const CallArguments&) {
         if (v.is_undefined()) return Value(List{});
         if (!v.is_dict()) throw EvalError("items: expected a mapping, got " + v.type_name());
         return get_attribute(v, "items").as_callable().call({});
       }},
      {"dictsort", [](const Value& v, const CallArguments&) {
         if (!v.is_dict()) throw EvalError("dictsort: expected a mapping, got " + v.type_name());
         List pairs = get_attribute(v, "items").as_callable().call({}).as_list();
         std::stable_sort(pairs.begin(), pairs.end(), [](const Value& x, const Value& y) { return compare("<", x.as_list()[0], y.as_list()[0]); });
         return Value(std::move(pairs));
       }},
      {"list", [](const Value& v, const CallArguments&) { return sequence_of(v); }},
      {"first", [](const Value& v, const CallArguments&) {
         List items = iterate(v);
         return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
       }},
      {"last", [](const Value& v, const CallArguments&) {
         List items = iterate(v);
         return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
       }},
      {"reverse", [](const Value& v, const CallArguments&) {
         if (v.is_string()) return slice(v, std::nullopt, std::nullopt, -1);
         List items = iterate(v);
         std::reverse(items.begin(), items.end());
         return Value(std::move(items));
       }},
      {"unique", [](const Value& v, const CallArguments&) {
         List out;
         for (const Value& item : iterate(v))
           if (std::find(out.begin(), out.end(), item) == out.end()) out.push_back(item);
         return Value(std::move(out));
       }},
      {"sort", sort_items},
      {"select", [](const Value& v, const CallArguments& a) { return Value(select_items(v, a, false, true)); }},
      {"reject", [](const Value& v, const CallArguments& a) { return Value(select_items(v, a, false, false)); }},
      {"selectattr", [](const Value& v, const CallArguments& a) { return Value(select_items(v, a, true, true)); }},
      {"rejectattr", [](const Value& v, const CallArguments& a) { return Value(select_items(v, a, true, false)); }},
      {"map", map_items},
      {"int", [](const Value& v, const CallArguments& a) {
         const Value* fallback = argument(a, 0, "default");
         if (v.kind() == Kind::integer) return v;
         if (v.is_number()) return Value(int64_t(std::trunc(v.numeric())));
         if (v.is_string()) {
           try {
             size_t used = 0;
             std::string text = get_attribute(v, "strip").as_callable().call({}).as_string();
             int64_t parsed = std::stoll(text, &used);
             if (used == text.size()) return Value(parsed);
           } catch (const std::exception&) {
           }
         }
         return fallback ? *fallback : Value(int64_t(0));
       }},
      {"float", [](const Value& v, const CallArguments& a) {
         const Value* fallback = argument(a, 0, "default");
         if (v.is_number()) return Value(v.numeric());
         if (v.is_string()) {
           try {
             size_t used = 0;
             double parsed = std::stod(v.as_string(), &used);
             if (used == v.as_string().size()) return Value(parsed);
           } catch (const std::exception&) {
           }
         }
         return fallback ? *fallback : Value(0.0);
       }},
      {"abs", [](const Value& v, const CallArguments&) {
         if (v.kind() == Kind::number) return Value(std::fabs(v.as_double()));
         return v.is_number() && integral_value(v) < 0 ? negate(v) : v.kind() == Kind::boolean ? Value(integral_value(v)) : v;
       }},
      {"round", [](const Value& v, const CallArguments& a) {
         if (!v.is_number()) throw EvalError("round: expected a number, got " + v.type_name());
         int64_t precision = 0;
         if (const Value* p = argument(a, 0, "precision")) precision = p->is_number() ? int64_t(p->numeric()) : 0;
         std::string method = argument(a, 1, "method") ? argument(a, 1, "method")->str() : "common";
         double scale = std::pow(10.0, double(precision)), x = v.numeric() * scale;
         // Python's round() rounds halves to even.
         double r = method == "floor" ? std::floor(x) : method == "ceil" ? std::ceil(x) : std::nearbyint(x);
         return Value(r / scale);
       }},
      {"indent", indent_text},
      {"safe", [](const Value& v, const CallArguments&) { return v; }},
      {"e", [](const Value& v, const CallArguments&) { return Value(html_escape(v.str())); }},
      {"escape", [](const Value& v, const CallArguments&) { return Value(html_escape(v.str())); }},
      {"wordcount", [](const Value& v, const CallArguments&) {
         return Value(int64_t(get_attribute(Value(v.str()), "split").as_callable().call({}).as_list().size()));
       }},
      {"min", [](const Value& v, const CallArguments&) {
         List items = iterate(v);
         if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
         return *std::min_element(items.begin(), items.end(), [](const Value& x, const Value& y) { return compare("<", x, y); });
       }},
      {"max", [](const Value& v, const CallArguments&) {
         List items = iterate(v);
         if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
         return *std::max_element(items.begin(), items.end(), [](const Value& x, const Value& y) { return compare("<", x, y); });
       }},
  };
  return table;
}

bool is_iterable(const Value& v) {
  return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
}

const std::map<std::string, Test>& tests() {
  auto compare_test = [](const char* op) {
    return [op](const Value& v, const CallArguments& a) { return compare(op, v, required(a, 0, "other", op)); };
  };
  static const std::map<std::string, Test> table = {
      {"defined", [](const Value& v, const CallArguments&) { return !v.is_undefined(); }},
      {"undefined", [](const Value& v, const CallArguments&) { return v.is_undefined(); }},
      {"none", [](const Value& v, const CallArguments&) { return v.is_none(); }},
      {"boolean", [](const Value& v, const CallArguments&) { return v.kind() == Kind::boolean; }},
      {"true", [](const Value& v, const CallArguments&) { return v.kind() == Kind::boolean && v.as_bool(); }},
      {"false", [](const Value& v, const CallArguments&) { return v.kind() == Kind::boolean && !v.as_bool(); }},
      {"integer", [](const Value& v, const CallArguments&) { return v.kind() == Kind::integer; }},
      {"float", [](const Value& v, const CallArguments&) { return v.kind() == Kind::number; }},
      {"number", [](const Value& v, const CallArguments&) { return v.is_number(); }},
      {"string", [](const Value& v, const CallArguments&) { return v.is_string(); }},
      {"mapping", [](const Value& v, const CallArguments&) { return v.is_dict(); }},
      {"iterable", [](const Value& v, const CallArguments&) { return is_iterable(v); }},
      {"sequence", [](const Value& v, const CallArguments&) { return v.is_string() || v.is_list() || v.is_dict(); }},
      {"callable", [](const Value& v, const CallArguments&) { return v.kind() == Kind::callable; }},
      {"sameas", [](const Value& v, const CallArguments& a) {
         const Value& other = required(a, 0, "other", "sameas");
         // Python's "is": singletons compare by value, containers only to themselves.
         if (v.kind() != other.kind()) return false;
         if (v.is_none() || v.kind() == Kind::boolean) return v == other;
         return false;
       }},
      {"odd", [](const Value& v, const CallArguments&) { return v.kind() == Kind::integer && v.as_int() % 2 != 0; }},
      {"even", [](const Value& v, const CallArguments&) { return v.kind() == Kind::integer && v.as_int() % 2 == 0; }},
      {"divisibleby", [](const Value& v, const CallArguments& a) {
         const Value& n = required(a, 0, "num", "divisibleby");
         if (!v.is_number() || !n.is_number() || n.numeric() == 0) throw EvalError("divisibleby: expected non-zero numbers");
         return std::fmod(v.numeric(), n.numeric()) == 0;
       }},
      {"in", [](const Value& v, const CallArguments& a) { return contains(required(a, 0, "seq", "in"), v); }},
      {"lower", [](const Value& v, const CallArguments&) { return v.is_string() && get_attribute(v, "lower").as_callable().call({}) == v; }},
      {"upper", [](const Value& v, const CallArguments&) { return v.is_string() && get_attribute(v, "upper").as_callable().call({}) == v; }},
      {"eq", compare_test("==")}, {"equalto", compare_test("==")}, {"==", compare_test("==")},
      {"ne", compare_test("!=")}, {"!=", compare_test("!=")},
      {"lt", compare_test("<")}, {"lessthan", compare_test("<")}, {"<", compare_test("<")},
      {"le", compare_test("<=")}, {"<=", compare_test("<=")},
      {"gt", compare_test(">")}, {"greaterthan", compare_test(">")}, {">", compare_test(">")},
      {"ge", compare_test(">=")}, {">=", compare_test(">=")},
  };
  return table;
}

}  // namespace

bool has_filter(const std::string& name) { return filters().count(name) != 0; }
bool has_test(const std::string& name) { return tests().count(name) != 0; }

Value apply_filter(const std::string& name, const Value& subject, const CallArguments& arguments) {
  auto it = filters().find(name);
  if (it == filters().end()) throw EvalError("no filter named '" + name + "'");
  return it->second(subject, arguments);
}

bool apply_test(const std::string& name, const Value& subject, const CallArguments& arguments) {
  auto it = tests().find(name);
  if (it == tests().end()) throw EvalError("no test named '" + name + "'");
  return it->second(subject, arguments);
}

}  // namespace dsk::chat::detail

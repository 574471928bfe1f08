#include "core/config.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <iostream>
#include <iterator>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/yaml_string.hpp"

namespace dsk {
namespace {

const char* type_name(ValueType type) {
  switch (type) {
    case ValueType::boolean: return "a boolean (true or false)";
    case ValueType::integer: return "an integer";
    case ValueType::number: return "a number";
    case ValueType::string: return "a string";
    case ValueType::string_list: return "a string or a list of strings";
    case ValueType::tree: return "a YAML value";
  }
  return "?";
}

// Shortest text that reads back as the same double ("0.0003", not "0.00029999999999999997").
std::string shortest_double(double value) {
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  std::string text(buffer, result.ptr);
  // YAML would read "1e-05" as a string in some parsers: keep a dot or exponent digits explicit.
  if (text.find_first_of(".e") == std::string::npos && text != "inf" && text != "-inf" && text != "nan")
    text += ".0";
  return text;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string suggestion(const Schema& schema, const std::string& path) {
  std::string best;
  size_t best_distance = 4;
  for (const auto& key : schema.keys()) {
    size_t distance = edit_distance(path, key.path);
    if (distance < best_distance) {
      best_distance = distance;
      best = key.path;
    }
  }
  return best.empty() ? "" : str(" (did you mean '", best, "'?)");
}

std::optional<int64_t> parse_integer(const std::string& text) {
  int64_t value = 0;
  auto result = std::from_chars(text.data(), text.data() + text.size(), value);
  if (result.ec == std::errc() && result.ptr == text.data() + text.size()) return value;
  // Accept "1e6" and "2048.0" when they are whole numbers.
  double as_double = 0;
  auto double_result = std::from_chars(text.data(), text.data() + text.size(), as_double);
  if (double_result.ec == std::errc() && double_result.ptr == text.data() + text.size() &&
      std::isfinite(as_double) && as_double == std::floor(as_double) && std::fabs(as_double) < 9.2e18)
    return static_cast<int64_t>(as_double);
  return std::nullopt;
}

std::optional<double> parse_number(const std::string& text) {
  std::string trimmed = text;
  if (!trimmed.empty() && trimmed[0] == '+') trimmed.erase(0, 1);
  if (trimmed == ".inf" || trimmed == "inf") return INFINITY;
  double value = 0;
  auto result = std::from_chars(trimmed.data(), trimmed.data() + trimmed.size(), value);
  if (result.ec == std::errc() && result.ptr == trimmed.data() + trimmed.size()) return value;
  return std::nullopt;
}

std::optional<bool> parse_boolean(const std::string& text) {
  if (text == "true" || text == "True" || text == "TRUE" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "False" || text == "FALSE" || text == "no" || text == "off") return false;
  return std::nullopt;
}

// A bound as people write it: "1", "2147483647", "0.5".
std::string bound_text(double bound) {
  if (bound == std::floor(bound) && std::fabs(bound) < 9e15) return std::to_string(static_cast<int64_t>(bound));
  return str(bound);
}

// A relative path, neither "-" (stdin) nor a URL (registry://, s3://), is relative to the file it
// came from; the result is relative to the working directory like every other path.
std::string relative_to_file(const std::string& value, const std::filesystem::path& file_directory) {
  const std::filesystem::path path(value);
  if (file_directory.empty() || value.empty() || value == "-" || path.is_absolute() ||
      value.find("://") != std::string::npos)
    return value;
  return (file_directory / path).lexically_normal().string();
}

// For the printed config: the same path, absolute, so that the text reads back the same from
// any directory.
std::string absolute_path_text(const std::string& value) {
  if (value.empty() || value == "-" || value.find("://") != std::string::npos) return value;
  return std::filesystem::absolute(value).lexically_normal().string();
}

YAML::Node parse_yaml(const std::string& text, const std::string& source) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw UsageError(str(source, ":", e.mark.line + 1, ":", e.mark.column + 1, ": YAML syntax error: ", e.msg));
  }
}

}  // namespace

std::optional<std::string> numeric_value_problem(const KeySpec& spec, const std::string& text) {
  std::optional<double> number;
  if (spec.type == ValueType::integer) {
    if (auto parsed = parse_integer(text)) number = static_cast<double>(*parsed);
  } else {
    number = parse_number(text);
  }
  if (!number || std::isnan(*number)) return str("expects ", type_name(spec.type), ", got '", text, "'");
  if (spec.minimum && *number < *spec.minimum) return str("must be at least ", bound_text(*spec.minimum), ", got ", text);
  if (spec.maximum && *number > *spec.maximum) return str("must be at most ", bound_text(*spec.maximum), ", got ", text);
  return std::nullopt;
}

std::string yaml_location(const std::string& source, const YAML::Node& node) {
  if (node.Mark().is_null()) return source;
  return str(source, ":", node.Mark().line + 1);
}

// ---- Schema ----

KeySpec& Schema::add(KeySpec spec) {
  if (find(spec.path)) throw InternalError(str("schema declares '", spec.path, "' twice"));
  keys_.push_back(std::move(spec));
  return keys_.back();
}

KeySpec& Schema::boolean(const std::string& path, bool default_value, std::string help) {
  return add({path, ValueType::boolean, YAML::Node(default_value ? "true" : "false"), {}, {}, {}, std::move(help)});
}

KeySpec& Schema::integer(const std::string& path, std::optional<int64_t> default_value, std::string help) {
  std::optional<YAML::Node> node;
  if (default_value) node = YAML::Node(std::to_string(*default_value));
  return add({path, ValueType::integer, node, {}, {}, {}, std::move(help)});
}

KeySpec& Schema::number(const std::string& path, std::optional<double> default_value, std::string help) {
  std::optional<YAML::Node> node;
  if (default_value) node = YAML::Node(shortest_double(*default_value));
  return add({path, ValueType::number, node, {}, {}, {}, std::move(help)});
}

KeySpec& Schema::string(const std::string& path, std::optional<std::string> default_value, std::string help) {
  std::optional<YAML::Node> node;
  if (default_value) node = YAML::Node(*default_value);
  return add({path, ValueType::string, node, {}, {}, {}, std::move(help)});
}

KeySpec& Schema::choice(const std::string& path, std::string default_value, std::vector<std::string> choices,
                        std::string help) {
  return add({path, ValueType::string, YAML::Node(default_value), {}, {}, std::move(choices), std::move(help)});
}

KeySpec& Schema::string_list(const std::string& path, std::vector<std::string> default_value, std::string help) {
  YAML::Node node(YAML::NodeType::Sequence);
  for (auto& item : default_value) node.push_back(item);
  return add({path, ValueType::string_list, node, {}, {}, {}, std::move(help)});
}

KeySpec& Schema::path(const std::string& path, std::optional<std::string> default_value, std::string help) {
  KeySpec& spec = string(path, std::move(default_value), std::move(help));
  spec.is_path = true;
  return spec;
}

KeySpec& Schema::path_list(const std::string& path, std::vector<std::string> default_value, std::string help) {
  KeySpec& spec = string_list(path, std::move(default_value), std::move(help));
  spec.is_path = true;
  return spec;
}

KeySpec& Schema::tree(const std::string& path, std::string help) {
  return add({path, ValueType::tree, std::nullopt, {}, {}, {}, std::move(help)});
}

const KeySpec* Schema::find(const std::string& path) const {
  for (const auto& key : keys_)
    if (key.path == path) return &key;
  return nullptr;
}

bool Schema::is_section(const std::string& path) const {
  std::string prefix = path + ".";
  for (const auto& key : keys_)
    if (key.path.compare(0, prefix.size(), prefix) == 0) return true;
  return false;
}

// ---- Config ----

Config Config::load(const Schema& schema, const std::string& path, const std::vector<std::string>& overrides,
                    const std::vector<FlagOverride>& flags) {
  if (path.empty()) return from_text(schema, "", "<defaults>", overrides, flags);
  if (path == "-") {
    std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    return from_text(schema, text, "<stdin>", overrides, flags);
  }
  std::string text;
  try {
    text = read_file(path);
  } catch (const DataError& e) {  // a -c that names no readable file is a usage error (exit 2)
    throw UsageError(str("config: ", e.what()));
  }
  return from_text(schema, text, path, overrides, flags, std::filesystem::path(path).parent_path());
}

Config Config::from_text(const Schema& schema, const std::string& text, const std::string& source,
                         const std::vector<std::string>& overrides, const std::vector<FlagOverride>& flags,
                         const std::filesystem::path& file_directory) {
  Config config(schema);
  config.source_ = source;
  config.apply_defaults();
  config.merge_document(parse_yaml(text, source), source, file_directory);
  for (const auto& assignment : overrides) config.apply_override(assignment);
  for (const auto& flag : flags) config.set(flag.key, flag.yaml_value, str(flag.flag, " ", flag.shown));
  for (const auto& key : schema.keys())
    if (key.required && !config.has(key.path))
      throw UsageError(str(source, ": missing required key '", key.path, "' (", key.help, ")"));
  return config;
}

void Config::apply_defaults() {
  for (const auto& key : schema_->keys())
    if (key.default_value) values_[key.path] = YAML::Clone(*key.default_value);
}

void Config::merge_document(const YAML::Node& document, const std::string& source,
                            const std::filesystem::path& file_directory) {
  if (!document || document.IsNull()) return;
  if (!document.IsMap()) throw UsageError(str(yaml_location(source, document), ": a config must be a YAML mapping of keys"));
  merge_node(document, "", source, file_directory);
}

void Config::merge_node(const YAML::Node& node, const std::string& prefix, const std::string& source,
                        const std::filesystem::path& file_directory) {
  for (const auto& entry : node) {
    std::string where = yaml_location(source, entry.first);
    if (!entry.first.IsScalar())  // "{a: 1}: 2" is valid YAML, but no config key
      throw UsageError(str(where, ": a key must be a plain name, not a ", entry.first.IsMap() ? "mapping" : "list"));
    std::string name = entry.first.Scalar();
    std::string path = prefix.empty() ? name : prefix + "." + name;
    if (const KeySpec* spec = schema_->find(path)) {
      assign(*spec, entry.second, where, file_directory);
    } else if (schema_->is_section(path)) {
      if (!entry.second.IsMap() && !entry.second.IsNull())
        throw UsageError(str(where, ": key '", path, "' is a section and expects a mapping of keys"));
      if (entry.second.IsMap()) merge_node(entry.second, path, source, file_directory);
    } else {
      throw UsageError(str(where, ": unknown key '", path, "'", suggestion(*schema_, path)));
    }
  }
}

void Config::assign(const KeySpec& spec, const YAML::Node& value, const std::string& where,
                    const std::filesystem::path& file_directory) {
  where_[spec.path] = where;
  auto fail = [&](const std::string& what) {
    throw UsageError(str(where, ": key '", spec.path, "' ", what));
  };
  auto scalar_text = [&]() -> std::string {
    if (!value.IsScalar()) fail(str("expects ", type_name(spec.type)));
    return value.Scalar();
  };
  auto as_path = [&](const std::string& text) {
    return spec.is_path ? relative_to_file(text, file_directory) : text;
  };
  if (value.IsNull() && spec.type != ValueType::string_list) {
    // "key: null", "key:" or --set key=null unsets an optional key (a flag replacing it, say).
    values_.erase(spec.path);
    if (spec.default_value) fail("cannot be empty");
    return;
  }
  switch (spec.type) {
    case ValueType::boolean: {
      std::string text = scalar_text();
      if (!parse_boolean(text)) fail(str("expects ", type_name(spec.type), ", got '", text, "'"));
      values_[spec.path] = YAML::Node(*parse_boolean(text) ? "true" : "false");
      return;
    }
    case ValueType::integer: {
      std::string text = scalar_text();
      if (auto problem = numeric_value_problem(spec, text)) fail(*problem);
      values_[spec.path] = YAML::Node(std::to_string(*parse_integer(text)));
      return;
    }
    case ValueType::number: {
      std::string text = scalar_text();
      if (auto problem = numeric_value_problem(spec, text)) fail(*problem);
      values_[spec.path] = YAML::Node(text);
      return;
    }
    case ValueType::string: {
      std::string text = scalar_text();
      if (!spec.choices.empty() && std::find(spec.choices.begin(), spec.choices.end(), text) == spec.choices.end()) {
        std::string allowed;
        for (const auto& choice : spec.choices) allowed += (allowed.empty() ? "" : ", ") + choice;
        fail(str("must be one of ", allowed, "; got '", text, "'"));
      }
      values_[spec.path] = YAML::Node(as_path(text));
      return;
    }
    case ValueType::string_list: {
      YAML::Node list(YAML::NodeType::Sequence);
      if (value.IsScalar()) {
        list.push_back(as_path(value.Scalar()));
      } else if (value.IsSequence()) {
        for (const auto& item : value) {
          if (!item.IsScalar()) fail(str("expects ", type_name(spec.type)));
          list.push_back(as_path(item.Scalar()));
        }
      } else if (!value.IsNull()) {
        fail(str("expects ", type_name(spec.type)));
      }
      values_[spec.path] = list;
      return;
    }
    case ValueType::tree:
      values_[spec.path] = YAML::Clone(value);
      return;
  }
}

void Config::apply_override(const std::string& assignment) {
  auto equals = assignment.find('=');
  std::string where = str("--set ", assignment);
  if (equals == std::string::npos || equals == 0)
    throw UsageError(str(where, ": expected key.path=value"));
  set(assignment.substr(0, equals), assignment.substr(equals + 1), where);
}

void Config::set(const std::string& path, const std::string& yaml_value, const std::string& source) {
  // "key=" is an empty string for a key of the schema, and null inside a tree (as "key:" is in a
  // file: an empty scalar made here would print as "" and read back as a string).
  const bool in_tree = !schema_->find(path) || schema_->find(path)->type == ValueType::tree;
  YAML::Node value = !yaml_value.empty() ? parse_yaml(yaml_value, source)
                     : in_tree           ? YAML::Node(YAML::NodeType::Null)
                                         : YAML::Node(std::string());
  if (const KeySpec* spec = schema_->find(path)) {
    assign(*spec, value, source);
    return;
  }
  // A key inside a tree value: "model.config.hidden_size=64".
  for (const auto& key : schema_->keys()) {
    if (key.type != ValueType::tree || path.compare(0, key.path.size() + 1, key.path + ".") != 0) continue;
    YAML::Node& tree = values_[key.path];
    if (!tree || !tree.IsMap()) tree = YAML::Node(YAML::NodeType::Map);
    std::string rest = path.substr(key.path.size() + 1);
    YAML::Node cursor = tree;
    size_t start = 0;
    for (size_t dot; (dot = rest.find('.', start)) != std::string::npos; start = dot + 1) {
      std::string part = rest.substr(start, dot - start);
      if (!cursor[part] || !cursor[part].IsMap()) cursor[part] = YAML::Node(YAML::NodeType::Map);
      cursor.reset(cursor[part]);
    }
    cursor[rest.substr(start)] = value;
    return;
  }
  throw UsageError(str(source, ": unknown key '", path, "'", suggestion(*schema_, path)));
}

bool Config::has(const std::string& path) const { return values_.count(path) > 0; }

const YAML::Node& Config::value_of(const std::string& path, ValueType expected) const {
  const KeySpec* spec = schema_->find(path);
  if (!spec) throw InternalError(str("config key '", path, "' is not in the schema"));
  if (spec->type != expected && !(expected == ValueType::string && spec->type == ValueType::string))
    throw InternalError(str("config key '", path, "' read as the wrong type"));
  auto found = values_.find(path);
  if (found == values_.end()) throw UsageError(str(source_, ": key '", path, "' is not set (", spec->help, ")"));
  return found->second;
}

int64_t Config::get_int(const std::string& path) const {
  return *parse_integer(value_of(path, ValueType::integer).Scalar());
}
double Config::get_double(const std::string& path) const {
  return *parse_number(value_of(path, ValueType::number).Scalar());
}
bool Config::get_bool(const std::string& path) const {
  return *parse_boolean(value_of(path, ValueType::boolean).Scalar());
}
std::string Config::get_string(const std::string& path) const {
  return value_of(path, ValueType::string).Scalar();
}
std::vector<std::string> Config::get_strings(const std::string& path) const {
  std::vector<std::string> items;
  for (const auto& item : value_of(path, ValueType::string_list)) items.push_back(item.Scalar());
  return items;
}
YAML::Node Config::get_tree(const std::string& path) const { return value_of(path, ValueType::tree); }

std::string Config::where(const std::string& path) const {
  auto found = where_.find(path);
  return found == where_.end() ? str(source_, " (default of ", path, ")") : found->second;
}

namespace {

YAML::Node absolute_paths(const KeySpec& key, const YAML::Node& value) {
  if (key.type == ValueType::string) return YAML::Node(absolute_path_text(value.Scalar()));
  YAML::Node list(YAML::NodeType::Sequence);
  for (const auto& item : value) list.push_back(absolute_path_text(item.Scalar()));
  return list;
}

}  // namespace

std::string Config::to_yaml() const {
  YAML::Node root(YAML::NodeType::Map);
  for (const auto& key : schema_->keys()) {
    auto found = values_.find(key.path);
    if (found == values_.end()) continue;
    YAML::Node cursor = root;
    size_t start = 0;
    for (size_t dot; (dot = key.path.find('.', start)) != std::string::npos; start = dot + 1) {
      std::string part = key.path.substr(start, dot - start);
      if (!cursor[part]) cursor[part] = YAML::Node(YAML::NodeType::Map);
      cursor.reset(cursor[part]);
    }
    cursor[key.path.substr(start)] = key.is_path ? absolute_paths(key, found->second) : found->second;
  }
  YAML::Emitter out;
  emit_node(out, root);  // not `out << root`: a quoted '123' would print as a number
  return std::string(out.c_str()) + "\n";
}

}  // namespace dsk

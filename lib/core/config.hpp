// YAML configs with a schema per tool.
//
// A tool declares its keys once (dotted paths, a type, a default, a range or a set of choices,
// one line of help). Config::load() then layers: schema defaults, the YAML file (-c FILE, or
// "-" for stdin), and every --set key.path=value in order. Each layer is checked against the
// schema: an unknown key, a wrong type or an out-of-range value is a UsageError naming the
// source (file and line, or the --set flag) and the key. The effective config prints as YAML
// (--print-config) in schema order and is itself a valid input.
//
// A key of type `tree` accepts any YAML below it unchecked (for example inline HF config.json
// fields under model.config); its consumer validates it.
//
// Keys declared with path() or path_list() name files or directories. A relative path in a config
// file is relative to that file's directory (configs/a.yaml saying `data: ../shards` means
// `shards`); from --set, a flag or stdin it is relative to the working directory. The effective
// config prints them absolute, so that it reads back the same from anywhere.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace dsk {

enum class ValueType { boolean, integer, number, string, string_list, tree };

struct KeySpec {
  std::string path;  // "optim.lr"
  ValueType type = ValueType::string;
  std::optional<YAML::Node> default_value;  // absent: optional key with no default
  std::optional<double> minimum;
  std::optional<double> maximum;
  std::vector<std::string> choices;  // for strings: the allowed values
  std::string help;
  bool required = false;
  bool is_path = false;  // a file or directory (strings and string lists): see the top of this file
};

// What is wrong with `text` as the value of an integer or number key of spec's type and range
// ("expects an integer, got 'x'", "must be at least 1, got 0"), or nullopt when it is fine. The
// config's own check, shared with the numeric flags of core/cli so that both read alike.
std::optional<std::string> numeric_value_problem(const KeySpec& spec, const std::string& text);

// A key set by a command-line flag that stands for it (-o for output.dir): applied after every
// --set, and named as the flag in errors ("--steps 0: key 'steps' must be at least 1, got 0").
struct FlagOverride {
  std::string flag;        // "--steps"
  std::string key;         // "steps"
  std::string yaml_value;  // the value as YAML text ("null" unsets an optional key)
  std::string shown;       // the value as typed, for messages
};

class Schema {
 public:
  // Builders return the added spec so that ranges and choices can be chained:
  //   schema.integer("data.seq_len", 1024, "tokens per sequence").minimum = 1;
  KeySpec& boolean(const std::string& path, bool default_value, std::string help);
  KeySpec& integer(const std::string& path, std::optional<int64_t> default_value, std::string help);
  KeySpec& number(const std::string& path, std::optional<double> default_value, std::string help);
  KeySpec& string(const std::string& path, std::optional<std::string> default_value, std::string help);
  KeySpec& choice(const std::string& path, std::string default_value, std::vector<std::string> choices,
                  std::string help);
  // A list of strings; a single string is accepted and read as a list of one.
  KeySpec& string_list(const std::string& path, std::vector<std::string> default_value, std::string help);
  // A string, or a list of strings, naming files or directories (URLs and "-" are left as they are).
  KeySpec& path(const std::string& path, std::optional<std::string> default_value, std::string help);
  KeySpec& path_list(const std::string& path, std::vector<std::string> default_value, std::string help);
  KeySpec& tree(const std::string& path, std::string help);

  const KeySpec* find(const std::string& path) const;
  const std::vector<KeySpec>& keys() const { return keys_; }
  // True when `path` is a prefix section of some key ("optim" for "optim.lr").
  bool is_section(const std::string& path) const;

 private:
  KeySpec& add(KeySpec spec);
  std::vector<KeySpec> keys_;
};

class Config {
 public:
  // path "" means no file; "-" reads YAML from stdin. overrides are "key.path=value" strings
  // (--set), applied in order after the file; flags after them.
  static Config load(const Schema& schema, const std::string& path, const std::vector<std::string>& overrides,
                     const std::vector<FlagOverride>& flags = {});
  // The same, from YAML text (tests, and configs embedded in checkpoints). `source` names it in
  // errors; relative paths in the text are relative to `file_directory` ("": the working directory).
  static Config from_text(const Schema& schema, const std::string& text, const std::string& source,
                          const std::vector<std::string>& overrides = {},
                          const std::vector<FlagOverride>& flags = {},
                          const std::filesystem::path& file_directory = {});

  bool has(const std::string& path) const;
  int64_t get_int(const std::string& path) const;
  double get_double(const std::string& path) const;
  bool get_bool(const std::string& path) const;
  std::string get_string(const std::string& path) const;
  std::vector<std::string> get_strings(const std::string& path) const;
  YAML::Node get_tree(const std::string& path) const;

  // Sets a value in code (checked like --set); `source` names who set it in errors.
  void set(const std::string& path, const std::string& yaml_value, const std::string& source);

  std::string to_yaml() const;
  const Schema& schema() const { return *schema_; }
  const std::string& source() const { return source_; }
  // Where a key got its value, for errors a consumer finds later (a malformed duration, a bad
  // entry under a tree key): "file.yaml:12", "--set key=value", or the source for a default.
  std::string where(const std::string& path) const;

 private:
  explicit Config(const Schema& schema) : schema_(&schema) {}
  void apply_defaults();
  void merge_document(const YAML::Node& document, const std::string& source,
                      const std::filesystem::path& file_directory);
  void merge_node(const YAML::Node& node, const std::string& prefix, const std::string& source,
                  const std::filesystem::path& file_directory);
  void assign(const KeySpec& spec, const YAML::Node& value, const std::string& where,
              const std::filesystem::path& file_directory = {});
  void apply_override(const std::string& assignment);
  const YAML::Node& value_of(const std::string& path, ValueType expected) const;

  const Schema* schema_;
  std::map<std::string, YAML::Node> values_;  // by key path; printed in schema order
  std::string source_;  // the file the config came from, for messages
  std::map<std::string, std::string> where_;  // by key path: the file:line or --set that set it
};

// "file.yaml:12" from a node's mark (line is 0-based in yaml-cpp).
std::string yaml_location(const std::string& source, const YAML::Node& node);

}  // namespace dsk

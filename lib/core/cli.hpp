// The command-line conventions every tool shares (tools/*.cpp use only this, CLI11 and lib/):
//   -c/--config FILE|-   repeatable --set key.path=value   --print-config
//   -v/--verbose (twice for more)   -q/--quiet   --version   --help (with real examples)
// and one main wrapper that maps errors to the exit codes of core/error.hpp.
//
//   int main(int argc, char** argv) {
//     CLI::App app{"Tokenize text into token shards", "dsk-tokenize"};
//     dsk::cli::CommonOptions common;
//     dsk::cli::add_common_flags(app, common);
//     dsk::cli::add_config_flags(app, common);
//     ...
//     return dsk::cli::run(app, argc, argv, common, [&] { ...; return 0; });
//   }
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "core/config.hpp"

namespace dsk::cli {

struct CommonOptions {
  std::string config_path;
  std::vector<std::string> overrides;        // --set, in order
  std::vector<FlagOverride> flag_overrides;  // flags that stand for keys, applied after --set
  bool print_config = false;
  int verbose = 0;
  bool quiet = false;
};

// -v, -q, --version.
void add_common_flags(CLI::App& app, CommonOptions& options);
// -c/--config, --set, --print-config.
void add_config_flags(CLI::App& app, CommonOptions& options);
// --device auto|cpu|cuda and --precision auto|bf16|fp32 of a subcommand that runs a model (the
// choices of the config keys device and precision, tensor/device.hpp).
struct DeviceFlags {
  std::string device = "auto", precision = "auto";
};
void add_device_flags(CLI::App& command, DeviceFlags& flags);
// Shown at the end of --help under "Examples:".
void set_examples(CLI::App& app, const std::vector<std::string>& examples);

// The effective config from -c and --set. With --print-config, prints it on stdout and
// returns std::nullopt: the tool then exits 0 without doing anything else.
std::optional<Config> load_config(const Schema& schema, const CommonOptions& options);

// Parses argv, applies -v/-q, runs body and returns the exit code: body's on success,
// 2 for a usage error, and each dsk::Error's own code, after one "<tool>: error: ..." line.
int run(CLI::App& app, int argc, char** argv, const CommonOptions& options, const std::function<int()>& body);

std::string version_string();

// The override for a flag that stands for `key`, with the value double-quoted so that any text
// (a path named "true", a number-like name) reads back as a YAML string; numbers are still
// checked as the key's type and range. `flag` names it in errors ("--steps").
FlagOverride flag_override(const std::string& flag, const std::string& key, const std::string& value);
// The same for a list of strings: key=["a", "b"].
FlagOverride flag_list_override(const std::string& flag, const std::string& key, const std::vector<std::string>& values);

// A check for a numeric flag that stands for no config key, worded like a key's check:
// "--samples: must be at least 1, got 0", "--top-p: expects a number, got 'x'". T's own range
// bounds it too (an int flag given 3000000000 is refused, not wrapped).
template <typename T>
CLI::Validator numeric(std::optional<double> minimum = std::nullopt, std::optional<double> maximum = std::nullopt);

// Flags that each stand for one config key (-o for output.dir, say). Given on the command line,
// they are applied after -c and --set, so a flag wins over both:
//   cli::KeyedFlags keyed(app);
//   keyed.add("-o,--output", "DIR", flags.output, "output.dir", "Shard directory (output.dir)");
//   ... effective.flag_overrides = keyed.overrides();
class KeyedFlags {
 public:
  explicit KeyedFlags(CLI::App& app) : app_(&app) {}
  CLI::Option* add(const std::string& name, const std::string& type_name, std::string& target,
                   const std::string& key, const std::string& help);
  // An override for each keyed flag that was given, in the order they were added.
  std::vector<FlagOverride> overrides() const;

 private:
  CLI::App* app_;
  std::vector<std::pair<CLI::Option*, std::string>> keyed_;
};

CLI::Validator numeric_validator(ValueType type, std::optional<double> minimum, std::optional<double> maximum);

template <typename T>
CLI::Validator numeric(std::optional<double> minimum, std::optional<double> maximum) {
  // An integer type's bounds, where a double holds them exactly; wider types are bounded by the
  // integer parser (int64).
  constexpr bool exact = std::is_integral_v<T> && std::numeric_limits<T>::digits <= 53;
  if (exact && !minimum) minimum = double(std::numeric_limits<T>::lowest());
  if (exact && !maximum) maximum = double(std::numeric_limits<T>::max());
  if (std::is_unsigned_v<T> && !minimum) minimum = 0;
  return numeric_validator(std::is_integral_v<T> ? ValueType::integer : ValueType::number, minimum, maximum);
}

}  // namespace dsk::cli

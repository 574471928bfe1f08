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
#include <string>
#include <vector>

#include "core/config.hpp"

namespace dsk::cli {

struct CommonOptions {
  std::string config_path;
  std::vector<std::string> overrides;
  bool print_config = false;
  int verbose = 0;
  bool quiet = false;
};

// -v, -q, --version.
void add_common_flags(CLI::App& app, CommonOptions& options);
// -c/--config, --set, --print-config.
void add_config_flags(CLI::App& app, CommonOptions& options);
// Shown at the end of --help under "Examples:".
void set_examples(CLI::App& app, const std::vector<std::string>& examples);

// The effective config from -c and --set. With --print-config, prints it on stdout and
// returns std::nullopt: the tool then exits 0 without doing anything else.
std::optional<Config> load_config(const Schema& schema, const CommonOptions& options);

// Parses argv, applies -v/-q, runs body and returns the exit code: body's on success,
// 2 for a usage error, and each dsk::Error's own code, after one "<tool>: error: ..." line.
int run(CLI::App& app, int argc, char** argv, const CommonOptions& options, const std::function<int()>& body);

std::string version_string();

// "key=value" for --set, with the value double-quoted so that any text (a path named "true", a
// number-like name) reads back as a YAML string; for flags that stand for a config key.
std::string quoted_assignment(const std::string& key, const std::string& value);
// The same for a list of strings: key=["a", "b"].
std::string quoted_list_assignment(const std::string& key, const std::vector<std::string>& values);

// Flags that each stand for one config key (-o for output.dir, say). Given on the command line,
// they are applied after -c and --set, so a flag wins over both:
//   cli::KeyedFlags keyed(app);
//   keyed.add("-o,--output", "DIR", flags.output, "output.dir", "Shard directory (output.dir)");
//   ... effective.overrides = keyed.append_overrides(common.overrides);
class KeyedFlags {
 public:
  explicit KeyedFlags(CLI::App& app) : app_(&app) {}
  CLI::Option* add(const std::string& name, const std::string& type_name, std::string& target,
                   const std::string& key, const std::string& help);
  // `overrides` followed by key="value" for each keyed flag that was given.
  std::vector<std::string> append_overrides(std::vector<std::string> overrides) const;

 private:
  CLI::App* app_;
  std::vector<std::pair<CLI::Option*, std::string>> keyed_;
};

}  // namespace dsk::cli

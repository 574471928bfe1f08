#include "core/cli.hpp"

#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <new>

#include "core/error.hpp"
#include "core/log.hpp"

namespace dsk::cli {

std::string version_string() {
#ifdef DSK_VERSION
  return str("dsk ", DSK_VERSION);
#else
  return "dsk";
#endif
}

void add_common_flags(CLI::App& app, CommonOptions& options) {
  app.add_flag("-v,--verbose", options.verbose, "More detail on stderr (debug messages)");
  app.add_flag("-q,--quiet", options.quiet, "Only errors on stderr: no progress, no info");
  app.set_version_flag("--version", version_string());
}

void add_config_flags(CLI::App& app, CommonOptions& options) {
  app.add_option("-c,--config", options.config_path, "YAML config file, or - to read it from stdin")->type_name("FILE");
  app.add_option("--set", options.overrides, "Override one config key: --set key.path=value (repeatable)")
      ->type_name("KEY=VALUE")
      ->take_all()
      ->allow_extra_args(false);
  app.add_flag("--print-config", options.print_config, "Print the effective config as YAML and exit");
}

void add_device_flags(CLI::App& command, DeviceFlags& flags) {
  command.add_option("--device", flags.device, "auto, cpu or cuda (default auto: CUDA when a GPU is visible)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  command.add_option("--precision", flags.precision, "auto, bf16 or fp32 (default auto: bf16 on CUDA)")
      ->check(CLI::IsMember({"auto", "bf16", "fp32"}));
}

void set_examples(CLI::App& app, const std::vector<std::string>& examples) {
  std::string footer = "\nExamples:\n";
  for (const auto& example : examples) footer += "  " + example + "\n";
  app.footer(footer);
}

std::optional<Config> load_config(const Schema& schema, const CommonOptions& options) {
  Config config = Config::load(schema, options.config_path, options.overrides, options.flag_overrides);
  if (options.print_config) {
    std::string text = config.to_yaml();
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return std::nullopt;
  }
  return config;
}

int run(CLI::App& app, int argc, char** argv, const CommonOptions& options, const std::function<int()>& body) {
  set_tool_name(app.get_name().empty() ? "dsk" : app.get_name());
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    log_error(e.what());
    std::fprintf(stderr, "Run '%s --help' for usage.\n", app.get_name().c_str());
    return static_cast<int>(ExitCode::usage);
  }
  if (options.quiet) set_log_level(LogLevel::error);
  else if (options.verbose > 0) set_log_level(LogLevel::debug);
  try {
    return body();
  } catch (const Interrupted& e) {
    log_line(LogLevel::warn, e.what());  // even under -q: it says where the saved state is
    return static_cast<int>(e.code());
  } catch (const Error& e) {
    log_error(e.what());
    return static_cast<int>(e.code());
  } catch (const YAML::Exception& e) {
    log_error("YAML: ", e.what());
    return static_cast<int>(ExitCode::data);
  } catch (const std::bad_alloc&) {
    log_error("out of memory");
    return static_cast<int>(ExitCode::resource);
  } catch (const std::exception& e) {
    log_error("internal error: ", e.what());
    return static_cast<int>(ExitCode::internal);
  }
}

FlagOverride flag_override(const std::string& flag, const std::string& key, const std::string& value) {
  YAML::Emitter out;
  out << YAML::DoubleQuoted << value;
  return {flag, key, out.c_str(), value};
}

FlagOverride flag_list_override(const std::string& flag, const std::string& key, const std::vector<std::string>& values) {
  YAML::Emitter out;
  out << YAML::Flow << YAML::BeginSeq;
  std::string shown;
  for (const auto& value : values) {
    out << YAML::DoubleQuoted << value;
    shown += (shown.empty() ? "" : " ") + value;
  }
  out << YAML::EndSeq;
  return {flag, key, out.c_str(), shown};
}

CLI::Validator numeric_validator(ValueType type, std::optional<double> minimum, std::optional<double> maximum) {
  KeySpec spec;
  spec.type = type;
  spec.minimum = minimum;
  spec.maximum = maximum;
  // CLI11 puts the flag's name before the message: "--samples: must be at least 1, got 0".
  return CLI::Validator(
      [spec](std::string& text) { return numeric_value_problem(spec, text).value_or(std::string()); },
      "");
}

CLI::Option* KeyedFlags::add(const std::string& name, const std::string& type_name, std::string& target,
                              const std::string& key, const std::string& help) {
  CLI::Option* option = app_->add_option(name, target, help)->type_name(type_name);
  keyed_.emplace_back(option, key);
  return option;
}

std::vector<FlagOverride> KeyedFlags::overrides() const {
  std::vector<FlagOverride> overrides;
  for (const auto& [option, key] : keyed_)
    if (option->count() > 0) overrides.push_back(flag_override(option->get_name(), key, option->as<std::string>()));
  return overrides;
}

}  // namespace dsk::cli

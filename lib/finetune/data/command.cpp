#include "finetune/data/command.hpp"

#include "core/log.hpp"

namespace dsk::finetune {

DataCommand::DataCommand(const std::string& description, const std::string& name) : CLI::App(description, name) {
  add_flag("-v,--verbose", verbose_, "More detail on stderr (debug messages)");
  add_flag("-q,--quiet", quiet_, "Only errors on stderr");
}

void DataCommand::apply_log_flags() const {
  if (quiet_) set_log_level(LogLevel::error);
  else if (verbose_ > 0) set_log_level(LogLevel::debug);
}

std::optional<int> run_data_command(CLI::App& app) {
  for (CLI::App* subcommand : app.get_subcommands()) {
    auto* command = dynamic_cast<DataCommand*>(subcommand);
    if (command) {
      return command->run();
    }
  }
  return std::nullopt;
}

}  // namespace dsk::finetune

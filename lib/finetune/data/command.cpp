#include "finetune/data/command.hpp"

#include <cstdio>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/log.hpp"

namespace dsk::finetune {

DataCommand::DataCommand(const std::string& description, const std::string& name) : CLI::App(description, name) {
  add_flag("-v,--verbose", verbose_, "More detail on stderr (debug messages)");
  add_flag("-q,--quiet", quiet_, "Only errors on stderr");
}

void DataCommand::add_model_flags(ModelFlags& flags) {
  add_option("-m,--model", flags.model, "Model checkpoint directory (HF layout, with its tokenizer)")->type_name("DIR")->required();
  add_option("--tokenizer", flags.tokenizer, "Tokenizer directory, if not the model's")->type_name("DIR");
  add_option("--device", flags.device, "auto, cpu or cuda")->type_name("DEVICE")->capture_default_str()
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  add_option("--precision", flags.precision, "auto, bf16 or fp32")->type_name("P")->capture_default_str()
      ->check(CLI::IsMember({"auto", "bf16", "fp32"}));
}

void write_output(const std::string& path, const std::string& text) {
  if (!path.empty()) {
    write_file_atomic(path, text);
    return;
  }
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0)
    throw ResourceError("cannot write to stdout");
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

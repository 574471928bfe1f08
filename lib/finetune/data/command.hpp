// The data subcommands of dsk-finetune (clean, select, classify) as self-contained CLI11
// subcommands, so that the tool's main registers them in one line each and runs the one given:
//
//   CLI::App app{"...", "dsk-finetune"};
//   finetune::add_clean_command(app);  finetune::add_select_command(app);  finetune::add_classify_command(app);
//   return cli::run(app, argc, argv, common, [&] {
//     if (std::optional<int> code = finetune::run_data_command(app)) return *code;
//     ...  // training
//   });
//
// Each subcommand holds its own flags (a CLI::App subclass owned by the parent), takes -v/-q
// after its name, and does its work in run(), inside cli::run's error handling (exit codes of
// core/error.hpp: 2 usage, 3 bad data, 4 resources).
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>

namespace dsk::finetune {

class DataCommand : public CLI::App {
 public:
  DataCommand(const std::string& description, const std::string& name);
  virtual int run() = 0;

 protected:
  void apply_log_flags() const;  // -v/-q given after the subcommand's name

  // The flags of the subcommands that run a model: -m/--model, --tokenizer, --device, --precision.
  struct ModelFlags {
    std::string model, tokenizer, device = "auto", precision = "auto";
  };
  void add_model_flags(ModelFlags& flags);

 private:
  int verbose_ = 0;
  bool quiet_ = false;
};

// Text to a file (written whole under a temporary name, then renamed) or, for an empty path, stdout.
void write_output(const std::string& path, const std::string& text);

// Registers clean, select and classify (each declared in its own header), so that a tool's main
// needs none of the data headers (their Example is not the training code's).
void add_data_commands(CLI::App& app);

// The exit code of the data subcommand given on the command line, or nullopt when none was.
std::optional<int> run_data_command(CLI::App& app);

}  // namespace dsk::finetune

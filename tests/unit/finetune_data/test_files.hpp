// Scratch files for the finetune_data tests: a fresh directory per test, removed afterwards.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "core/cli.hpp"
#include "core/fs.hpp"
#include "finetune/data/classify.hpp"
#include "finetune/data/clean.hpp"
#include "finetune/data/select.hpp"

namespace dsk::finetune::testing {

class ScratchDirectory {
 public:
  explicit ScratchDirectory(const std::string& name)
      : path_(std::filesystem::temp_directory_path() / ("dsk-ft-data-" + name + "-" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDirectory() { std::filesystem::remove_all(path_); }
  std::filesystem::path write(const std::string& name, const std::string& contents) const {
    std::ofstream(path_ / name, std::ios::binary) << contents;
    return path_ / name;
  }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Runs "dsk-finetune ARGS..." through cli::run with the data subcommands registered, as the
// tool's main will: the exit code, with errors printed on stderr.
inline int run_data_cli(std::vector<std::string> args) {
  CLI::App app{"test", "dsk-finetune"};
  cli::CommonOptions common;
  add_clean_command(app);
  add_select_command(app);
  add_classify_command(app);
  args.insert(args.begin(), "dsk-finetune");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return cli::run(app, int(argv.size()), argv.data(), common, [&] { return run_data_command(app).value_or(99); });
}

inline const std::filesystem::path kTinyTokenizer =
    std::filesystem::path(DSK_SOURCE_DIR) / "tests/fixtures/tokenizer/tiny-gpt2/tokenizer.json";
inline const std::filesystem::path kChatFixtures = std::filesystem::path(DSK_SOURCE_DIR) / "tests/fixtures/chat";

}  // namespace dsk::finetune::testing

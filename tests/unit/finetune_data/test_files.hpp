// Scratch files for the finetune_data tests: a fresh directory per test, removed afterwards.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "core/fs.hpp"

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

inline const std::filesystem::path kTinyTokenizer =
    std::filesystem::path(DSK_SOURCE_DIR) / "tests/fixtures/tokenizer/tiny-gpt2/tokenizer.json";
inline const std::filesystem::path kChatFixtures = std::filesystem::path(DSK_SOURCE_DIR) / "tests/fixtures/chat";

}  // namespace dsk::finetune::testing

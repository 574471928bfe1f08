// An empty directory under the system's temporary directory, unique to this test process.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

inline std::filesystem::path scratch_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("dsk-test-" + name + "-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// Replays the fuzzer's seed and regression inputs (tests/fixtures/fuzz/safetensors/, see
// tests/fuzz/CMakeLists.txt for how to rerun the fuzzer): each must parse or throw DataError.
#include <doctest/doctest.h>

#include <filesystem>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "io/safetensors.hpp"

namespace fs = std::filesystem;
using namespace dsk;
using namespace dsk::io;

TEST_CASE("every fuzz regression input parses or is a DataError") {
  const fs::path dir = fs::path(DSK_SOURCE_DIR) / "tests/fixtures/fuzz/safetensors";
  size_t files = 0, accepted = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::string bytes = read_file(entry.path());
    uint64_t data_offset = 0;
    try {
      auto header = parse_safetensors_bytes(bytes, entry.path().string(), data_offset);
      for (const auto& t : header.tensors) CHECK(t.end <= bytes.size() - data_offset);
      ++accepted;
    } catch (const DataError&) {
    }
    ++files;
  }
  CHECK(files >= 6);
  CHECK(accepted >= 2);  // seed-good, seed-empty
}

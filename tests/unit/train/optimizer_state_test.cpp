// The optimizer state file: a bit-exact round trip, and clear errors for the wrong model or a truncated file.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <vector>

#include "core/error.hpp"
#include "train/optimizer_state.hpp"

using namespace dsk::train;
namespace fs = std::filesystem;

TEST_CASE("optimizer state round trips bit for bit and checks the parameter count") {
  fs::path dir = fs::temp_directory_path() / ("dsk-train-optim-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::path file = dir / "optimizer.bin.zst";
  std::vector<float> master{1.5f, -2.25f, 3e-8f}, m{0.1f, 0.2f, 0.3f}, v{1e-9f, 2e-9f, 3e-9f};
  save_optimizer_state(file, 42, master, m, v);

  auto state = load_optimizer_state(file, 3);
  CHECK(state.adam_steps == 42);
  CHECK(state.master == master);
  CHECK(state.m == m);
  CHECK(state.v == v);
  CHECK_THROWS_AS(load_optimizer_state(file, 4), dsk::DataError);

  auto size = fs::file_size(file);
  fs::resize_file(file, size / 2);
  CHECK_THROWS_AS(load_optimizer_state(file, 3), dsk::DataError);
  fs::remove_all(dir);
}

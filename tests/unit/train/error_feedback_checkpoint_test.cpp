// The int8 error-feedback residual in a checkpoint: a rank's file restores its residual bit for bit
// on the same number of ranks; another number of ranks, no int8 residual in this run, or another
// length leaves the residual at zero; a missing, truncated or foreign file is a DataError naming it.
// The ranks' side (mpirun, resumed runs) is tests/cli/dsk-train-int8-resume.sh.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "tensor/cpu_ops.hpp"
#include "train/error_feedback_checkpoint.hpp"

using namespace dsk::train;
namespace fs = std::filesystem;
using dsk::tensor::Buf;
using dsk::tensor::DType;

namespace {
Buf view(std::vector<float>& v) { return Buf{v.data(), int64_t(v.size()), DType::f32}; }
}  // namespace

TEST_CASE("a rank's residual comes back on the same ranks; elsewhere the residual stays zero") {
  auto ops = dsk::tensor::make_cpu_ops();
  const fs::path checkpoint = fs::temp_directory_path() / ("dsk-error-feedback-" + std::to_string(::getpid()));
  const fs::path dsk_dir = checkpoint / "dsk";
  fs::create_directories(dsk_dir);
  const std::vector<float> saved = {0.25f, -1e-7f, 3.0f, -0.0f, 1e30f};
  save_error_feedback(dsk_dir, 1, 2, 40, saved);
  CHECK(error_feedback_file_name(1, 2) == "error_feedback.rank-00001-of-00002.safetensors");
  CHECK(fs::exists(dsk_dir / error_feedback_file_name(1, 2)));

  std::vector<float> residual(saved.size(), 0.0f);
  restore_error_feedback(checkpoint, 2, 40, 1, 2, *ops, view(residual));
  CHECK(std::memcmp(residual.data(), saved.data(), saved.size() * sizeof(float)) == 0);

  SUBCASE("another number of ranks, or none saved: left at zero") {
    for (const int64_t saved_ranks : {0, 4}) {
      std::vector<float> fresh(saved.size(), 0.0f);
      restore_error_feedback(checkpoint, saved_ranks, 40, 1, 2, *ops, view(fresh));
      CHECK(fresh == std::vector<float>(saved.size(), 0.0f));
    }
    restore_error_feedback(checkpoint, 2, 40, 1, 2, *ops, Buf{});  // this run has none: nothing to do
  }
  SUBCASE("another length (another split of the experts): left at zero") {
    std::vector<float> longer(saved.size() + 1, 0.0f);
    restore_error_feedback(checkpoint, 2, 40, 1, 2, *ops, view(longer));
    CHECK(longer == std::vector<float>(saved.size() + 1, 0.0f));
  }
  SUBCASE("missing, truncated, of another rank or step: DataError naming the file") {
    const std::string name = error_feedback_file_name(1, 2), missing = name + ": missing";
    CHECK_THROWS_WITH_AS(restore_error_feedback(checkpoint, 2, 41, 1, 2, *ops, view(residual)),
                         doctest::Contains("step 40, expected 41"), dsk::DataError);
    fs::copy_file(dsk_dir / name, dsk_dir / error_feedback_file_name(0, 2));
    CHECK_THROWS_WITH_AS(restore_error_feedback(checkpoint, 2, 40, 0, 2, *ops, view(residual)),
                         doctest::Contains("rank 1, expected 0"), dsk::DataError);
    fs::resize_file(dsk_dir / name, fs::file_size(dsk_dir / name) - 3);
    CHECK_THROWS_WITH_AS(restore_error_feedback(checkpoint, 2, 40, 1, 2, *ops, view(residual)),
                         doctest::Contains(name.c_str()), dsk::DataError);
    fs::remove(dsk_dir / name);
    CHECK_THROWS_WITH_AS(restore_error_feedback(checkpoint, 2, 40, 1, 2, *ops, view(residual)),
                         doctest::Contains(missing.c_str()), dsk::DataError);
  }
  fs::remove_all(checkpoint);
}

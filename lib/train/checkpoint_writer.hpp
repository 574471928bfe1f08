// Checkpoints written in the background: the step loop hands over a host snapshot of the state
// (checkpoint.hpp: the copy from the device is the only pause) and goes on training while one
// thread converts, compresses and writes it, then prunes old checkpoints. At most one snapshot is
// in flight: a second save waits for the first, so host memory stays bounded by one copy of the
// weights and moments. A checkpoint directory still appears only when whole (written under a
// temporary name and renamed), so a kill -9 at any moment leaves the previous one to resume from.
#pragma once

#include <exception>
#include <filesystem>
#include <future>

#include "model/model.hpp"
#include "train/checkpoint.hpp"

namespace dsk::train {

class CheckpointWriter {
 public:
  // background = false writes in submit() itself (checkpoint.async: false).
  CheckpointWriter(std::filesystem::path run_dir, const model::Model& model, CheckpointExtras extras, int64_t keep,
                   bool background);
  ~CheckpointWriter();  // waits for a write in flight (its error is logged, not thrown)
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // Waits for the previous write (rethrowing its error), then writes `snapshot`. Returns the path
  // the checkpoint will have.
  std::filesystem::path submit(CheckpointSnapshot snapshot);
  // Returns once nothing is being written; rethrows the error of the last write, if any.
  void wait();

 private:
  std::filesystem::path write(const CheckpointSnapshot& snapshot);

  const std::filesystem::path run_dir_;
  const model::Model& model_;
  const CheckpointExtras extras_;
  const int64_t keep_;
  const bool background_;
  std::future<void> in_flight_;
};

}  // namespace dsk::train

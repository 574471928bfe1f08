#include "train/checkpoint_writer.hpp"

#include "core/log.hpp"

namespace dsk::train {

CheckpointWriter::CheckpointWriter(std::filesystem::path run_dir, const model::Model& model, CheckpointExtras extras,
                                   int64_t keep, bool background)
    : run_dir_(std::move(run_dir)), model_(model), extras_(std::move(extras)), keep_(keep), background_(background) {}

CheckpointWriter::~CheckpointWriter() {
  try {
    wait();
  } catch (const std::exception& e) {
    log_error("writing a checkpoint: ", e.what());
  }
}

std::filesystem::path CheckpointWriter::write(const CheckpointSnapshot& snapshot) {
  const std::filesystem::path written = write_checkpoint(run_dir_, model_, snapshot, extras_);
  prune_checkpoints(run_dir_, keep_);
  log_info("checkpoint ", written.string());
  return written;
}

std::filesystem::path CheckpointWriter::submit(CheckpointSnapshot snapshot) {
  wait();
  const std::filesystem::path target = checkpoint_path(run_dir_, snapshot.state.step);
  if (!background_) {
    write(snapshot);
    return target;
  }
  in_flight_ = std::async(std::launch::async, [this, owned = std::move(snapshot)] { write(owned); });
  return target;
}

void CheckpointWriter::wait() {
  if (!in_flight_.valid()) return;
  std::future<void> finished = std::move(in_flight_);
  finished.get();
}

}  // namespace dsk::train

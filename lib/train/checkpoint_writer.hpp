// Checkpoints written by every rank, in the background: the step loop hands over a host copy of
// this rank's part of the state (the copy from the device is the only pause) and goes on training
// while one thread per rank writes it into the checkpoint's temporary directory:
//   rank 0     the weights, the tokenizer, dsk/config.yaml, dsk/state.yaml, and the optimizer
//              state: dsk/optimizer.bin.zst whole, or with ZeRO-1 the manifest and its own part;
//   rank r > 0 with ZeRO-1, its part of the optimizer state (optimizer_shards.hpp); else nothing;
//   every rank with int8 error feedback also its residual (error_feedback_checkpoint.hpp).
// Under expert parallelism (with ZeRO-1 too: AdamW::sharded() is false, a rank's state not being
// one range of the flat layout) rank 0 writes the whole state, its copy completed at the step
// with the other experts' weights and moments (and their shards of the rest), which their owners
// send it straight from the backend: no other rank builds a host copy of the model.
// The ranks must share the run directory's filesystem (as for any multi-node checkpoint).
//
// The checkpoint appears only when every rank's part is whole: after each step the ranks tell each
// other (a small all-reduce, only while a checkpoint is in flight) whether their write is done
// and went well; once all are, rank 0 renames the directory into place and prunes old ones. A rank
// that could not write its part makes the save fail on every rank, and the checkpoint before stays
// the last whole one. At most one checkpoint is in flight: a second save waits for the first, so
// host memory stays bounded by one copy of the weights and of the moments on rank 0 (only its
// part of the moments with ZeRO-1 without expert parallelism), and by its part of a ZeRO-1 run's
// state on another rank (and by each rank's int8 residual). The first save logs the host memory the copy took on rank 0 and the most on another
// rank (core/host_memory.hpp). A kill -9 at any moment leaves only a temporary directory
// (removed at the next start).
#pragma once

#include <exception>
#include <filesystem>
#include <future>
#include <optional>

#include "core/fs.hpp"
#include "core/host_memory.hpp"
#include "dist/communicator.hpp"
#include "model/model.hpp"
#include "tensor/allocation.hpp"
#include "train/adamw.hpp"
#include "train/checkpoint.hpp"

namespace dsk::train {

class CheckpointWriter {
 public:
  // background = false writes in submit() itself (checkpoint.async: false). comm: the run's ranks.
  // error_feedback: this rank's int8 residual (GradientSync::error_feedback_residual; empty: none).
  CheckpointWriter(std::filesystem::path run_dir, model::Model& model, CheckpointExtras extras, int64_t keep,
                   bool background, dist::Communicator& comm, tensor::Buf error_feedback = {});
  ~CheckpointWriter();  // waits for this rank's write (its error is logged); an unfinished checkpoint is dropped
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // Every rank at the same step (collectives): finishes the checkpoint in flight (wait()), copies
  // this rank's part of the state to host memory and writes it. Returns the checkpoint's path.
  // With expert parallelism's foreign experts (AdamW::has_foreign), rank 0 first gathers their
  // weights and moments from their owners (collectives).
  std::filesystem::path submit(AdamW& optimizer, const TrainingState& state);
  // Every rank after every step: puts the checkpoint in flight into place once every rank's part
  // is whole (a collective while one is in flight, nothing otherwise).
  void poll();
  // Every rank: returns once the checkpoint in flight is in place. When a rank could not write its
  // part, the checkpoint is dropped and every rank throws (that rank its own error).
  void wait();

 private:
  struct Part;  // what this rank writes
  Part copy_state(AdamW& optimizer, const TrainingState& state, HostHeapGrowth& host) const;
  void report_host_memory(const HostHeapGrowth& host);
  void write(const Part& part) const;
  void agree(bool block);
  void finish_local();

  const std::filesystem::path run_dir_;
  model::Model& model_;  // read only, but for the backend's master weights that a save sends
  const CheckpointExtras extras_;
  const int64_t keep_;
  const bool background_;
  dist::Communicator& comm_;
  const tensor::Buf error_feedback_;
  std::optional<AtomicDirectory> directory_;  // rank 0: the checkpoint in flight, under its temporary name
  std::filesystem::path target_;              // the checkpoint in flight
  bool pending_ = false;                      // a checkpoint is in flight (the same on every rank)
  bool local_done_ = false;                   // this rank's part of it is written, or failed
  std::exception_ptr local_error_;
  std::future<void> in_flight_;
  const tensor::Allocation states_;  // the ranks' states of their parts, exchanged in the backend's memory
  bool reported_ = false;  // the host memory of a save's copy is logged
};

}  // namespace dsk::train

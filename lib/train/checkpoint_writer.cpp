#include "train/checkpoint_writer.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "core/error.hpp"
#include "core/log.hpp"
#include "train/error_feedback_checkpoint.hpp"
#include "train/optimizer_shards.hpp"

namespace dsk::train {
namespace fs = std::filesystem;

struct CheckpointWriter::Part {
  fs::path directory;                       // the checkpoint's temporary directory
  std::optional<CheckpointSnapshot> whole;  // rank 0: the weights and the state (and m, v when not sharded)
  // With ZeRO-1: this rank's range of the flat layout and its master weights and moments there.
  bool sharded = false;
  dist::ShardLayout layout;
  OptimizerPart range;
  int64_t adam_steps = 0;
  std::vector<float> master, m, v;
  // With int8 error feedback: this rank's residual, saved at this step.
  int64_t step = 0;
  std::vector<float> residual;
};

CheckpointWriter::CheckpointWriter(fs::path run_dir, model::Model& model, CheckpointExtras extras, int64_t keep,
                                   bool background, dist::Communicator& comm, tensor::Buf error_feedback)
    : run_dir_(std::move(run_dir)),
      model_(model),
      extras_(std::move(extras)),
      keep_(keep),
      background_(background),
      comm_(comm),
      error_feedback_(error_feedback),
      // Kept for the run: allocating (cudaMalloc, cudaFree) at every step would stall the device.
      states_(model_.ops(), tensor::DType::f32, comm_.size(), "checkpoint parts' states") {}

CheckpointWriter::~CheckpointWriter() {
  if (!in_flight_.valid()) return;
  try {
    in_flight_.get();
  } catch (const std::exception& e) {
    log_error("writing a checkpoint: ", e.what());
  }
}

void CheckpointWriter::write(const Part& part) const {
  const fs::path dsk_dir = part.directory / "dsk";
  fs::create_directories(dsk_dir);
  if (part.whole) {
    write_checkpoint_contents(part.directory, model_, *part.whole, extras_);
    if (part.sharded)
      write_optimizer_manifest(dsk_dir, uint64_t(part.layout.count), part.layout.ranks, part.adam_steps);
  }
  if (part.sharded)
    save_optimizer_part(dsk_dir / optimizer_part_name(part.layout.rank, part.layout.ranks),
                        uint64_t(part.layout.count), part.range, part.adam_steps, part.master, part.m, part.v);
  if (!error_feedback_.empty()) save_error_feedback(dsk_dir, comm_.rank(), comm_.size(), part.step, part.residual);
}

CheckpointWriter::Part CheckpointWriter::copy_state(AdamW& optimizer, const TrainingState& state,
                                                    HostHeapGrowth& host) const {
  const bool first = comm_.rank() == 0;
  Part part;
  part.sharded = optimizer.sharded();
  part.layout = optimizer.layout();
  part.adam_steps = optimizer.steps_taken();
  part.step = state.step;
  if (!error_feedback_.empty()) {
    part.residual.resize(size_t(error_feedback_.numel));
    model_.ops().copy_to_host(part.residual.data(), error_feedback_);
  }
  if (!first && !part.sharded && !optimizer.has_foreign()) return part;  // rank 0 writes everything
  const tensor::Buf weights = model_.master();
  // The weights: rank 0's whole, for model.safetensors; with ZeRO-1 every rank's part of them.
  std::vector<float> master, m, v;
  if (first) {
    master = model_.copy_parameters();
    if (int64_t(master.size()) != part.layout.count)
      throw InternalError("CheckpointWriter: the optimizer's parameters are not the model's");
    host.sample();
  }
  if (optimizer.has_foreign()) {  // the experts that others update, from them to rank 0 alone
    optimizer.gather_state_to_first_rank(weights, master, m, v);
  } else if (part.sharded) {
    if (weights.numel != part.layout.count)
      throw InternalError("CheckpointWriter: the optimizer's parameters are not the model's");
    part.range = optimizer_part(part.layout);
    part.master.resize(size_t(part.range.length));
    if (part.range.length > 0)
      model_.ops().copy_to_host(part.master.data(), weights.slice(part.range.begin, part.range.length));
    optimizer.copy_own_moments(part.range.length, part.m, part.v);
  } else {
    m = optimizer.copy_first_moment();
    v = optimizer.copy_second_moment();
  }
  host.sample();
  if (first) {
    CheckpointSnapshot& whole = part.whole.emplace();
    whole.state = state;
    whole.state.error_feedback_ranks = error_feedback_.empty() ? 0 : comm_.size();
    whole.adam_steps = part.adam_steps;
    whole.master = std::move(master);
    whole.m = std::move(m);
    whole.v = std::move(v);
  }
  return part;
}

void CheckpointWriter::report_host_memory(const HostHeapGrowth& host) {
  if (reported_) return;
  reported_ = true;
  // Each rank's peak at its place; -1 where the allocator cannot tell.
  std::vector<int64_t> peaks(size_t(comm_.size()), 0);
  const std::optional<size_t> peak = host.peak();
  peaks[size_t(comm_.rank())] = peak ? int64_t(*peak) : -1;
  {
    const tensor::Allocation exchanged(model_.ops(), tensor::DType::i64, int64_t(peaks.size()),
                                       "checkpoint copies' host memory");
    model_.ops().copy_from_host(exchanged.buf(), peaks.data());
    comm_.all_reduce_sum(exchanged.buf());
    model_.ops().copy_to_host(peaks.data(), exchanged.buf());
  }
  if (comm_.rank() != 0 || *std::min_element(peaks.begin(), peaks.end()) < 0) return;
  std::string others;
  if (peaks.size() > 1) others = str(", at most ", *std::max_element(peaks.begin() + 1, peaks.end()), " on another rank");
  log_info("checkpoint copy: a peak of ", peaks[0], " bytes of host memory on rank 0", others);
}

fs::path CheckpointWriter::submit(AdamW& optimizer, const TrainingState& state) {
  wait();
  HostHeapGrowth host;
  target_ = checkpoint_path(run_dir_, state.step);
  // Rank 0 makes the temporary directory; its name (rank 0's pid) reaches the others through a
  // collective, which also orders the making before anything they write into it.
  double owner = 0;
  if (comm_.rank() == 0) {
    fs::create_directories(target_.parent_path());
    directory_.emplace(target_);
    owner = double(getpid());
  }
  owner = comm_.all_reduce_sum(owner);
  Part part = copy_state(optimizer, state, host);
  part.directory = target_;
  part.directory += str(".tmp-", int64_t(owner));
  host.sample();
  report_host_memory(host);
  pending_ = true;
  local_done_ = false;
  local_error_ = nullptr;
  if (background_) {
    in_flight_ = std::async(std::launch::async, [this, owned = std::move(part)] { write(owned); });
    return target_;
  }
  try {
    write(part);
  } catch (...) {
    local_error_ = std::current_exception();
  }
  local_done_ = true;
  wait();
  return target_;
}

void CheckpointWriter::finish_local() {
  try {
    in_flight_.get();
  } catch (...) {
    local_error_ = std::current_exception();
  }
  local_done_ = true;
}

void CheckpointWriter::poll() {
  if (pending_) agree(/*block=*/false);
}

void CheckpointWriter::wait() {
  if (pending_) agree(/*block=*/true);
}

void CheckpointWriter::agree(bool block) {
  if (!local_done_ && in_flight_.valid() &&
      (block || in_flight_.wait_for(std::chrono::seconds(0)) == std::future_status::ready))
    finish_local();
  // Each rank's state of its part: 0 still writing, 1 whole, 2 failed.
  const int ranks = comm_.size();
  std::vector<float> states(size_t(ranks), 0.0f);
  states[size_t(comm_.rank())] = local_done_ ? (local_error_ ? 2.0f : 1.0f) : 0.0f;
  model_.ops().copy_from_host(states_.buf(), states.data());
  comm_.all_reduce_sum(states_.buf());
  model_.ops().copy_to_host(states.data(), states_.buf());
  std::vector<int> failed;
  for (int rank = 0; rank < ranks; ++rank) {
    if (states[size_t(rank)] == 0.0f) return;  // some rank still writes (only when not blocking)
    if (states[size_t(rank)] == 2.0f) failed.push_back(rank);
  }
  pending_ = false;
  if (failed.empty()) {
    if (directory_) {
      directory_->commit(/*replace_existing=*/true);
      directory_.reset();
      prune_checkpoints(run_dir_, keep_);
      log_info("checkpoint ", target_.string());
    }
    return;
  }
  directory_.reset();  // rank 0: removes the temporary directory, now that every rank is done with it
  if (local_error_) {
    log_error("checkpoint ", target_.string(), " dropped: rank ", comm_.rank(), " could not write its part:");
    std::rethrow_exception(local_error_);
  }
  std::string names;
  for (int rank : failed) names += str(names.empty() ? "" : ", ", rank);
  throw RemoteError(str("checkpoint ", target_.string(), " dropped: rank", failed.size() > 1 ? "s " : " ", names,
                        " could not write ", failed.size() > 1 ? "their parts" : "its part",
                        " (its message says why); the checkpoints before it stay"));
}

}  // namespace dsk::train

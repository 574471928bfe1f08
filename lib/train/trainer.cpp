#include "train/trainer.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <algorithm>
#include <optional>
#include <sstream>
#include <vector>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/log.hpp"
#include "core/progress.hpp"
#include "core/signals.hpp"
#include "dist/communicator.hpp"
#include "dist/launch.hpp"
#include "train/adamw.hpp"
#include "train/checkpoint.hpp"
#include "train/checkpoint_writer.hpp"
#include "train/error_feedback_checkpoint.hpp"
#include "train/gradient_sync.hpp"
#include "train/evaluate.hpp"
#include "train/expert_parallel.hpp"
#include "train/objective.hpp"
#include "train/metrics_log.hpp"
#include "train/model_source.hpp"
#include "train/schedule.hpp"
#include "train/train_schema.hpp"
#include "tensor/device.hpp"

namespace dsk::train {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;

// One process per run directory: a second dsk-train on the same directory would interleave
// checkpoints and metrics. The lock goes with the process, also when it is killed.
class RunDirectoryLock {
 public:
  explicit RunDirectoryLock(const fs::path& run_dir) {
    std::error_code error;
    fs::create_directories(run_dir / "checkpoints", error);
    if (error) throw_io_error("cannot create the run directory", run_dir, error.value());
    const fs::path path = run_dir / ".lock";
    fd_ = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (fd_ < 0) throw_io_error("cannot create the run lock", path, errno);
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0)
      throw UsageError(str(run_dir.string(), ": another dsk-train is running in this run directory"));
  }
  ~RunDirectoryLock() { ::close(fd_); }
  RunDirectoryLock(const RunDirectoryLock&) = delete;
  RunDirectoryLock& operator=(const RunDirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

int64_t steps_of(const Config& config, int64_t tokens_per_step) {
  if (config.has("steps") && config.has("tokens"))
    throw UsageError(str(config.source(), ": give steps or tokens, not both"));
  if (config.has("steps")) return config.get_int("steps");
  if (config.has("tokens")) return (config.get_int("tokens") + tokens_per_step - 1) / tokens_per_step;
  throw UsageError(str(config.source(), ": give the run's length as steps or tokens"));
}

const char* family_name(model::Family family) {
  switch (family) {
    case model::Family::llama: return "llama";
    case model::Family::qwen2: return "qwen2";
    case model::Family::deepseek_v3: return "deepseek_v3";
  }
  return "?";
}

// Routed tokens per expert over a logging interval, as shares of each MoE layer's total.
class ExpertLoadTally {
 public:
  void add(const model::ExpertLoad& load) {
    if (counts_.empty()) counts_.assign(load.counts.size(), {});
    for (size_t layer = 0; layer < load.counts.size(); ++layer) {
      counts_[layer].resize(load.counts[layer].size(), 0);
      for (size_t e = 0; e < load.counts[layer].size(); ++e) counts_[layer][e] += load.counts[layer][e];
    }
  }
  std::vector<std::vector<double>> take_shares() {
    std::vector<std::vector<double>> shares;
    for (const auto& layer : counts_) {
      double total = 0;
      for (int64_t count : layer) total += double(count);
      std::vector<double> row;
      for (int64_t count : layer) row.push_back(total > 0 ? double(count) / total : 0.0);
      shares.push_back(std::move(row));
    }
    counts_.clear();
    return shares;
  }

 private:
  std::vector<std::vector<int64_t>> counts_;
};

// The model calls `hook` in the backwards run while this lives (and no longer after, also when
// the backward throws).
class BackwardHookScope {
 public:
  BackwardHookScope(model::Model& model, model::Model::BackwardHook hook) : model_(model) {
    model_.set_backward_hook(std::move(hook));
  }
  ~BackwardHookScope() { model_.set_backward_hook({}); }
  BackwardHookScope(const BackwardHookScope&) = delete;
  BackwardHookScope& operator=(const BackwardHookScope&) = delete;

 private:
  model::Model& model_;
};

// With several ranks on GPUs, each process drives the GPU of its local rank.
std::shared_ptr<tensor::Ops> make_rank_ops(const Config& config, const dist::LaunchInfo& launch) {
  const std::string device = config.get_string("device");
  if (launch.world_size > 1 && device != "cpu" && tensor::cuda_available())
    tensor::select_cuda_device(launch.local_rank);
  // Every rank's messages say which rank speaks ("dsk-train rank 1: error: ...").
  if (launch.world_size > 1) set_tool_name(str(tool_name(), " rank ", launch.rank));
  return tensor::make_ops(device, config.get_string("precision"));
}

class TrainingRun {
 public:
  TrainingRun(const Config& config, const TrainingHooks& hooks);
  TrainOutcome run();

 private:
  TrainOutcome outcome() const;
  void resume_or_start();
  void take_step();
  double evaluate();
  void log_step(double loss, double lr, double grad_norm, double step_seconds);
  void save();

  bool leader() const { return comm_->rank() == 0; }
  // What the run trains, whether this rank holds it or not (expert parallelism: the model's
  // buffers lack the other ranks' experts; the optimizer state and checkpoints have them).
  int64_t trainable_count() const {
    return expert_ownership_ ? int64_t(model_.parameter_count()) : objective_->trainable().master.numel;
  }

  const Config& config_;
  const fs::path run_dir_;
  const int B_, T_, grad_accum_;
  std::unique_ptr<BatchSource> data_;
  const dist::LaunchInfo launch_;
  std::shared_ptr<tensor::Ops> ops_;
  // Data parallelism (one rank: every collective is the identity): the ranks split each step's
  // micro-batches, sum their gradients, and with ZeRO-1 split the optimizer state.
  std::unique_ptr<dist::Communicator> comm_;
  model::Model model_;
  // Expert parallelism (expert_parallel.hpp): null unless dist.expert_parallel > 1.
  std::unique_ptr<model::RowExchange> expert_exchange_;
  std::unique_ptr<Objective> objective_;
  // Expert parallelism: which experts' AdamW state this rank keeps (null: all).
  std::unique_ptr<ExpertOwnership> expert_ownership_;
  // The backend's peak once the model (weights and gradients) is built, before the optimizer state.
  const size_t startup_peak_bytes_;
  AdamW optimizer_;
  GradientSync gradient_sync_;
  std::optional<CheckpointContent> checkpoint_content_;
  Schedule schedule_;
  int64_t total_steps_ = 0;
  TrainingState state_;
  CheckpointExtras extras_;
  // Both create files in the run directory: made only once the data, the model and the config
  // have been found good, so that a run that cannot start leaves nothing behind.
  std::optional<RunDirectoryLock> lock_;
  std::optional<MetricsLog> metrics_;
  std::optional<CheckpointWriter> writer_;  // every rank's: each writes its part
  ExpertLoadTally expert_tally_;
  Batch batch_;
  fs::path last_checkpoint_;
  int64_t checkpointed_step_ = -1;
  double interval_seconds_ = 0;
  int64_t interval_steps_ = 0;
  double interval_comm_wait_ = 0;  // seconds waited on collectives over the logging interval
  Clock::time_point started_ = Clock::now();
};

// The lines of the effective config that differ from the one a checkpoint was written with
// (the run length and the cadences aside, which may change between resumes).
std::vector<std::string> changed_settings(const std::string& before, const std::string& now) {
  auto lines = [](const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  };
  const std::vector<std::string> old_lines = lines(before);
  std::vector<std::string> changed;
  for (const std::string& line : lines(now)) {
    const bool cadence = line.rfind("steps:", 0) == 0 || line.rfind("tokens:", 0) == 0 ||
                         line.find("every:") != std::string::npos || line.find("keep:") != std::string::npos;
    if (!cadence && std::find(old_lines.begin(), old_lines.end(), line) == old_lines.end()) changed.push_back(line);
  }
  return changed;
}

AdamWSettings adamw_settings(const Config& config) {
  AdamWSettings settings;
  settings.beta1 = float(config.get_double("optim.beta1"));
  settings.beta2 = float(config.get_double("optim.beta2"));
  settings.eps = float(config.get_double("optim.eps"));
  settings.weight_decay = float(config.get_double("optim.weight_decay"));
  return settings;
}

TrainingRun::TrainingRun(const Config& config, const TrainingHooks& hooks)
    : config_(config),
      run_dir_(config.get_string("checkpoint.dir")),
      B_(int(config.get_int("data.micro_batch"))),
      T_(int(config.get_int("data.seq_len"))),
      grad_accum_(int(config.get_int("data.grad_accum"))),
      data_(hooks.make_data ? hooks.make_data(config) : token_window_source(config)),
      launch_(dist::detect_launch(dist::process_environment())),
      ops_(make_rank_ops(config, launch_)),
      comm_(dist::make_communicator(launch_, *ops_, config.get_double("dist.timeout"))),
      model_(hooks.make_model ? hooks.make_model(config, ops_)
                              : model_from_config(config, uint64_t(config.get_int("seed")), ops_,
                                                  expert_share(config, *comm_))),
      expert_exchange_(enable_expert_parallel(config, *comm_, model_)),
      objective_(hooks.make_objective ? hooks.make_objective(model_, config)
                                      : std::make_unique<NextTokenObjective>(model_, config)),
      // An objective with its own checkpoint content writes from rank 0's copy alone: every expert there.
      expert_ownership_(objective_->checkpoint_content()
                            ? nullptr
                            : make_expert_ownership(config, *comm_, model_, objective_->trainable().master)),
      startup_peak_bytes_(ops_->peak_memory_in_use()),
      optimizer_(*ops_, size_t(trainable_count()), adamw_settings(config),
                 objective_->trainable().decay_mask, config.get_int("dist.zero") == 1 ? comm_.get() : nullptr,
                 expert_ownership_.get()),
      gradient_sync_(*comm_, *ops_, objective_->trainable().grads.numel,
                     gradient_stages_of(model_, model_.gradient_buffer(), objective_->trainable().grads),
                     int64_t(config.get_double("dist.bucket_mb") * double(1 << 20)), config.get_int("dist.zero") == 1,
                     parse_gradient_wire(config.get_string("dist.grad_dtype"), config.get_bool("dist.error_feedback"),
                                         *ops_),
                     expert_gradient_split(expert_ownership_.get(), model_)),
      checkpoint_content_(objective_->checkpoint_content()) {
  if (grad_accum_ % comm_->size() != 0)
    throw UsageError(str("data.grad_accum ", grad_accum_, " must be a multiple of the number of ranks (",
                         comm_->size(), "): each rank runs grad_accum / ranks micro-batches of every step"));
  if (!leader()) set_log_level(LogLevel::warn);  // rank 0 speaks for the run
  log_info("optimizer state: ", double(optimizer_.state_bytes()) / double(1 << 20), " MiB on rank 0 (",
           optimizer_.state_bytes(), " bytes of AdamW m, v and decay mask)");
  if (const std::string sync = gradient_sync_.describe(); !sync.empty()) log_info(sync);
  if (!expert_ownership_ && !model_.dropped_weights().empty())
    throw InternalError("the model lacks the other ranks' experts, but the optimizer trains every weight here");
  log_info(parameter_memory(model_, expert_ownership_.get()));
  log_info("start-up memory: a peak of ", startup_peak_bytes_, " bytes on rank 0 while the model was built");
  const int64_t vocab = model_.architecture().vocab;
  if (data_->vocab_size() > uint64_t(vocab))
    throw UsageError(str("the data uses a vocabulary of ", data_->vocab_size(), " tokens but the model has ", vocab,
                         " (model vocab_size must be at least the tokenizer's)"));
  total_steps_ = steps_of(config, int64_t(B_) * T_ * grad_accum_);
  schedule_ = schedule_from(config, total_steps_);
  data_->describe(extras_);
  extras_.config_yaml = config.to_yaml();
  if (config.schema().find("checkpoint.dtype")) extras_.dtype = config.get_string("checkpoint.dtype");
  model_.set_recompute(model::parse_recompute(config.get_string("train.recompute")));
  state_.seed = uint64_t(config.get_int("seed"));
  if (leader()) {
    lock_.emplace(run_dir_);
    metrics_.emplace(run_dir_ / "metrics.jsonl");
  }
  resume_or_start();
  if (leader()) write_file_atomic(run_dir_ / "config.yaml", extras_.config_yaml);
  writer_.emplace(run_dir_, model_, extras_, config.get_int("checkpoint.keep"), config.get_bool("checkpoint.async"),
                  *comm_, gradient_sync_.error_feedback_residual());
}

void TrainingRun::resume_or_start() {
  // Rank 0 alone removes crash leftovers (the others would race it on a shared filesystem).
  std::optional<fs::path> latest = latest_checkpoint(run_dir_, /*remove_leftovers=*/leader());
  if (!latest) {
    // A run killed before its first checkpoint starts over: the steps it logged go too.
    if (metrics_) metrics_->truncate_after(0);
    log_info("model: ", family_name(model_.architecture().family), ", ", model_.parameter_count(),
             " parameters on ", ops_->describe(), comm_->size() > 1 ? str(" x ", comm_->describe()) : std::string(),
             "; ", total_steps_, " steps of ", int64_t(B_) * T_ * grad_accum_, " tokens");
    return;
  }
  state_ = checkpoint_content_ ? load_checkpoint_state(*latest, *checkpoint_content_, optimizer_)
                               : load_checkpoint_state(*latest, model_, optimizer_);
  if (state_.seed != uint64_t(config_.get_int("seed")))
    throw UsageError(str(run_dir_.string(), ": the run was started with seed ", state_.seed,
                         "; resuming with another seed would change its data order (use a new checkpoint.dir)"));
  if (state_.step > total_steps_)
    throw UsageError(str(run_dir_.string(), ": the run has already done ", state_.step, " steps, more than the ",
                         total_steps_, " asked for (a new checkpoint.dir starts over)"));
  const fs::path saved_config = *latest / "dsk" / "config.yaml";
  if (leader() && fs::exists(saved_config)) {
    // Allowed (a lower lr to finish a run, say), but the losses are no longer those of the
    // uninterrupted run, so say what changed (once: every rank resumes from the same config).
    for (const std::string& line : changed_settings(read_file(saved_config), extras_.config_yaml))
      log_warn("resuming with a setting that differs from the checkpoint's config: ", line);
  }
  restore_error_feedback(*latest, state_.error_feedback_ranks, state_.step, comm_->rank(), comm_->size(), *ops_,
                         gradient_sync_.error_feedback_residual());
  data_->set_cursor(state_.data_cursor);
  if (metrics_) metrics_->truncate_after(state_.step);
  last_checkpoint_ = *latest;
  checkpointed_step_ = state_.step;
  log_info("resuming from ", latest->string(), " (step ", state_.step, " of ", total_steps_, ")");
}

void TrainingRun::take_step() {
  const auto step_start = Clock::now();
  objective_->start_step();
  const TrainableSet trainable = objective_->trainable();
  double loss_sum = 0;
  // Rank r runs micro-batches [r * k, (r + 1) * k) of the step, k = grad_accum / ranks, and reads
  // past the others': the global batch is the same for any number of ranks.
  const int per_rank = grad_accum_ / comm_->size(), first = comm_->rank() * per_rank;
  for (int micro = 0; micro < grad_accum_; ++micro) {
    data_->next(batch_, B_, T_);
    if (micro < first || micro >= first + per_rank) continue;
    batch_.micro_in_step = micro;
    // The last micro-batch's backward starts the gradient all-reduce (ZeRO-1: reduce-scatter) bucket by bucket.
    const bool last = micro == first + per_rank - 1 && gradient_sync_.overlaps();
    std::optional<BackwardHookScope> hook;
    if (last) hook.emplace(model_, [&](int stage) { gradient_sync_.stage_done(stage, trainable.grads); });
    // The gradients come out averaged over the micro-batches (1/k folded into the loss scale).
    loss_sum += objective_->forward_backward(batch_, B_, T_, 1.0f / float(grad_accum_));
  }
  const double loss = comm_->all_reduce_sum(loss_sum) / grad_accum_;
  const double grad_norm =
      gradient_sync_.reduce_and_clip(trainable.grads, float(config_.get_double("optim.grad_clip")));
  const double lr = schedule_.lr_at(state_.step);
  state_.tokens += int64_t(B_) * T_ * grad_accum_;
  state_.data_cursor = data_->cursor();
  if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
    // The update is skipped; the step still counts, so the data moves on past the bad batch.
    state_.skipped_steps++;
    state_.bad_steps_in_row++;
    log_warn("step ", state_.step + 1, ": loss ", loss, ", grad norm ", grad_norm, ": update skipped (",
             state_.bad_steps_in_row, " in a row)");
    if (state_.bad_steps_in_row >= config_.get_int("max_bad_steps"))
      throw DataError(str(state_.bad_steps_in_row, " steps in a row had a NaN or Inf loss (last at step ",
                          state_.step + 1, "): the run diverged; lower optim.lr or add warmup. ",
                          last_checkpoint_.empty() ? std::string("No checkpoint was written")
                                                   : "The last good checkpoint is " + last_checkpoint_.string()));
  } else {
    state_.bad_steps_in_row = 0;
    optimizer_.step(trainable.master, trainable.working, trainable.grads, float(lr));
    if (model_.architecture().n_routed > 0) {
      // The routing-bias update balances the load of the whole batch, all ranks together.
      if (comm_->size() > 1) comm_->all_reduce_sum(model_.expert_load_counts());
      expert_tally_.add(model_.expert_load());
    }
    objective_->finish_step();
  }
  state_.step++;
  state_.train_loss = loss;
  interval_comm_wait_ += comm_->take_wait_seconds();
  log_step(loss, lr, grad_norm, std::chrono::duration<double>(Clock::now() - step_start).count());
}

void TrainingRun::log_step(double loss, double lr, double grad_norm, double step_seconds) {
  interval_seconds_ += step_seconds;
  interval_steps_++;
  if (!metrics_ || (state_.step % config_.get_int("logging.every") != 0 && state_.step != total_steps_)) return;
  StepMetrics metrics;
  metrics.step = state_.step;
  metrics.loss = loss;
  metrics.lr = lr;
  metrics.grad_norm = grad_norm;
  metrics.tokens_per_s = double(interval_steps_) * B_ * T_ * grad_accum_ / std::max(interval_seconds_, 1e-9);
  metrics.elapsed_s = state_.elapsed_s + std::chrono::duration<double>(Clock::now() - started_).count();
  metrics.skipped_steps = state_.skipped_steps;
  metrics.expert_load = expert_tally_.take_shares();
  if (comm_->size() > 1) metrics.comm_wait_s = interval_comm_wait_ / double(interval_steps_);
  interval_comm_wait_ = 0;
  metrics_->append(metrics);
  log_debug("step ", state_.step, " loss ", loss, " lr ", lr, " grad_norm ", grad_norm, " tokens/s ",
            metrics.tokens_per_s);
  interval_seconds_ = 0;
  interval_steps_ = 0;
}

// Mean loss over eval.batches fixed micro-batches of the validation shards, as the objective
// measures it; the expert counts it causes are not kept.
double TrainingRun::evaluate() {
  const int64_t batches = config_.get_int("eval.batches");
  Batch batch;
  double sum = 0;
  for (int64_t i = 0; i < batches; ++i) {
    data_->validation_batch(i, batch, B_, T_);
    sum += objective_->evaluate(batch, B_, T_);
  }
  model_.reset_expert_load();
  return sum / double(batches);
}

void TrainingRun::save() {
  TrainingState saved = state_;
  saved.elapsed_s += std::chrono::duration<double>(Clock::now() - started_).count();
  last_checkpoint_ = checkpoint_path(run_dir_, state_.step);
  checkpointed_step_ = state_.step;
  if (checkpoint_content_) {
    // Another content than the whole model (an adapter: small) is written in the step loop, by rank 0.
    writer_->wait();
    optimizer_.gather_moments();  // ZeRO-1: a collective, on every rank
    const std::vector<std::vector<float>> residuals =
        gather_error_feedback(*comm_, *ops_, gradient_sync_.error_feedback_residual());  // likewise
    if (leader()) {
      save_checkpoint(run_dir_, *checkpoint_content_, optimizer_, saved, extras_.config_yaml, residuals);
      prune_checkpoints(run_dir_, config_.get_int("checkpoint.keep"));
      log_info("checkpoint ", last_checkpoint_.string());
    }
    optimizer_.release_gathered_moments();
    return;
  }
  // Every rank writes its part (in the background with checkpoint.async) while the ranks train on.
  writer_->submit(optimizer_, saved);
}

TrainOutcome TrainingRun::run() {
  const int64_t eval_every = config_.get_int("eval.every");
  const int64_t checkpoint_every = config_.get_int("checkpoint.every");
  Progress progress("train", uint64_t(total_steps_), "steps");
  progress.set_already_done(uint64_t(std::min(state_.step, total_steps_)));
  while (state_.step < total_steps_) {
    take_step();
    const bool last = state_.step == total_steps_;
    if (data_->has_validation() && (last || (eval_every > 0 && state_.step % eval_every == 0))) {
      state_.val_loss = evaluate();
      log_info("step ", state_.step, ": train loss ", state_.train_loss, ", val loss ", *state_.val_loss);
    }
    // The note first: set() may draw, and the line must show the loss of the step it counts.
    progress.set_note(str("loss ", state_.train_loss));
    progress.set(uint64_t(state_.step));
    if (last || (checkpoint_every > 0 && state_.step % checkpoint_every == 0)) save();
    writer_->poll();  // a checkpoint in flight goes into place once every rank's part is whole
    // A signal may reach one rank only, or the ranks at different steps: they stop together.
    if (comm_->all_reduce_sum(stop_requested() ? 1.0 : 0.0) > 0) {
      if (checkpointed_step_ != state_.step) save();
      writer_->wait();
      progress.finish();
      comm_->leaving_together();
      // The other ranks leave first, quietly and with 0: mpirun stops the whole job at the first
      // rank that exits non-zero, which must be rank 0, once its record and message are out.
      if (!leader()) return outcome();
      throw TrainingInterrupted(stop_exit_code(),
                                str("stopped by a signal at step ", state_.step, "; checkpoint ",
                                    last_checkpoint_.string(), "; rerun the same command to resume"),
                                outcome());
    }
  }
  progress.finish();
  if (checkpointed_step_ != state_.step) save();  // a resumed run that had nothing left to do
  writer_->wait();  // the record names a checkpoint that is whole
  log_info("peak device memory ", double(ops_->peak_memory_in_use()) / double(1ull << 30), " GiB on ",
           ops_->describe());
  return outcome();
}

TrainOutcome TrainingRun::outcome() const {
  TrainOutcome outcome;
  outcome.run_dir = run_dir_;
  outcome.checkpoint = last_checkpoint_;
  outcome.model_type = family_name(model_.architecture().family);
  outcome.step = state_.step;
  outcome.tokens = state_.tokens;
  outcome.parameters = int64_t(model_.parameter_count());
  outcome.trainable = trainable_count();
  outcome.train_loss = state_.train_loss;
  outcome.val_loss = state_.val_loss;
  outcome.skipped_steps = state_.skipped_steps;
  outcome.rank = comm_->rank();
  return outcome;
}

}  // namespace

TrainOutcome run_training(const Config& config, const TrainingHooks& hooks) {
  // Before anything slow: a signal while shards and weights load stops the run cleanly too.
  install_stop_signal_handlers();
  TrainingRun run(config, hooks);
  return run.run();
}

TrainOutcome run_training(const Config& config, const ObjectiveFactory& make_objective) {
  TrainingHooks hooks;
  hooks.make_objective = make_objective;
  return run_training(config, hooks);
}

}  // namespace dsk::train

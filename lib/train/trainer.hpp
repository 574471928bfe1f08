// The training loop of dsk-train, and the one dsk-finetune and dsk-distill drive with their own
// objective (objective.hpp: the loss and the trainable set), on the model engine (lib/model) and
// the pieces beside this file: data (train_data, token_windows), optimizer (adamw, schedule),
// checkpoints, metrics.
//
// One optimizer step: grad_accum micro-batches of micro_batch windows of seq_len + 1 tokens,
// forward + backward each (gradients accumulate, then are averaged), a NaN/Inf guard, global
// grad-norm clipping, AdamW at the schedule's lr, and for MoE models the auxiliary-loss-free update
// of the routing biases. Every logging.every steps a line of metrics.jsonl, every eval.every steps
// a validation loss, every checkpoint.every steps a checkpoint (the last checkpoint.keep are kept).
//
// Running the same config again resumes from the newest whole checkpoint of the run directory:
// weights, moments, data cursor and counters come back exactly, so the losses that follow are
// bit-identical to those of a run that never stopped (with the same thread count). SIGINT,
// SIGTERM and SIGUSR1 save a checkpoint at the end of the step under way and then throw
// TrainingInterrupted (exit 130 or 143).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "core/config.hpp"
#include "core/error.hpp"
#include "train/batch_source.hpp"
#include "train/objective.hpp"

namespace dsk::train {

struct TrainOutcome {
  std::filesystem::path run_dir;
  std::filesystem::path checkpoint;  // the last one written
  std::string model_type;
  int64_t step = 0;
  int64_t tokens = 0;
  int64_t parameters = 0;  // of the model
  int64_t trainable = 0;   // parameters the run trains (all of them for dsk-train)
  double train_loss = 0;
  std::optional<double> val_loss;
  int64_t skipped_steps = 0;
  int rank = 0;  // of this process in a data-parallel run: rank 0 speaks for the run
};

// Thrown on a stop signal once the checkpoint is saved, with the outcome up to that checkpoint,
// so that the tool can still print its record for the next tool in a pipe.
struct TrainingInterrupted : Interrupted {
  TrainingInterrupted(ExitCode code, const std::string& message, TrainOutcome saved)
      : Interrupted(code, message), outcome(std::move(saved)) {}
  TrainOutcome outcome;
};

// config follows train_schema() (a tool with more keys extends that schema). make_objective
// gives the loss and the trainable set (objective.hpp); by default NextTokenObjective, dsk-train's.
// Throws UsageError / DataError / ResourceError as usual, TrainingInterrupted after a clean save
// on a stop signal, and DataError when max_bad_steps steps in a row had a NaN or Inf loss.
TrainOutcome run_training(const Config& config, const ObjectiveFactory& make_objective = {});

// What a tool plugs into the loop; each left empty is dsk-train's: the model of model_from_config
// (model_source.hpp), token_window_source, NextTokenObjective. The objective decides what
// checkpoints hold (Objective::checkpoint_content).
using ModelFactory = std::function<model::Model(const Config&, std::shared_ptr<tensor::Ops>)>;
struct TrainingHooks {
  ModelFactory make_model;
  BatchSourceFactory make_data;
  ObjectiveFactory make_objective;
};
TrainOutcome run_training(const Config& config, const TrainingHooks& hooks);

}  // namespace dsk::train

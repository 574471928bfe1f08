// Training checkpoints of a run directory (../shared/DESIGN.md, "Formats"):
//
//   RUN/checkpoints/step-000500/        an HF checkpoint directory, loadable by transformers as is
//     config.json  model.safetensors  generation_config.json  tokenizer.json  tokenizer_config.json
//     dsk/config.yaml                   the effective dsk-train config
//     dsk/state.yaml                    step, tokens, data cursor, seed, counters (TrainingState)
//     dsk/optimizer.bin.zst             fp32 master weights and AdamW moments
//     (ZeRO-1 on N ranks: dsk/optimizer.yaml and one part per rank instead, optimizer_shards.hpp)
//     dsk/error_feedback.rank-*.safetensors   int8 gradients' residuals, one per rank
//                                              (error_feedback_checkpoint.hpp)
//
// A checkpoint is built under a temporary name and renamed into place when whole, so a directory
// named step-NNNNNN is always complete; leftovers of a crash (step-*.tmp-*) are removed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model/model.hpp"
#include "train/adamw.hpp"

namespace dsk::train {

// What a run needs, beside weights and moments, to continue exactly where it stopped.
struct TrainingState {
  int64_t step = 0;             // optimizer steps done
  int64_t tokens = 0;           // training tokens consumed
  uint64_t data_cursor = 0;     // next window of the training loader
  uint64_t seed = 0;
  int64_t skipped_steps = 0;    // NaN/Inf steps skipped so far
  int64_t bad_steps_in_row = 0;
  double elapsed_s = 0;         // training time before this process
  double train_loss = 0;        // the last step's loss
  std::optional<double> val_loss;
  // Ranks that saved their int8 error-feedback residual (error_feedback_checkpoint.hpp); 0: none.
  int64_t error_feedback_ranks = 0;
};

// What goes beside the weights: where the tokenizer is, and the ids for generation_config.json.
struct CheckpointExtras {
  std::filesystem::path tokenizer;  // tokenizer.json to copy in (tokenizer_config.json beside it too); may be empty
  std::optional<uint32_t> bos_id, eos_id;
  std::string config_yaml;          // the effective config
  std::string dtype = "BF16";       // of model.safetensors
};

std::filesystem::path checkpoint_path(const std::filesystem::path& run_dir, int64_t step);

// What a checkpoint holds of the trained weights, for runs that train less than a whole model
// (dsk-finetune: an adapter beside a frozen base). write_weights fills the checkpoint directory
// (under its temporary name) with the weights in their published format; master and restore
// are the fp32 weights that dsk/optimizer.bin.zst keeps beside the moments.
// held: the flat ranges restore() takes (and the optimizer keeps), packed in order; empty: all.
struct CheckpointContent {
  std::function<void(const std::filesystem::path& dir)> write_weights;
  std::function<std::vector<float>()> master;
  std::function<void(std::span<const float>)> restore;
  size_t parameter_count = 0;
  std::vector<FlatRange> held;
};

// Writes RUN/checkpoints/step-NNNNNN atomically (replacing one of the same step) and returns its path.
std::filesystem::path save_checkpoint(const std::filesystem::path& run_dir, const model::Model& model,
                                      AdamW& optimizer, const TrainingState& state, const CheckpointExtras& extras);
// The same with other contents than the whole model (extras' tokenizer and ids are not used);
// error_feedback: every rank's int8 residual, in rank order (gather_error_feedback), or none.
std::filesystem::path save_checkpoint(const std::filesystem::path& run_dir, const CheckpointContent& content,
                                      AdamW& optimizer, const TrainingState& state, const std::string& config_yaml,
                                      std::span<const std::vector<float>> error_feedback = {});

// What a checkpoint holds, copied to host memory at the end of a step (waits for the device; a
// sharded optimizer's gather_moments() comes first, on every rank), so that writing it can go on
// beside the next steps (checkpoint_writer.hpp).
struct CheckpointSnapshot {
  TrainingState state;
  int64_t adam_steps = 0;
  std::vector<float> master, m, v;
};
CheckpointSnapshot take_checkpoint_snapshot(const model::Model& model, const AdamW& optimizer,
                                            const TrainingState& state);
// Writes what a snapshot holds into `directory` (a checkpoint under its temporary name): the
// weights, generation_config.json, the tokenizer, dsk/config.yaml, dsk/state.yaml, and
// dsk/optimizer.bin.zst when the snapshot has the moments (not with ZeRO-1: the ranks write their
// parts, optimizer_shards.hpp).
void write_checkpoint_contents(const std::filesystem::path& directory, const model::Model& model,
                               const CheckpointSnapshot& snapshot, const CheckpointExtras& extras);
// Writes a snapshot as save_checkpoint does. Reads only the model's immutable description
// (architecture, tensor names and shapes), so it may run on another thread while training goes on.
std::filesystem::path write_checkpoint(const std::filesystem::path& run_dir, const model::Model& model,
                                       const CheckpointSnapshot& snapshot, const CheckpointExtras& extras);

// The whole checkpoint with the highest step, if any; removes crash leftovers first (with several
// ranks, rank 0 alone does).
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& run_dir,
                                                       bool remove_leftovers = true);

// Restores the fp32 master weights into model, the moments into optimizer, and returns the state.
// DataError naming the file when something is missing, truncated or of another model. A model
// that holds part of the weights (expert parallelism: Model::dropped_weights) reads only those,
// of the weights and the moments alike.
TrainingState load_checkpoint_state(const std::filesystem::path& checkpoint, model::Model& model, AdamW& optimizer);
TrainingState load_checkpoint_state(const std::filesystem::path& checkpoint, const CheckpointContent& content,
                                    AdamW& optimizer);

// Deletes all but the newest `keep` checkpoints of the run.
void prune_checkpoints(const std::filesystem::path& run_dir, int64_t keep);

}  // namespace dsk::train

#include "train/checkpoint.hpp"

#include <yaml-cpp/yaml.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <regex>
#include <vector>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/log.hpp"
#include "train/error_feedback_checkpoint.hpp"
#include "train/optimizer_shards.hpp"
#include "train/optimizer_state.hpp"
#include "train/yaml_field.hpp"

namespace dsk::train {
namespace fs = std::filesystem;
namespace {

const std::regex kCheckpointName(R"(step-(\d+))");
const std::regex kLeftoverName(R"(step-\d+\.(tmp|old)-\d+)");

std::string state_to_yaml(const TrainingState& state) {
  YAML::Emitter out;
  out.SetDoublePrecision(17);
  out << YAML::BeginMap;
  out << YAML::Key << "step" << YAML::Value << state.step;
  out << YAML::Key << "tokens" << YAML::Value << state.tokens;
  out << YAML::Key << "data_cursor" << YAML::Value << state.data_cursor;
  out << YAML::Key << "seed" << YAML::Value << state.seed;
  out << YAML::Key << "skipped_steps" << YAML::Value << state.skipped_steps;
  out << YAML::Key << "bad_steps_in_row" << YAML::Value << state.bad_steps_in_row;
  out << YAML::Key << "elapsed_s" << YAML::Value << state.elapsed_s;
  out << YAML::Key << "train_loss" << YAML::Value << state.train_loss;
  if (state.val_loss) out << YAML::Key << "val_loss" << YAML::Value << *state.val_loss;
  if (state.error_feedback_ranks > 0)
    out << YAML::Key << "error_feedback_ranks" << YAML::Value << state.error_feedback_ranks;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

TrainingState state_from_yaml(const fs::path& file) {
  YAML::Node root;
  try {
    root = YAML::Load(read_file(file));
  } catch (const YAML::Exception& e) {
    throw DataError(str(file.string(), ": not valid YAML: ", e.what()));
  }
  if (!root.IsMap()) throw DataError(str(file.string(), ": expected a mapping"));
  TrainingState state;
  state.step = required_yaml_field<int64_t>(root, "step", file);
  state.tokens = required_yaml_field<int64_t>(root, "tokens", file);
  state.data_cursor = required_yaml_field<uint64_t>(root, "data_cursor", file);
  state.seed = required_yaml_field<uint64_t>(root, "seed", file);
  state.skipped_steps = required_yaml_field<int64_t>(root, "skipped_steps", file);
  state.bad_steps_in_row = required_yaml_field<int64_t>(root, "bad_steps_in_row", file);
  state.elapsed_s = required_yaml_field<double>(root, "elapsed_s", file);
  state.train_loss = required_yaml_field<double>(root, "train_loss", file);
  if (root["val_loss"]) state.val_loss = required_yaml_field<double>(root, "val_loss", file);
  if (root["error_feedback_ranks"])
    state.error_feedback_ranks = required_yaml_field<int64_t>(root, "error_feedback_ranks", file);
  return state;
}

// tokenizer.json and, when present beside it, tokenizer_config.json.
void copy_tokenizer(const fs::path& tokenizer, const fs::path& into) {
  if (tokenizer.empty()) return;
  if (!fs::exists(tokenizer)) {
    log_warn(tokenizer.string(), " (named by the shards' index.yaml) is gone: the checkpoint has no tokenizer");
    return;
  }
  fs::copy_file(tokenizer, into / "tokenizer.json", fs::copy_options::overwrite_existing);
  const fs::path config = tokenizer.parent_path() / "tokenizer_config.json";
  if (fs::exists(config)) fs::copy_file(config, into / "tokenizer_config.json", fs::copy_options::overwrite_existing);
}

void write_generation_config(const CheckpointExtras& extras, const fs::path& into) {
  nlohmann::json generation{{"_from_model_config", true}};
  if (extras.bos_id) generation["bos_token_id"] = *extras.bos_id;
  if (extras.eos_id) generation["eos_token_id"] = *extras.eos_id;
  write_file_atomic(into / "generation_config.json", generation.dump(2) + "\n");
}

// Whole checkpoints of the run, oldest first.
std::vector<std::pair<int64_t, fs::path>> list_checkpoints(const fs::path& run_dir) {
  std::vector<std::pair<int64_t, fs::path>> found;
  const fs::path directory = run_dir / "checkpoints";
  if (!fs::is_directory(directory)) return found;
  for (const auto& entry : fs::directory_iterator(directory)) {
    const std::string name = entry.path().filename().string();
    std::smatch match;
    if (entry.is_directory() && std::regex_match(name, match, kCheckpointName))
      found.emplace_back(std::stoll(match[1].str()), entry.path());
  }
  std::sort(found.begin(), found.end());
  return found;
}

void remove_crash_leftovers(const fs::path& run_dir) {
  const fs::path directory = run_dir / "checkpoints";
  if (!fs::is_directory(directory)) return;
  for (const auto& entry : fs::directory_iterator(directory)) {
    if (!std::regex_match(entry.path().filename().string(), kLeftoverName)) continue;
    log_warn("removing ", entry.path().string(), ", a checkpoint left half-written");
    fs::remove_all(entry.path());
  }
}

}  // namespace

fs::path checkpoint_path(const fs::path& run_dir, int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%06lld", static_cast<long long>(step));
  return run_dir / "checkpoints" / name;
}

fs::path save_checkpoint(const fs::path& run_dir, const CheckpointContent& content, AdamW& optimizer,
                         const TrainingState& state, const std::string& config_yaml,
                         std::span<const std::vector<float>> error_feedback) {
  const fs::path target = checkpoint_path(run_dir, state.step);
  fs::create_directories(target.parent_path());
  AtomicDirectory directory(target);
  content.write_weights(directory.path());
  const fs::path dsk_dir = directory.path() / "dsk";
  fs::create_directories(dsk_dir);
  write_file_atomic(dsk_dir / "config.yaml", config_yaml);
  TrainingState written = state;
  written.error_feedback_ranks = int64_t(error_feedback.size());
  write_file_atomic(dsk_dir / "state.yaml", state_to_yaml(written));
  save_optimizer_state(dsk_dir / "optimizer.bin.zst", optimizer.steps_taken(), content.master(),
                       optimizer.copy_first_moment(), optimizer.copy_second_moment());
  for (size_t rank = 0; rank < error_feedback.size(); ++rank)
    save_error_feedback(dsk_dir, int(rank), int(error_feedback.size()), state.step, error_feedback[rank]);
  directory.commit(/*replace_existing=*/true);
  return target;
}

CheckpointSnapshot take_checkpoint_snapshot(const model::Model& model, const AdamW& optimizer,
                                            const TrainingState& state) {
  CheckpointSnapshot snapshot;
  snapshot.state = state;
  snapshot.adam_steps = optimizer.steps_taken();
  snapshot.master = model.copy_parameters();
  snapshot.m = optimizer.copy_first_moment();
  snapshot.v = optimizer.copy_second_moment();
  return snapshot;
}

void write_checkpoint_contents(const fs::path& directory, const model::Model& model, const CheckpointSnapshot& snapshot,
                               const CheckpointExtras& extras) {
  model.save_hf_checkpoint(directory, snapshot.master, extras.dtype);
  write_generation_config(extras, directory);
  copy_tokenizer(extras.tokenizer, directory);
  const fs::path dsk_dir = directory / "dsk";
  fs::create_directories(dsk_dir);
  write_file_atomic(dsk_dir / "config.yaml", extras.config_yaml);
  write_file_atomic(dsk_dir / "state.yaml", state_to_yaml(snapshot.state));
  if (!snapshot.m.empty())
    save_optimizer_state(dsk_dir / "optimizer.bin.zst", snapshot.adam_steps, snapshot.master, snapshot.m, snapshot.v);
}

fs::path write_checkpoint(const fs::path& run_dir, const model::Model& model, const CheckpointSnapshot& snapshot,
                          const CheckpointExtras& extras) {
  const fs::path target = checkpoint_path(run_dir, snapshot.state.step);
  fs::create_directories(target.parent_path());
  AtomicDirectory directory(target);
  write_checkpoint_contents(directory.path(), model, snapshot, extras);
  directory.commit(/*replace_existing=*/true);
  return target;
}

fs::path save_checkpoint(const fs::path& run_dir, const model::Model& model, AdamW& optimizer,
                         const TrainingState& state, const CheckpointExtras& extras) {
  return write_checkpoint(run_dir, model, take_checkpoint_snapshot(model, optimizer, state), extras);
}

std::optional<fs::path> latest_checkpoint(const fs::path& run_dir, bool remove_leftovers) {
  if (remove_leftovers) remove_crash_leftovers(run_dir);
  auto found = list_checkpoints(run_dir);
  if (found.empty()) return std::nullopt;
  return found.back().second;
}

TrainingState load_checkpoint_state(const fs::path& checkpoint, const CheckpointContent& content, AdamW& optimizer) {
  const fs::path dsk_dir = checkpoint / "dsk";
  TrainingState state = state_from_yaml(dsk_dir / "state.yaml");
  // A ZeRO-1 run's ranks each wrote a part (optimizer_shards.hpp); any other run one file.
  OptimizerState saved = has_optimizer_parts(dsk_dir)
                             ? load_optimizer_parts(dsk_dir, content.parameter_count, content.held)
                             : load_optimizer_state(dsk_dir / "optimizer.bin.zst", content.parameter_count, content.held);
  content.restore(saved.master);
  optimizer.restore(saved.m, saved.v, saved.adam_steps, content.held);
  return state;
}

TrainingState load_checkpoint_state(const fs::path& checkpoint, model::Model& model, AdamW& optimizer) {
  CheckpointContent content;
  content.restore = [&](std::span<const float> held) { model.set_held_parameters(held); };
  content.parameter_count = model.parameter_count();
  std::vector<FlatRange> dropped;
  for (const model::FlatSpan& span : model.dropped_weights()) dropped.push_back({int64_t(span.offset), int64_t(span.numel)});
  if (!dropped.empty()) content.held = complement(dropped, int64_t(content.parameter_count));
  return load_checkpoint_state(checkpoint, content, optimizer);
}

void prune_checkpoints(const fs::path& run_dir, int64_t keep) {
  auto found = list_checkpoints(run_dir);
  if (static_cast<int64_t>(found.size()) <= keep) return;
  for (size_t i = 0; i + keep < found.size(); ++i) {
    // Renamed first: a kill in the middle of remove_all would leave a checkpoint that looks whole
    // but lacks files; a leftover name is removed at the next start instead.
    fs::path doomed = found[i].second;
    doomed += str(".old-", getpid());
    fs::rename(found[i].second, doomed);
    fs::remove_all(doomed);
  }
}

}  // namespace dsk::train

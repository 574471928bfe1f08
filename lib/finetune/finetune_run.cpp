#include "finetune/finetune_run.hpp"

#include <cmath>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/log.hpp"
#include "finetune/adapter_objective.hpp"
#include "finetune/data/examples.hpp"
#include "finetune/packing.hpp"
#include "train/checkpoint.hpp"
#include "train/model_source.hpp"

namespace dsk::finetune {
namespace fs = std::filesystem;

namespace {

// steps from epochs: ceil(epochs * rows / (micro_batch * grad_accum)); rows: examples, or the
// rows they are packed into.
void complete_run_length(Config& config, size_t rows) {
  if (!config.has("epochs")) return;
  if (config.has("steps") || config.has("tokens"))
    throw UsageError(str(config.source(), ": give the run's length as epochs, steps or tokens, one of them"));
  const double per_step = double(config.get_int("data.micro_batch") * config.get_int("data.grad_accum"));
  const int64_t steps = std::max<int64_t>(1, int64_t(std::ceil(config.get_double("epochs") * double(rows) / per_step)));
  config.set("steps", std::to_string(steps), str(config.where("epochs"), " (epochs)"));
}

TokenizedSet read_set(const std::vector<std::string>& files, const TokenizerFiles& tokenizer, int seq_len,
                      const char* what) {
  TokenizedSet set = fit_rows(read_instruction_data(files, *tokenizer.tokenizer, tokenizer.chat.get()), seq_len);
  if (set.cut > 0) log_warn(what, ": ", set.cut, " examples longer than data.seq_len (", seq_len, ") were cut");
  if (set.dropped > 0)
    log_warn(what, ": ", set.dropped, " examples dropped: nothing to learn within data.seq_len (", seq_len, ")");
  return set;
}

// The last checkpoint's PEFT files, alone in RUN/adapter (replaced whole).
fs::path publish_adapter(const train::TrainOutcome& outcome) {
  const fs::path target = outcome.run_dir / "adapter";
  AtomicDirectory directory(target);
  for (const char* name : {"adapter_config.json", "adapter_model.safetensors"})
    fs::copy_file(outcome.checkpoint / name, directory.path() / name);
  directory.commit(/*replace_existing=*/true);
  return target;
}

// How much of the rows is padding, packed and not: what data.packing saves (or would save).
void report_row_usage(const TokenizedSet& set, int T, bool packing) {
  const RowUsage usage = row_usage(set.examples, T);
  const int padded = int(std::lround(100 * usage.padding_fraction(usage.padded_rows, T)));
  const int packed = int(std::lround(100 * usage.padding_fraction(usage.packed_rows, T)));
  if (packing)
    log_info("data.packing: ", usage.examples, " examples in ", usage.packed_rows, " rows of ", T, " positions (",
             usage.padded_rows, " rows padded); padding is ", packed, "% of the positions (", padded,
             "% without packing)");
  else
    log_info("data.train: ", usage.examples, " rows of ", T, " positions, ", padded,
             "% of them padding (data.packing: true would take ", usage.packed_rows, " rows, ", packed, "% padding)");
}

}  // namespace

fs::path tokenizer_path(const Config& config, const fs::path& base_dir) {
  if (config.has("data.tokenizer")) {
    const fs::path path = config.get_string("data.tokenizer");
    if (!fs::exists(path)) throw DataError(str(config.where("data.tokenizer"), ": ", path.string(), ": no such file (data.tokenizer)"));
    return path;
  }
  const fs::path path = base_dir / "tokenizer.json";
  if (!fs::exists(path))
    throw DataError(str(base_dir.string(), ": no tokenizer.json in the base model; name one with data.tokenizer"));
  return path;
}

FinetuneOutcome outcome_of(const Config& config, const train::TrainOutcome& training) {
  FinetuneOutcome out;
  out.training = training;
  out.base_model = config.get_string("model.base");
  out.method = config.get_string("peft.method");
  out.rank = int(config.get_int("lora.r"));
  out.alpha = config.get_double("lora.alpha");
  out.virtual_tokens = int(config.get_int("prefix.num_virtual_tokens"));
  out.base_parameters = training.parameters;
  // Rank 0 speaks for a data-parallel run: it alone publishes the adapter (the others would race it).
  if (training.rank == 0 && !training.checkpoint.empty()) out.adapter = publish_adapter(training);
  return out;
}

namespace {

// A run directory that holds checkpoints of another kind (dsk-train's, say) is not resumed from.
void check_run_directory(const fs::path& run_dir) {
  const std::optional<fs::path> latest = train::latest_checkpoint(run_dir);
  if (latest && !fs::exists(*latest / "adapter_config.json"))
    throw UsageError(str(run_dir.string(), ": its checkpoints (", latest->filename().string(),
                         ") are not dsk-finetune's; give another checkpoint.dir (-o)"));
}

}  // namespace

FinetuneOutcome run_finetune(Config& config) {
  check_run_directory(config.get_string("checkpoint.dir"));
  const std::string base = config.get_string("model.base");
  const fs::path base_dir = train::local_checkpoint(base);
  if (!fs::is_directory(base_dir)) throw DataError(str(base_dir.string(), ": no such base model directory"));
  const TokenizerFiles files = load_tokenizer_files(tokenizer_path(config, base_dir));
  const tokenizer::Tokenizer& tokenizer = *files.tokenizer;
  const int T = int(config.get_int("data.seq_len"));
  TokenizedSet train_set = read_set(config.get_strings("data.train"), files, T, "data.train");
  TokenizedSet val_set;
  if (!config.get_strings("data.val").empty()) val_set = read_set(config.get_strings("data.val"), files, T, "data.val");
  const int32_t pad = tokenizer.eos_id() ? int32_t(*tokenizer.eos_id()) : 0;
  const bool packing = config.get_bool("data.packing");
  report_row_usage(train_set, T, packing);
  auto data = std::make_unique<InstructionBatches>(std::move(train_set), std::move(val_set), pad,
                                                   tokenizer.vocab_size(), uint64_t(config.get_int("seed")),
                                                   packing ? T : 0);
  log_info("instruction data: ", data->train_examples(), " training examples, ", data->val_examples(), " validation");
  complete_run_length(config, data->train_rows());
  if (!config.has("eval.batches") && data->val_examples() > 0) {
    const int64_t B = config.get_int("data.micro_batch");
    config.set("eval.batches", std::to_string((int64_t(data->val_rows()) + B - 1) / B), "data.val (all of it)");
  }

  train::TrainingHooks hooks;
  hooks.make_model = [&](const Config&, std::shared_ptr<tensor::Ops> ops) {
    log_info("base model: ", base_dir.string(), " (frozen)");
    return model::Model::load_hf_checkpoint(base_dir, std::move(ops), model::ModelOptions{true});
  };
  hooks.make_data = [&](const Config&) -> std::unique_ptr<train::BatchSource> { return std::move(data); };
  hooks.make_objective = [&](model::Model& model, const Config& c) -> std::unique_ptr<train::Objective> {
    const uint64_t seed = uint64_t(c.get_int("seed"));
    return std::make_unique<AdapterObjective>(model, adapter_from_config(model, c, seed), base, seed);
  };
  return outcome_of(config, train::run_training(config, hooks));
}

}  // namespace dsk::finetune

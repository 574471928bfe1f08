// dsk-finetune: parameter-efficient fine-tuning of a frozen base (lib/finetune does the work).
//   dsk-finetune train -c lora.yaml                        train or resume; an "adapter" record on stdout
//   dsk-finetune merge BASE ADAPTER -o DIR                 LoRA folded into a plain HF checkpoint
//   dsk-finetune eval ADAPTER --data test.jsonl            loss, exact match, latency; an "eval" record
//   dsk-finetune clean | select | classify ...             data stages (lib/finetune/data)
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <optional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/cli.hpp"
#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/log.hpp"
#include "core/record.hpp"
#include "finetune/finetune_classify.hpp"
#include "finetune/finetune_config.hpp"
#include "finetune/finetune_eval.hpp"
#include "finetune/finetune_run.hpp"
#include "finetune/adapter_objective.hpp"
#include "finetune/data/command.hpp"
#include "finetune/data/examples.hpp"
#include "finetune/merge.hpp"
#include "finetune/peft_format.hpp"
#include "tensor/device.hpp"
#include "train/model_source.hpp"

using namespace dsk;
namespace fs = std::filesystem;

namespace {

struct MergeFlags {
  std::string base, adapter, out, dtype = "BF16";
};

struct EvalFlags {
  std::string model, base, data, json;
  std::vector<std::string> labels;  // a classification task when given
  finetune::EvalSettings settings;
  cli::DeviceFlags where;
};

void print_adapter_record(const finetune::FinetuneOutcome& outcome, bool interrupted) {
  const train::TrainOutcome& t = outcome.training;
  if (t.rank != 0) return;  // one record per run, from rank 0 (as dsk-train and dsk-distill)
  Record record("adapter");
  record.set("path", outcome.adapter.string())
      .set("checkpoint", t.checkpoint.string())
      .set("run_dir", t.run_dir.string())
      .set("base_model", outcome.base_model)
      .set("model_type", t.model_type);
  if (outcome.method == "lora")
    record.set("peft_type", "LORA").set("r", int64_t(outcome.rank)).set("lora_alpha", outcome.alpha);
  else if (outcome.method == "prefix")  // deepseek_v3's MLA prefixes are in dsk's own layout (prefix.hpp)
    record.set("peft_type", t.model_type == "deepseek_v3" ? "MLA_PREFIX_TUNING" : "PREFIX_TUNING")
        .set("num_virtual_tokens", int64_t(outcome.virtual_tokens));
  else
    record.set("peft_type", "BOTTLENECK");
  record.set("trainable_parameters", t.trainable)
      .set("trainable_percent", finetune::trainable_percent(size_t(t.trainable), size_t(t.parameters)))
      .set("step", t.step)
      .set("tokens", t.tokens)
      .set("train_loss", t.train_loss);
  if (t.val_loss) record.set("val_loss", *t.val_loss);
  record.set("skipped_steps", t.skipped_steps);
  if (interrupted) record.set("interrupted", true);
  record.print();
}

// The effective config, with the flat keys that were mapped said first (as comments, so that the
// text stays a valid config) and the emptied flat list keys left out.
void print_config(const Config& config, const std::vector<std::string>& mapped) {
  std::string text;
  for (const std::string& line : mapped) text += "# " + line + "\n";
  std::istringstream lines(config.to_yaml());
  for (std::string line; std::getline(lines, line);) {
    bool empty_flat = false;
    for (const finetune::FlatKey& key : finetune::flat_keys()) empty_flat |= line == key.flat + ": []";
    if (!empty_flat) text += line + "\n";
  }
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

int run_train(const cli::CommonOptions& options) {
  Config config = Config::load(finetune::finetune_schema(), options.config_path, options.overrides,
                               options.flag_overrides);
  const std::vector<std::string> mapped = finetune::map_flat_keys(config);
  if (options.print_config) {
    print_config(config, mapped);
    return 0;
  }
  for (const std::string& line : mapped) log_debug("config: ", line);
  try {
    print_adapter_record(finetune::run_finetune(config), false);
  } catch (const train::TrainingInterrupted& stop) {
    // The saved checkpoint is a usable adapter, so a pipe's next tool still gets it (then exit 130/143).
    print_adapter_record(finetune::outcome_of(config, stop.outcome), true);
    throw;
  }
  return 0;
}

fs::path existing_directory(const std::string& path, const char* what) {
  if (!fs::is_directory(path))
    throw DataError(str(path, fs::exists(path) ? ": not a directory (" : ": no such directory (", what, ")"));
  return path;
}

int run_merge(const MergeFlags& flags) {
  const fs::path base = existing_directory(train::local_checkpoint(flags.base).string(), "the base checkpoint");
  const fs::path adapter = existing_directory(resolve_artifact_path(flags.adapter, {"adapter"}), "the adapter");
  const finetune::MergeOutcome merged = finetune::merge_adapter(base, adapter, flags.out, flags.dtype);
  log_info("merged LoRA into ", merged.merged_linears, " Linears of ", base.string());
  Record("checkpoint")
      .set("path", flags.out)
      .set("model_type", merged.model_type)
      .set("parameters", merged.parameters)
      .set("base_model", flags.base)
      .set("adapter", adapter.string())
      .print();
  return 0;
}

// The base named by an adapter's config (dsk-finetune writes model.base there, made absolute).
std::string base_of_adapter(const fs::path& adapter) {
  const nlohmann::json config = nlohmann::json::parse(read_file(adapter / "adapter_config.json"));
  const std::string base = config.value("base_model_name_or_path", "");
  if (base.empty())
    throw UsageError(str(adapter.string(), "/adapter_config.json names no base model: give --base"));
  return base;
}

int run_eval(const EvalFlags& flags, bool quiet) {
  const fs::path target = existing_directory(resolve_artifact_path(flags.model, {"adapter", "checkpoint"}),
                                             "an adapter or a checkpoint");
  const bool is_adapter = fs::exists(target / "adapter_config.json");
  const std::string base_name = !flags.base.empty() ? flags.base : is_adapter ? base_of_adapter(target) : target.string();
  const fs::path base = existing_directory(train::local_checkpoint(base_name).string(), "the base checkpoint");
  auto ops = tensor::make_ops(flags.where.device, flags.where.precision);
  model::Model model = model::Model::load_hf_checkpoint(base, ops, model::ModelOptions{true});
  std::unique_ptr<finetune::Adapter> adapter;
  if (is_adapter) adapter = finetune::adapter_from_directory(target, model);
  const fs::path tokenizer_file = (is_adapter ? base : target) / "tokenizer.json";
  if (!fs::exists(tokenizer_file)) throw DataError(str(tokenizer_file.string(), ": no such file (the tokenizer)"));
  const finetune::TokenizerFiles tokenizer = finetune::load_tokenizer_files(tokenizer_file);
  const auto examples = finetune::read_instruction_data({flags.data}, *tokenizer.tokenizer, tokenizer.chat.get());
  std::optional<finetune::ClassificationMetrics> classification;  // first: a bad label fails before the long part
  if (!flags.labels.empty())
    classification = finetune::classify_test_set(model, *tokenizer.tokenizer, tokenizer.chat.get(), flags.data,
                                                 flags.labels, flags.settings.limit);
  finetune::EvalReport report = finetune::evaluate_examples(model, *tokenizer.tokenizer, examples, flags.settings);
  report.classification = std::move(classification);
  if (!quiet) std::fputs(report.table().c_str(), stderr);
  if (!flags.json.empty()) write_file_atomic(flags.json, report.to_json().dump(2) + "\n");
  Record record("eval");
  record.set("path", target.string())
      .set("data", flags.data)
      .set("device", report.device)
      .set("examples", report.examples)
      .set("loss", report.loss)
      .set("perplexity", report.perplexity)
      .set("exact_match", report.exact_match)
      .set("first_token_p50_ms", report.first_token.p50_ms)
      .set("first_token_p95_ms", report.first_token.p95_ms)
      .set("per_token_p50_ms", report.per_token.p50_ms)
      .set("per_token_p95_ms", report.per_token.p95_ms);
  if (report.classification)
    record.set("labels", int64_t(report.classification->labels.size()))
        .set("accuracy", report.classification->accuracy)
        .set("macro_f1", report.classification->macro_f1);
  if (!flags.json.empty()) record.set("json", flags.json);
  record.print();
  return 0;
}

struct TrainFlags {
  std::string run_dir, base, data, val, steps, device, precision;
};

// Flags that stand for config keys (applied after -c and --set).
void add_train_flags(cli::KeyedFlags& keyed, TrainFlags& flags) {
  keyed.add("-o,--run-dir", "DIR", flags.run_dir, "checkpoint.dir",
            "Run directory: checkpoints, adapter/, metrics.jsonl (checkpoint.dir)");
  keyed.add("--base", "DIR", flags.base, "model.base", "Base checkpoint directory or registry:// / s3:// URL (model.base)");
  keyed.add("--data", "FILE", flags.data, "data.train", "Training JSONL (data.train)");
  keyed.add("--val", "FILE", flags.val, "data.val", "Validation JSONL (data.val)");
  keyed.add("--steps", "N", flags.steps, "steps", "Optimizer steps (steps)");
  keyed.add("--device", "NAME", flags.device, "device", "auto, cpu or cuda (device)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  keyed.add("--precision", "NAME", flags.precision, "precision", "auto, bf16 or fp32 (precision)")
      ->check(CLI::IsMember({"auto", "bf16", "fp32"}));
}

CLI::App* add_merge_command(CLI::App& app, MergeFlags& flags) {
  CLI::App* merge = app.add_subcommand("merge", "Fold a LoRA adapter into its base: a plain HF checkpoint");
  merge->add_option("base", flags.base, "Base checkpoint directory, or registry:// / s3:// URL")->required()->type_name("BASE");
  merge->add_option("adapter", flags.adapter, "PEFT LoRA adapter directory, or - for an adapter record on stdin")
      ->required()->type_name("ADAPTER");
  merge->add_option("-o,--output", flags.out, "Directory of the merged checkpoint")->required()->type_name("DIR");
  merge->add_option("--dtype", flags.dtype, "BF16, F16 or F32 (default BF16)")->check(CLI::IsMember({"BF16", "F16", "F32"}));
  return merge;
}

CLI::App* add_eval_command(CLI::App& app, EvalFlags& flags) {
  CLI::App* eval = app.add_subcommand("eval", "Loss, exact match, latency (and with --labels, classification) of an adapter or checkpoint on test JSONL");
  eval->add_option("model", flags.model, "Adapter or checkpoint directory, or - for its record on stdin")
      ->required()->type_name("DIR");
  eval->add_option("--data", flags.data, "Test JSONL (prompt/completion, chat or text records)")->required()->type_name("FILE");
  eval->add_option("--base", flags.base, "Base checkpoint (default: the adapter's base_model_name_or_path)")->type_name("DIR");
  eval->add_option("--json", flags.json, "Also write the results as JSON to FILE")->type_name("FILE");
  eval->add_option("--max-new-tokens", flags.settings.max_new_tokens, "Greedy generation budget per example (default 64)")
      ->check(cli::numeric<int>(1));
  eval->add_option("--seq-len", flags.settings.seq_len, "Tokens per row of the loss pass (default 512)")
      ->check(cli::numeric<int>(2));
  eval->add_option("--batch", flags.settings.batch, "Rows per loss micro-batch (default 8)")->check(cli::numeric<int>(1));
  eval->add_option("--limit", flags.settings.limit, "Only the first N examples (default all)")
      ->check(cli::numeric<int64_t>(1));
  eval->add_option("-l,--labels", flags.labels,
                   "A classification task: the label set (comma-separated or repeated); accuracy, macro-F1, confusion matrix")
      ->type_name("LABEL")->delimiter(',')->allow_extra_args(false);
  cli::add_device_flags(*eval, flags.where);
  return eval;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Parameter-efficient fine-tuning (LoRA, bottleneck adapters, prefix tuning) of llama, qwen2 and deepseek_v3 models", "dsk-finetune"};
  cli::CommonOptions common;
  cli::add_common_flags(app, common);
  app.require_subcommand(1);
  app.fallthrough();
  CLI::App* train = app.add_subcommand("train", "Train a LoRA, bottleneck or prefix-tuning adapter on instruction JSONL (or resume the run)");
  cli::add_config_flags(*train, common);
  cli::KeyedFlags keyed(*train);
  TrainFlags train_flags;
  add_train_flags(keyed, train_flags);
  MergeFlags merge_flags;
  CLI::App* merge = add_merge_command(app, merge_flags);
  EvalFlags eval_flags;
  CLI::App* eval = add_eval_command(app, eval_flags);
  finetune::add_data_commands(app);  // clean, select, classify

  cli::set_examples(app, {
      "dsk-finetune train -c configs/finetune-lora.yaml",
      "dsk-finetune train -c configs/finetune-lora.yaml --print-config",
      "dsk-finetune train --base runs/tiny/checkpoints/step-000500 --data train.jsonl --val val.jsonl --steps 200 -o runs/lora",
      "dsk-finetune merge runs/tiny/checkpoints/step-000500 runs/lora/adapter -o runs/merged",
      "dsk-finetune eval runs/lora/adapter --data test.jsonl --json eval.json",
      "dsk-finetune eval runs/lora/adapter --data test.jsonl --labels ' yes, no'",
      "dsk-finetune train -c lora.yaml | dsk-upload --name tiny-lora --version 1 -",
      "dsk-finetune clean --tokenizer ckpt/ --max-tokens 4096 raw.jsonl.zst | dsk-finetune select -m ckpt/ -n 500",
      "dsk-finetune classify -m ckpt/ --labels positive,negative --metrics metrics.json test.jsonl",
  });

  return cli::run(app, argc, argv, common, [&] {
    if (std::optional<int> code = finetune::run_data_command(app)) return *code;
    if (merge->parsed()) return run_merge(merge_flags);
    if (eval->parsed()) return run_eval(eval_flags, common.quiet);
    cli::CommonOptions effective = common;
    effective.flag_overrides = keyed.overrides();
    if (!train_flags.steps.empty())  // --steps replaces the config's other run length
      for (const char* length : {"epochs", "tokens"})
        effective.flag_overrides.push_back({"--steps", length, "null", train_flags.steps});
    return run_train(effective);
  });
}

// dsk-train: pre-train a model on token shards (lib/train does the work), sample from a
// checkpoint, and measure a checkpoint's validation loss.
//   dsk-train -c pretrain.yaml                    train or resume; a "checkpoint" record on stdout
//   dsk-train sample runs/tiny/checkpoints/step-000500 --prompt "In the beginning"
//   dsk-train eval runs/tiny/checkpoints/step-000500 --data shards/   an "eval" record on stdout
#include <CLI/CLI.hpp>
#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <filesystem>
#include <random>

#include "core/cli.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/record.hpp"
#include "dist/local_launch.hpp"
#include "model/generate.hpp"
#include "model/model.hpp"
#include "tensor/device.hpp"
#include "tokenizer/tokenizer.hpp"
#include "train/checkpoint_record.hpp"
#include "train/evaluate.hpp"
#include "train/train_data.hpp"
#include "train/trainer.hpp"
#include "train/train_schema.hpp"

using namespace dsk;

namespace {

struct TrainFlags {
  std::string run_dir, data, init_from, steps, device, precision;
  int nproc_per_node = 0;
};

struct SampleFlags {
  std::string checkpoint, prompt;
  int tokens = 64, samples = 1, top_k = 0;
  float temperature = 0.8f, top_p = 0.95f;
  uint64_t seed = 1;
  cli::DeviceFlags where;
};

struct EvalFlags {
  std::string checkpoint, data;
  int seq_len = 0, batch = 8;
  int64_t batches = 16;
  uint64_t seed = 1;
  cli::DeviceFlags where;
};

// The flags that set config keys, applied after -c and --set (so they win). A `-` for --data or
// --init-from reads the producing tool's record from stdin. A flag replaces what it stands for:
// --steps the config's token budget too, --init-from the config's model.config(_json).
std::vector<FlagOverride> flag_overrides(const TrainFlags& flags) {
  std::vector<FlagOverride> overrides;
  if (!flags.run_dir.empty()) overrides.push_back(cli::flag_override("--run-dir", "checkpoint.dir", flags.run_dir));
  if (!flags.steps.empty()) {
    overrides.push_back({"--steps", "tokens", "null", flags.steps});
    overrides.push_back(cli::flag_override("--steps", "steps", flags.steps));
  }
  if (!flags.data.empty())
    overrides.push_back(cli::flag_override("--data", "data.train", resolve_artifact_path(flags.data, {"shards"})));
  if (!flags.init_from.empty()) {
    for (const char* source : {"model.config", "model.config_json"})
      overrides.push_back({"--init-from", source, "null", flags.init_from});
    overrides.push_back(
        cli::flag_override("--init-from", "model.init_from", resolve_artifact_path(flags.init_from, {"checkpoint"})));
  }
  if (!flags.device.empty()) overrides.push_back(cli::flag_override("--device", "device", flags.device));
  if (!flags.precision.empty()) overrides.push_back(cli::flag_override("--precision", "precision", flags.precision));
  return overrides;
}

void print_checkpoint_record(const train::TrainOutcome& outcome, bool interrupted) {
  if (outcome.rank != 0) return;  // one record per run, from rank 0
  Record record = train::checkpoint_record(outcome);
  if (interrupted) record.set("interrupted", true);
  record.print();
}

int run_train(const Config& config) {
  try {
    print_checkpoint_record(train::run_training(config), false);
  } catch (const train::TrainingInterrupted& stop) {
    // The saved checkpoint is usable, so a pipe's next tool still gets it (then exit 130/143).
    print_checkpoint_record(stop.outcome, true);
    throw;
  }
  return 0;
}

// The checkpoint directory a subcommand reads: a path, or - for a checkpoint record on stdin.
std::filesystem::path checkpoint_directory(const std::string& argument) {
  const std::filesystem::path checkpoint = resolve_artifact_path(argument, {"checkpoint"});
  if (!std::filesystem::is_directory(checkpoint))
    throw DataError(str(checkpoint.string(), std::filesystem::exists(checkpoint)
                                                 ? ": not a checkpoint directory (config.json, model.safetensors, ...)"
                                                 : ": no such checkpoint directory"));
  return checkpoint;
}

int run_sample(const SampleFlags& flags) {
  const std::filesystem::path checkpoint = checkpoint_directory(flags.checkpoint);
  const std::filesystem::path tokenizer_path = checkpoint / "tokenizer.json";
  if (!std::filesystem::exists(tokenizer_path))
    throw DataError(str(checkpoint.string(), ": no tokenizer.json in the checkpoint, so text cannot be made"));
  auto tokenizer = tokenizer::Tokenizer::load(tokenizer_path);
  model::Model model =
      model::Model::load_hf_checkpoint(checkpoint, tensor::make_ops(flags.where.device, flags.where.precision));

  std::vector<int32_t> prompt;
  tokenizer::EncodeOptions options;
  options.add_special_tokens = tokenizer.add_bos_by_default();
  for (auto id : tokenizer.encode(flags.prompt, options)) prompt.push_back(int32_t(id));
  if (prompt.empty()) {
    // A document starts after BOS, or, without one, after the EOS that ended the one before.
    std::optional<uint32_t> start = tokenizer.bos_id() ? tokenizer.bos_id() : tokenizer.eos_id();
    if (!start) throw UsageError("the tokenizer has neither BOS nor EOS: give a --prompt to start from");
    prompt.push_back(int32_t(*start));
  }
  // A model's vocabulary may be padded past the tokenizer's (DeepSeek-V3: 129280 vs 128815); the
  // padding ids decode to nothing, so they are never sampled.
  model::SamplingSettings settings{flags.temperature, flags.top_k, flags.top_p, int(tokenizer.vocab_size())};
  std::mt19937_64 rng(flags.seed);
  for (int sample = 0; sample < flags.samples; ++sample) {
    std::vector<uint32_t> generated = model::generate_tokens(model, prompt, flags.tokens, settings, rng,
                                                             tokenizer.eos_id());
    std::string text = flags.prompt + tokenizer.decode(generated, /*skip_special_tokens=*/true) + "\n";
    if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size()) throw ResourceError("cannot write to stdout");
    std::fflush(stdout);
  }
  return 0;
}

// The sequence length a checkpoint was trained at (its dsk/config.yaml), else 256.
int trained_seq_len(const std::filesystem::path& checkpoint) {
  const std::filesystem::path saved = checkpoint / "dsk" / "config.yaml";
  if (!std::filesystem::exists(saved)) return 256;
  try {
    const YAML::Node config = YAML::LoadFile(saved.string());
    return config["data"] && config["data"]["seq_len"] ? config["data"]["seq_len"].as<int>() : 256;
  } catch (const YAML::Exception& e) {
    throw DataError(str(saved.string(), ": ", e.what()));
  }
}

int run_eval(const EvalFlags& flags) {
  const std::filesystem::path checkpoint = checkpoint_directory(flags.checkpoint);
  const int T = flags.seq_len > 0 ? flags.seq_len : trained_seq_len(checkpoint);
  // A shard directory's validation split when it has one, else its (or the files') train shards.
  const train::TrainData data = train::resolve_train_data({resolve_artifact_path(flags.data, {"shards"})}, {});
  const bool held_out = !data.val.empty();
  model::Model model =
      model::Model::load_hf_checkpoint(checkpoint, tensor::make_ops(flags.where.device, flags.where.precision));
  if (data.vocab_size > uint64_t(model.architecture().vocab))
    throw UsageError(str("the shards use a vocabulary of ", data.vocab_size, " tokens but the model has ",
                         model.architecture().vocab));
  // The windows dsk-train evaluates on for the same seed: the numbers agree with its val_loss.
  const train::TokenWindows windows(held_out ? data.val : data.train, T, flags.seed ^ 0x5eedull);
  const train::EvalResult result = train::evaluate_windows(model, windows, flags.batch, T, flags.batches);
  Record record("eval");
  record.set("path", checkpoint.string())
      .set("split", held_out ? "val" : "train")
      .set("device", model.ops().describe())
      .set("seq_len", int64_t(T))
      .set("tokens", result.tokens)
      .set("val_loss", result.loss)
      .set("perplexity", result.perplexity);
  record.print();
  return 0;
}

void add_eval_command(CLI::App& app, EvalFlags& flags, CLI::App*& eval) {
  eval = app.add_subcommand("eval", "Validation loss and perplexity of a checkpoint on token shards");
  eval->add_option("checkpoint", flags.checkpoint, "Checkpoint directory, or - for a checkpoint record on stdin")
      ->required()->type_name("DIR");
  eval->add_option("--data", flags.data, "Shard directory (its val split when it has one) or shard files")
      ->required()->type_name("DIR");
  eval->add_option("--seq-len", flags.seq_len, "Tokens per window (default: the checkpoint's data.seq_len, else 256)")
      ->check(cli::numeric<int>(1));
  eval->add_option("--batch", flags.batch, "Windows per micro-batch (default 8)")->check(cli::numeric<int>(1));
  eval->add_option("--batches", flags.batches, "Micro-batches to average (default 16)")->check(cli::numeric<int64_t>(1));
  eval->add_option("--seed", flags.seed, "Seed of the window positions (default 1, as dsk-train's)")
      ->check(cli::numeric<uint64_t>());
  cli::add_device_flags(*eval, flags.where);
}

void add_sample_command(CLI::App& app, SampleFlags& flags, CLI::App*& sample) {
  sample = app.add_subcommand("sample", "Generate text from a checkpoint (its tokenizer.json encodes the prompt)");
  sample->add_option("checkpoint", flags.checkpoint, "Checkpoint directory, or - for a checkpoint record on stdin")
      ->required()->type_name("DIR");
  sample->add_option("-p,--prompt", flags.prompt, "Text to continue (default: start from BOS)");
  sample->add_option("-n,--tokens", flags.tokens, "New tokens per sample at most (default 64)")
      ->check(cli::numeric<int>(1));
  sample->add_option("--samples", flags.samples, "Number of samples, each ended by a newline (default 1)")
      ->check(cli::numeric<int>(1));
  sample->add_option("--temperature", flags.temperature, "0 for greedy (default 0.8)")->check(cli::numeric<float>(0));
  sample->add_option("--top-k", flags.top_k, "Sample among the K most likely tokens, 0 = all (default 0)")
      ->check(cli::numeric<int>(0));
  sample->add_option("--top-p", flags.top_p, "Nucleus sampling threshold (default 0.95)")
      ->check(cli::numeric<float>(0, 1));
  sample->add_option("--seed", flags.seed, "Seed of the sampler (default 1)")->check(cli::numeric<uint64_t>());
  cli::add_device_flags(*sample, flags.where);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Pre-train a llama, qwen2 or deepseek_v3 model on token shards", "dsk-train"};
  cli::CommonOptions common;
  cli::add_common_flags(app, common);
  cli::add_config_flags(app, common);
  TrainFlags flags;
  app.add_option("-o,--run-dir", flags.run_dir, "Run directory: checkpoints, metrics.jsonl (checkpoint.dir)")
      ->type_name("DIR");
  app.add_option("--data", flags.data, "Train shard directory, or - for a shards record on stdin (data.train)")
      ->type_name("DIR");
  app.add_option("--init-from", flags.init_from,
                 "Start from this checkpoint's weights, or - for a checkpoint record on stdin (model.init_from)")
      ->type_name("DIR");
  app.add_option("--steps", flags.steps, "Optimizer steps (steps; replaces a token budget)")->type_name("N");
  app.add_option("--device", flags.device, "auto, cpu or cuda (device)")->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_option("--precision", flags.precision, "auto, bf16 or fp32 (precision)")
      ->check(CLI::IsMember({"auto", "bf16", "fp32"}));
  app.add_option("--nproc-per-node", flags.nproc_per_node,
                 "Start N data-parallel ranks on this machine, one per GPU (mpirun and srun start their own)")
      ->check(cli::numeric<int>(1))->type_name("N");
  SampleFlags sample_flags;
  CLI::App* sample = nullptr;
  add_sample_command(app, sample_flags, sample);
  EvalFlags eval_flags;
  CLI::App* eval = nullptr;
  add_eval_command(app, eval_flags, eval);

  cli::set_examples(app, {
      "dsk-train -c configs/tiny-deepseek.yaml",
      "dsk-train -c configs/tiny-deepseek.yaml --set optim.lr=1e-3 --steps 2000 -o runs/lr1e-3",
      "dsk-tokenize -t tokenizer.json -o shards/ corpus.txt | dsk-train -c configs/tiny-deepseek.yaml --data -",
      "dsk-train -c configs/tiny-deepseek.yaml --print-config",
      "dsk-train sample runs/tiny/checkpoints/step-001000 --prompt 'In the beginning' -n 40 --samples 3",
      "dsk-train -c configs/tiny-deepseek.yaml | dsk-train sample - -n 40",
      "dsk-train -c configs/tiny-deepseek.yaml --device cuda --precision bf16",
      "dsk-train eval runs/tiny/checkpoints/step-001000 --data runs/demo/shards",
      "dsk-train -c big.yaml --nproc-per-node 8 --set dist.zero=1",
      "mpirun -np 2 dsk-train -c configs/tiny-deepseek.yaml --device cpu --set data.grad_accum=2",
  });

  return cli::run(app, argc, argv, common, [&] {
    if (sample->parsed()) return run_sample(sample_flags);
    if (eval->parsed()) return run_eval(eval_flags);
    if (flags.nproc_per_node > 0) {
      // Each child reads the same command line; a record on stdin could be read only once.
      if (flags.data == "-" || flags.init_from == "-")
        throw UsageError("--nproc-per-node: give --data and --init-from as paths, not - (each rank reads them)");
      return dist::run_local_processes(flags.nproc_per_node, dist::child_arguments(argc, argv));
    }
    cli::CommonOptions effective = common;
    effective.flag_overrides = flag_overrides(flags);
    auto config = cli::load_config(train::train_schema(), effective);
    if (!config) return 0;
    return run_train(*config);
  });
}

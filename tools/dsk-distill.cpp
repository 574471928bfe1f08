// dsk-distill: compress a teacher model into a smaller student (lib/distill does the work).
//   dsk-distill init runs/teacher/checkpoints/step-000500 -o student --ratio 0.5   a "checkpoint" record
//   dsk-distill -c distill.yaml cache                  the teacher cache            a "teacher_cache" record
//   dsk-distill -c distill.yaml                        train (or resume) the student a "checkpoint" record
//   dsk-distill eval TEACHER STUDENT --data shards/    the quality report           a "distill_eval" record
#include <CLI/CLI.hpp>
#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <filesystem>

#include "core/cli.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/record.hpp"
#include "distill/distill_eval.hpp"
#include "distill/distill_objective.hpp"
#include "distill/distill_schema.hpp"
#include "distill/make_cache.hpp"
#include "distill/student_init.hpp"
#include "distill/task_eval.hpp"
#include "train/checkpoint_record.hpp"
#include "train/trainer.hpp"

using namespace dsk;
namespace fs = std::filesystem;

namespace {

// Flags of training and caching that stand for config keys (applied after -c and --set).
struct RunFlags {
  std::string run_dir, teacher, student, cache, data, steps, device, precision;
  std::string cache_output, cache_teacher;  // `cache`'s -o and TEACHER
};

struct InitFlags {
  std::string teacher, output, dtype = "BF16";
  std::optional<int> layers, hidden, intermediate, experts;
  std::optional<double> ratio;
  std::optional<int64_t> parameters;
  bool random = false;
  uint64_t seed = 1;
};

struct EvalFlags {
  std::string teacher, student, data;
  int seq_len = 0;
  distill::EvalSettings settings;
  distill::TaskSettings tasks;  // --tasks: a task set of dsk-finetune eval's format
};

// A checkpoint argument: a directory, or - for a checkpoint record on stdin.
fs::path checkpoint_directory(const std::string& argument) {
  const fs::path checkpoint = resolve_artifact_path(argument, {"checkpoint"});
  if (!fs::is_directory(checkpoint))
    throw DataError(str(checkpoint.string(), fs::exists(checkpoint) ? ": not a checkpoint directory"
                                                                    : ": no such checkpoint directory"));
  return checkpoint;
}

std::vector<FlagOverride> flag_overrides(const RunFlags& flags) {
  std::vector<FlagOverride> overrides;
  auto keyed = [&](const char* flag, const char* key, const std::string& value) {
    if (!value.empty()) overrides.push_back(cli::flag_override(flag, key, value));
  };
  keyed("--run-dir", "checkpoint.dir", flags.run_dir);
  if (!flags.teacher.empty())
    overrides.push_back(cli::flag_override("--teacher", "distill.teacher", checkpoint_directory(flags.teacher)));
  if (!flags.student.empty()) {
    for (const char* source : {"model.config", "model.config_json"})
      overrides.push_back({"--student", source, "null", flags.student});
    overrides.push_back(cli::flag_override("--student", "model.init_from", checkpoint_directory(flags.student)));
  }
  if (!flags.data.empty())
    overrides.push_back(cli::flag_override("--data", "data.train", resolve_artifact_path(flags.data, {"shards"})));
  keyed("--cache", "distill.cache", flags.cache);
  if (!flags.steps.empty()) {
    overrides.push_back({"--steps", "tokens", "null", flags.steps});
    overrides.push_back(cli::flag_override("--steps", "steps", flags.steps));
  }
  keyed("--device", "device", flags.device);
  keyed("--precision", "precision", flags.precision);
  if (!flags.cache_teacher.empty())
    overrides.push_back(cli::flag_override("TEACHER", "distill.teacher", checkpoint_directory(flags.cache_teacher)));
  keyed("--output", "distill.cache", flags.cache_output);
  return overrides;
}

void print_checkpoint_record(const train::TrainOutcome& outcome, const Config& config, bool interrupted) {
  if (outcome.rank != 0) return;  // one record per run, from rank 0
  Record record = train::checkpoint_record(outcome);
  if (config.has("distill.teacher")) record.set("teacher", config.get_string("distill.teacher"));
  if (config.has("distill.cache")) record.set("teacher_cache", config.get_string("distill.cache"));
  if (interrupted) record.set("interrupted", true);
  record.print();
}

int run_train(const Config& config) {
  try {
    print_checkpoint_record(train::run_training(config, distill::distill_objective_factory()), config, false);
  } catch (const train::TrainingInterrupted& stop) {
    print_checkpoint_record(stop.outcome, config, true);
    throw;
  }
  return 0;
}

int run_cache(const Config& config) {
  const distill::CacheOutcome outcome = distill::make_teacher_cache(config);
  Record record("teacher_cache");
  record.set("path", outcome.path.string())
      .set("teacher", config.get_string("distill.teacher"))
      .set("teacher_sha256", outcome.teacher_sha256)
      .set("tokenizer_sha256", outcome.tokenizer_sha256)
      .set("windows", outcome.windows)
      .set("seq_len", outcome.seq_len)
      .set("top_k", outcome.top_k)
      .set("parts", outcome.parts)
      .set("parts_made", outcome.parts_made)
      .set("bytes", outcome.bytes);
  record.print();
  return 0;
}

int run_init(const InitFlags& flags) {
  const fs::path teacher = checkpoint_directory(flags.teacher);
  distill::StudentRequest request{flags.layers, flags.hidden, flags.intermediate, flags.experts, flags.ratio,
                                  flags.parameters};
  const distill::InitOutcome outcome =
      distill::init_student(teacher, flags.output, request, flags.random, flags.seed, flags.dtype);
  const model::Architecture& arch = outcome.plan.arch;
  const double ratio = double(outcome.plan.parameters) / double(outcome.plan.teacher_parameters);
  log_info("student: ", outcome.plan.parameters, " parameters, ", ratio, " of the teacher's ",
           outcome.plan.teacher_parameters, " (", arch.layers, " layers, hidden ", arch.hidden, ")");
  Record record("checkpoint");
  record.set("path", outcome.path.string())
      .set("teacher", teacher.string())
      .set("init", outcome.random ? "random" : "teacher")
      .set("parameters", outcome.plan.parameters)
      .set("teacher_parameters", outcome.plan.teacher_parameters)
      .set("ratio", ratio)
      .set("layers", int64_t(arch.layers))
      .set("hidden_size", int64_t(arch.hidden))
      .set("intermediate_size", int64_t(arch.intermediate));
  if (arch.n_routed > 0)
    record.set("moe_intermediate_size", int64_t(arch.moe_intermediate)).set("n_routed_experts", int64_t(arch.n_routed));
  record.print();
  return 0;
}

// The sequence length a checkpoint was trained at (its dsk/config.yaml), else 256.
int trained_seq_len(const fs::path& checkpoint) {
  const fs::path saved = checkpoint / "dsk" / "config.yaml";
  if (!fs::exists(saved)) return 256;
  try {
    const YAML::Node config = YAML::LoadFile(saved.string());
    return config["data"] && config["data"]["seq_len"] ? config["data"]["seq_len"].as<int>() : 256;
  } catch (const YAML::Exception& e) {
    throw DataError(str(saved.string(), ": ", e.what()));
  }
}

void print_table(const distill::DistillReport& r) {
  auto row = [](const char* what, const std::string& teacher, const std::string& student) {
    std::fprintf(stderr, "%-24s %16s %16s\n", what, teacher.c_str(), student.c_str());
  };
  auto number = [](double x, const char* format = "%.4f") {
    char text[64];
    std::snprintf(text, sizeof text, format, x);
    return std::string(text);
  };
  row("", "teacher", "student");
  row("parameters", std::to_string(r.teacher.parameters), std::to_string(r.student.parameters));
  row("weights (MiB)", number(double(r.teacher.weight_bytes) / (1 << 20), "%.1f"),
      number(double(r.student.weight_bytes) / (1 << 20), "%.1f"));
  row("memory (MiB)", number(double(r.teacher.memory_bytes) / (1 << 20), "%.1f"),
      number(double(r.student.memory_bytes) / (1 << 20), "%.1f"));
  row("val loss", number(r.teacher.val_loss), number(r.student.val_loss));
  row("perplexity", number(r.teacher.perplexity, "%.2f"), number(r.student.perplexity, "%.2f"));
  row("decode tokens/s", number(r.teacher.decode_tokens_per_s, "%.1f"), number(r.student.decode_tokens_per_s, "%.1f"));
  row("top-1 agreement", "", number(r.top1_agreement));
  row("KL(teacher||student)", "", number(r.kl));
  row("retained quality", "", number(r.retained_quality));
  std::fprintf(stderr, "bar %.3f %s\n", r.bar, r.bar_met ? "met" : "not met");
}

void print_task_table(const distill::TaskReport& t) {
  std::fprintf(stderr, "task set:\n");
  for (const auto& [who, report] : {std::pair{"teacher", &t.teacher}, std::pair{"student", &t.student}})
    std::fprintf(stderr, "%s\n%s", who, report->table().c_str());
  if (t.retained) std::fprintf(stderr, "retained task quality (%s): %.4f\n", t.metric.c_str(), *t.retained);
}

// The task set's numbers, teacher_* and student_* side by side.
void add_task_fields(Record& record, const std::string& file, const distill::TaskReport& t) {
  record.set("tasks", file).set("task_examples", t.teacher.examples);
  for (const auto& [who, report] : {std::pair{"teacher", &t.teacher}, std::pair{"student", &t.student}}) {
    const std::string prefix = std::string(who) + "_task_";
    record.set(prefix + "loss", report->loss).set(prefix + "exact_match", report->exact_match);
    if (report->classification)
      record.set(prefix + "accuracy", report->classification->accuracy)
          .set(prefix + "macro_f1", report->classification->macro_f1);
    record.set(prefix + "first_token_p50_ms", report->first_token.p50_ms)
        .set(prefix + "per_token_p50_ms", report->per_token.p50_ms);
  }
  record.set("task_metric", t.metric);
  if (t.retained) record.set("retained_task_quality", *t.retained);
}

int run_eval(EvalFlags flags) {
  if (flags.teacher == "-" && flags.student == "-")
    throw UsageError("only one of TEACHER and STUDENT can be read from stdin (-)");
  const fs::path teacher = checkpoint_directory(flags.teacher), student = checkpoint_directory(flags.student);
  flags.settings.seq_len = flags.seq_len > 0 ? flags.seq_len : trained_seq_len(student);
  const distill::DistillReport r =
      distill::evaluate_distillation(teacher, student, resolve_artifact_path(flags.data, {"shards"}), flags.settings);
  print_table(r);
  std::optional<distill::TaskReport> tasks;
  if (!flags.tasks.file.empty()) {
    flags.tasks.device = flags.settings.device;
    flags.tasks.precision = flags.settings.precision;
    tasks = distill::evaluate_tasks(teacher, student, flags.tasks);
    print_task_table(*tasks);
  }
  Record record("distill_eval");
  record.set("teacher", teacher.string())
      .set("student", student.string())
      .set("split", r.split)
      .set("device", r.device)
      .set("seq_len", int64_t(flags.settings.seq_len))
      .set("tokens", r.tokens)
      .set("teacher_val_loss", r.teacher.val_loss)
      .set("student_val_loss", r.student.val_loss)
      .set("teacher_perplexity", r.teacher.perplexity)
      .set("student_perplexity", r.student.perplexity)
      .set("top1_agreement", r.top1_agreement)
      .set("kl", r.kl)
      .set("kl_top_k", int64_t(r.top_k))
      .set("retained_quality", r.retained_quality)
      .set("bar", r.bar)
      .set("bar_met", r.bar_met)
      .set("teacher_parameters", r.teacher.parameters)
      .set("student_parameters", r.student.parameters)
      .set("parameter_ratio", double(r.student.parameters) / double(r.teacher.parameters))
      .set("teacher_weight_bytes", r.teacher.weight_bytes)
      .set("student_weight_bytes", r.student.weight_bytes)
      .set("teacher_memory_bytes", r.teacher.memory_bytes)
      .set("student_memory_bytes", r.student.memory_bytes)
      .set("teacher_decode_tokens_per_s", r.teacher.decode_tokens_per_s)
      .set("student_decode_tokens_per_s", r.student.decode_tokens_per_s)
      .set("decode_speedup", r.student.decode_tokens_per_s / r.teacher.decode_tokens_per_s);
  if (tasks) add_task_fields(record, flags.tasks.file, *tasks);
  record.print();
  return 0;
}

void add_device_flags(CLI::App& command, std::string& device, std::string& precision, bool keyed) {
  command.add_option("--device", device, keyed ? "auto, cpu or cuda (device)" : "auto, cpu or cuda (default auto)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  command.add_option("--precision", precision,
                     keyed ? "auto, bf16 or fp32 (precision)" : "auto, bf16 or fp32 (default auto: bf16 on CUDA)")
      ->check(CLI::IsMember({"auto", "bf16", "fp32"}));
}

CLI::App* add_init_command(CLI::App& app, InitFlags& flags) {
  CLI::App* init = app.add_subcommand("init", "Make a student checkpoint from a teacher (fewer layers, smaller sizes)");
  init->add_option("teacher", flags.teacher, "Teacher checkpoint directory, or - for a checkpoint record on stdin")
      ->required()->type_name("TEACHER");
  init->add_option("-o,--output", flags.output, "Student checkpoint directory to create")->required()->type_name("DIR");
  init->add_option("--ratio", flags.ratio, "Target parameter count as a share of the teacher's (e.g. 0.5)")
      ->check(cli::numeric<double>(0, 1));
  init->add_option("--parameters", flags.parameters, "Target parameter count")->check(cli::numeric<int64_t>(1));
  init->add_option("--layers", flags.layers, "Student layers, taken from the teacher's at even spacing")
      ->check(cli::numeric<int>(1));
  init->add_option("--hidden", flags.hidden, "Student hidden size (the first channels of the teacher's)")
      ->check(cli::numeric<int>(2));
  init->add_option("--intermediate", flags.intermediate, "Student MLP (and expert MLP) intermediate size")
      ->check(cli::numeric<int>(1));
  init->add_option("--experts", flags.experts, "Routed experts kept (MoE), at even spacing")->check(cli::numeric<int>(1));
  init->add_flag("--random", flags.random, "Random init (HF's) instead of the teacher's weights");
  init->add_option("--seed", flags.seed, "Seed of --random (default 1)")->check(cli::numeric<uint64_t>());
  init->add_option("--dtype", flags.dtype, "dtype of model.safetensors: BF16 (default), F16 or F32")
      ->check(CLI::IsMember({"BF16", "F16", "F32"}));
  return init;
}

CLI::App* add_cache_command(CLI::App& app, RunFlags& flags) {
  CLI::App* cache = app.add_subcommand(
      "cache", "Run the teacher over the run's training windows once and write its top-k (the config's data, "
               "seq_len, seed, length)");
  cache->add_option("teacher", flags.cache_teacher,
                    "Teacher checkpoint directory, or - for a checkpoint record on stdin (distill.teacher)")
      ->type_name("TEACHER");
  cache->add_option("-o,--output", flags.cache_output, "Cache directory to write or finish (distill.cache)")
      ->type_name("DIR");
  return cache;
}

CLI::App* add_eval_command(CLI::App& app, EvalFlags& flags) {
  CLI::App* eval = app.add_subcommand("eval", "Teacher against student: loss, agreement, KL, retained quality, speed");
  eval->add_option("teacher", flags.teacher, "Teacher checkpoint directory, or - for a record on stdin")
      ->required()->type_name("TEACHER");
  eval->add_option("student", flags.student, "Student checkpoint directory, or - for a record on stdin")
      ->required()->type_name("STUDENT");
  eval->add_option("--data", flags.data, "Shard directory (its val split when it has one) or shard files")
      ->required()->type_name("DIR");
  eval->add_option("--seq-len", flags.seq_len, "Tokens per window (default: the student's data.seq_len, else 256)")
      ->check(cli::numeric<int>(1));
  eval->add_option("--batch", flags.settings.batch, "Windows per micro-batch (default 8)")->check(cli::numeric<int>(1));
  eval->add_option("--batches", flags.settings.batches, "Micro-batches to average (default 16)")
      ->check(cli::numeric<int64_t>(1));
  eval->add_option("--seed", flags.settings.seed, "Seed of the window positions (default 1, as dsk-train's)")
      ->check(cli::numeric<uint64_t>());
  eval->add_option("--bar", flags.settings.bar, "Retained quality the student must reach (default 0.98)")
      ->check(cli::numeric<double>(0));
  eval->add_option("--decode-tokens", flags.settings.decode_tokens, "Tokens generated to time decoding (default 64)")
      ->check(cli::numeric<int>(1));
  eval->add_option("--tasks", flags.tasks.file,
                   "Also a task set in dsk-finetune eval's JSONL format: loss, exact match (accuracy, macro-F1 "
                   "with --labels) of both")
      ->type_name("FILE");
  eval->add_option("-l,--labels", flags.tasks.labels,
                   "The task set as a classification task: the label set (comma-separated or repeated)")
      ->type_name("LABEL")->delimiter(',')->allow_extra_args(false);
  eval->add_option("--task-limit", flags.tasks.eval.limit, "Only the first N task examples (default all)")
      ->check(cli::numeric<int64_t>(1));
  eval->add_option("--max-new-tokens", flags.tasks.eval.max_new_tokens,
                   "Greedy generation budget per task example (default 64)")
      ->check(cli::numeric<int>(1));
  add_device_flags(*eval, flags.settings.device, flags.settings.precision, false);
  return eval;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Distill a teacher model into a smaller student", "dsk-distill"};
  app.fallthrough();  // `dsk-distill cache --data ...`: the run flags below after a subcommand too
  app.require_subcommand(0, 1);
  cli::CommonOptions common;
  cli::add_common_flags(app, common);
  cli::add_config_flags(app, common);
  RunFlags flags;
  app.add_option("-o,--run-dir", flags.run_dir, "Run directory of the student's training (checkpoint.dir)")
      ->type_name("DIR");
  app.add_option("--teacher", flags.teacher, "Teacher checkpoint, or - for a checkpoint record on stdin (distill.teacher)")
      ->type_name("DIR");
  app.add_option("--student", flags.student, "Student checkpoint to start from, or - for a record (model.init_from)")
      ->type_name("DIR");
  app.add_option("--cache", flags.cache, "Teacher cache directory (distill.cache); none: online teacher")
      ->type_name("DIR");
  app.add_option("--data", flags.data, "Train shard directory, or - for a shards record on stdin (data.train)")
      ->type_name("DIR");
  app.add_option("--steps", flags.steps, "Optimizer steps (steps; replaces a token budget)")->type_name("N");
  add_device_flags(app, flags.device, flags.precision, true);
  InitFlags init_flags;
  CLI::App* init = add_init_command(app, init_flags);
  CLI::App* cache = add_cache_command(app, flags);
  // `train` has no flags of its own: the run flags above (fallthrough) and the config.
  app.add_subcommand("train", "Train the student (the same as no subcommand)");
  EvalFlags eval_flags;
  CLI::App* eval = add_eval_command(app, eval_flags);

  cli::set_examples(app, {
      "dsk-distill init runs/teacher/checkpoints/step-000500 -o runs/student-init --ratio 0.5",
      "dsk-distill -c configs/distill-demo.yaml cache",
      "dsk-distill -c configs/distill-demo.yaml",
      "dsk-distill -c configs/distill-demo.yaml --set distill.loss=jsd --set distill.beta=0.5 -o runs/jsd",
      "dsk-distill -c configs/distill-demo.yaml --print-config",
      "dsk-train -c teacher.yaml | dsk-distill -c configs/distill-demo.yaml --teacher -",
      "dsk-distill eval runs/demo/train/checkpoints/step-000200 runs/demo/distill/checkpoints/step-000200 --data runs/demo/shards",
  });

  return cli::run(app, argc, argv, common, [&] {
    if (init->parsed()) return run_init(init_flags);
    if (eval->parsed()) return run_eval(eval_flags);
    cli::CommonOptions effective = common;
    effective.flag_overrides = flag_overrides(flags);
    auto config = cli::load_config(distill::distill_schema(), effective);
    if (!config) return 0;
    if (cache->parsed()) return run_cache(*config);
    return run_train(*config);
  });
}

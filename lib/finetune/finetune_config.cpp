#include "finetune/finetune_config.hpp"

#include <charconv>
#include <filesystem>

#include "core/error.hpp"
#include "registry/fetch_cache.hpp"
#include "train/train_schema.hpp"

namespace dsk::finetune {
namespace {

// Keys of dsk-train's schema that fine-tuning defines otherwise or has no use for.
bool replaced(const std::string& path) {
  return path.starts_with("model.") || path == "data.train" || path == "data.val" || path.starts_with("moe.") ||
         path == "checkpoint.dtype" || path == "checkpoint.dir" || path == "eval.batches" || path == "optim.lr" ||
         path == "optim.weight_decay" || path == "schedule.type" || path == "schedule.min_lr" ||
         path == "data.seq_len" || path == "eval.every" || path == "checkpoint.every";
}

const std::vector<FlatKey> kFlatKeys = {
    {"model_name", "model.base", "the base model: a directory or a registry name"},
    {"model_name_or_path", "model.base", "the base model"},
    {"peft_method", "peft.method", "the method (lora, bottleneck or prefix)"},
    {"lora_r", "lora.r", "LoRA rank"},
    {"r", "lora.r", "LoRA rank (PEFT's LoraConfig name)"},
    {"lora_alpha", "lora.alpha", "LoRA alpha"},
    {"lora_dropout", "lora.dropout", "LoRA dropout"},
    {"target_modules", "lora.target_modules", "LoRA target modules"},
    {"use_rslora", "lora.rslora", "rsLoRA scaling"},
    {"num_virtual_tokens", "prefix.num_virtual_tokens", "prefix length (PEFT's PrefixTuningConfig name)"},
    {"prefix_projection", "prefix.projection", "prefix reparameterisation MLP (PEFT's name)"},
    {"encoder_hidden_size", "prefix.encoder_hidden_size", "prefix MLP width (PEFT's name)"},
    {"batch_size", "data.micro_batch", "examples per micro-batch"},
    {"per_device_train_batch_size", "data.micro_batch", "examples per micro-batch"},
    {"gradient_accumulation_steps", "data.grad_accum", "micro-batches per step"},
    {"max_seq_length", "data.seq_len", "tokens per example row"},
    {"max_length", "data.seq_len", "tokens per example row"},
    {"packing", "data.packing", "pack short examples into full rows (TRL's SFTConfig name)"},
    {"train_file", "data.train", "training JSONL"},
    {"validation_file", "data.val", "validation JSONL"},
    {"learning_rate", "optim.lr", "peak learning rate"},
    {"weight_decay", "optim.weight_decay", "decoupled weight decay"},
    {"max_grad_norm", "optim.grad_clip", "gradient clipping"},
    {"warmup_steps", "schedule.warmup_steps", "linear warmup steps"},
    {"lr_scheduler_type", "schedule.type", "decay after warmup"},
    {"num_train_epochs", "epochs", "passes over the training data"},
    {"max_steps", "steps", "optimizer steps"},
    {"output_dir", "checkpoint.dir", "run directory"},
    {"logging_steps", "logging.every", "metrics.jsonl cadence"},
    {"eval_steps", "eval.every", "evaluation cadence"},
    {"save_steps", "checkpoint.every", "checkpoint cadence"},
    {"save_total_limit", "checkpoint.keep", "checkpoints kept"},
};

// The nested key's spec, under the flat name, so that the flat key is checked alike.
void add_flat_key(Schema& s, const FlatKey& key) {
  KeySpec spec = *s.find(key.nested);
  spec.path = key.flat;
  spec.default_value.reset();
  spec.required = false;
  spec.help = str(spec.help, " (as ", key.nested, ")");
  if (key.flat.starts_with("model_name")) spec.is_path = false;  // a registry name or a path: see map_flat_keys
  s.string(key.flat, std::nullopt, "") = spec;
}

Schema build_schema() {
  Schema s;
  s.path("model.base", std::nullopt,
           "the frozen base model: checkpoint directory, registry://name@version-or-alias or s3:// URL");
  s.path_list("data.train", {}, "instruction JSONL files ({\"prompt\", \"completion\"} records)");
  s.path_list("data.val", {}, "validation JSONL files (none: no evaluation)");
  s.path("data.tokenizer", std::nullopt, "tokenizer.json (default: the base model's)");
  s.choice("peft.method", "lora", {"lora", "bottleneck", "prefix"},
           "parameter-efficient method: lora, bottleneck (adapters) or prefix (prefix tuning)");
  s.integer("bottleneck.size", std::nullopt, "bottleneck adapter size m (default: hidden / reduction_factor)").minimum = 1;
  s.integer("bottleneck.reduction_factor", 16, "bottleneck adapter size as hidden / this").minimum = 1;
  s.string_list("bottleneck.placement", {"attention", "mlp"}, "after which sublayers: attention, mlp or both");
  s.integer("prefix.num_virtual_tokens", 20, "prefix tuning: key/value positions learned per layer").minimum = 1;
  s.boolean("prefix.projection", false,
            "prefix tuning: train the prefixes through an MLP (embedding -> Linear -> tanh -> Linear), folded away at save");
  s.integer("prefix.encoder_hidden_size", std::nullopt, "prefix tuning: the MLP's hidden width (default: token_dim)")
      .minimum = 1;
  s.integer("lora.r", 8, "LoRA rank").minimum = 1;
  s.number("lora.alpha", 16, "LoRA alpha: the update is scaled by alpha / r (alpha / sqrt(r) with rslora)").minimum = 0;
  KeySpec& dropout = s.number("lora.dropout", 0.05, "dropout on the LoRA branch's input in training");
  dropout.minimum = 0;
  dropout.maximum = 0.99;
  s.string_list("lora.target_modules", {"all-linear"},
                "modules to adapt: names (q_proj, v_proj, ...) matched as PEFT does, or all-linear");
  s.string("lora.target_regex", std::nullopt, "a regular expression the whole module name must match (instead)");
  s.boolean("lora.rslora", false, "rsLoRA: scale by alpha / sqrt(r)");
  s.number("epochs", std::nullopt, "passes over data.train (or give steps or tokens)").minimum = 0;
  s.path("checkpoint.dir", "runs/finetune", "run directory");
  s.integer("checkpoint.every", 200, "checkpoint every N steps (0: only at the end)").minimum = 0;
  s.integer("eval.every", 50, "evaluate every N steps (0: only at the end)").minimum = 0;
  s.integer("eval.batches", std::nullopt, "validation micro-batches per evaluation (default: all of data.val)")
      .minimum = 1;
  s.integer("data.seq_len", 512, "tokens per example row (longer examples are cut)").minimum = 2;
  s.boolean("data.packing", false,
            "pack short examples into full rows of data.seq_len, attention kept within each example (false: one "
            "example a row, padded)");
  s.number("optim.lr", 2e-4, "peak learning rate").minimum = 0;
  s.number("optim.weight_decay", 0.0, "decoupled weight decay").minimum = 0;
  s.choice("schedule.type", "linear", {"constant", "cosine", "linear", "wsd"}, "decay after warmup");
  s.number("schedule.min_lr", 0.0, "the floor the decay ends at").minimum = 0;
  for (const KeySpec& key : train::train_schema().keys())
    if (!replaced(key.path)) s.string(key.path, std::nullopt, "") = key;
  for (const FlatKey& key : kFlatKeys) add_flat_key(s, key);
  return s;
}

std::string yaml_text(const Config& config, const std::string& path) {
  const KeySpec& spec = *config.schema().find(path);
  switch (spec.type) {
    case ValueType::boolean: return config.get_bool(path) ? "true" : "false";
    case ValueType::integer: return std::to_string(config.get_int(path));
    case ValueType::number: {  // the shortest text that reads back as the same double
      char text[32];
      const auto end = std::to_chars(text, text + sizeof text, config.get_double(path)).ptr;
      return std::string(text, end);
    }
    case ValueType::string_list: {
      std::string list = "[";
      for (const std::string& item : config.get_strings(path)) list += (list.size() > 1 ? ", \"" : "\"") + item + "\"";
      return list + "]";
    }
    default: return "\"" + config.get_string(path) + "\"";
  }
}

// model_name as users write it: a registry name ("deepseek-7b", "tiny@prod") unless it is a URL,
// a path (a '/' in it) or an existing directory; a path in a file is relative to the file's
// directory, as every path key of a config is. `where` is Config::where's "file.yaml:3" or "--set ...".
std::string base_model_reference(const std::string& name, const std::string& where) {
  namespace fs = std::filesystem;
  if (registry::is_model_url(name)) return "\"" + name + "\"";
  const fs::path directory = where.starts_with("--") ? fs::path() : fs::path(where.substr(0, where.rfind(':'))).parent_path();
  const fs::path path = directory / name;
  if (name.find('/') != std::string::npos || fs::exists(path))
    return "\"" + fs::absolute(path).lexically_normal().string() + "\"";
  return "\"registry://" + name + "\"";
}

// Where a value came from, by precedence: a default (-1), the config file (0), --set (1), a
// flag that stands for the key (2). Config::where's text tells them apart.
int layer_of(const std::string& where) {
  if (where.find("(default of ") != std::string::npos) return -1;
  if (where.starts_with("--set")) return 1;
  return where.starts_with("--") ? 2 : 0;
}

}  // namespace

const Schema& finetune_schema() {
  static const Schema schema = build_schema();
  return schema;
}

const std::vector<FlatKey>& flat_keys() { return kFlatKeys; }

std::vector<std::string> map_flat_keys(Config& config) {
  std::vector<std::string> mapped;
  for (const FlatKey& key : kFlatKeys) {
    if (!config.has(key.flat)) continue;
    const KeySpec& spec = *config.schema().find(key.flat);
    if (spec.type == ValueType::string_list && config.get_strings(key.flat).empty()) continue;  // unset
    const std::string source = config.where(key.flat);
    std::string value = yaml_text(config, key.flat);
    if (key.flat.starts_with("model_name")) value = base_model_reference(config.get_string(key.flat), source);
    const std::string nested_source = config.where(key.nested);
    const int flat_layer = layer_of(source), nested_layer = layer_of(nested_source);
    if (nested_layer > flat_layer) {  // --set or a flag for the nested key wins over the file's flat key
      config.set(key.flat, "null", source);
      mapped.push_back(str(key.flat, " (", source, ") overridden by ", nested_source));
      continue;
    }
    if (nested_layer == flat_layer && config.has(key.nested) && yaml_text(config, key.nested) != value)
      throw UsageError(str(source, ": ", key.flat, " and ", key.nested, " (", nested_source,
                           ") are the same setting, given two values"));
    config.set(key.nested, value, str(source, " (", key.flat, ")"));
    config.set(key.flat, "null", source);
    mapped.push_back(str(key.flat, " -> ", key.nested, " (", source, ")"));
  }
  // Required once the flat keys had their say (model_name, train_file).
  if (!config.has("model.base"))
    throw UsageError(str(config.source(), ": missing required key 'model.base' (or model_name): the base model"));
  if (config.get_strings("data.train").empty())
    throw UsageError(str(config.source(), ": missing required key 'data.train' (or train_file): the instruction JSONL"));
  return mapped;
}

}  // namespace dsk::finetune

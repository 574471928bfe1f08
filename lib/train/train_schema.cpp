#include "train/train_schema.hpp"

namespace dsk::train {
namespace {

Schema build_schema() {
  Schema s;
  s.path("model.config_json", std::nullopt, "path of an HF config.json for a model trained from scratch");
  s.tree("model.config", "inline HF config.json fields (instead of model.config_json)");
  s.path("model.init_from", std::nullopt, "checkpoint directory to start from");

  s.path_list("data.train", {}, "train shard directories (with index.yaml) or shard files/globs").required = true;
  s.path_list("data.val", {}, "validation shards (default: the val split of the train directories)");
  s.integer("data.seq_len", 256, "tokens per sequence").minimum = 1;
  s.integer("data.micro_batch", 4, "sequences per forward/backward").minimum = 1;
  s.integer("data.grad_accum", 1, "micro-batches per optimizer step").minimum = 1;

  s.number("optim.lr", 3e-4, "peak learning rate").minimum = 0;
  s.number("optim.beta1", 0.9, "AdamW beta1").minimum = 0;
  s.number("optim.beta2", 0.95, "AdamW beta2").minimum = 0;
  s.number("optim.eps", 1e-8, "AdamW epsilon").minimum = 0;
  s.number("optim.weight_decay", 0.1, "decoupled weight decay").minimum = 0;
  s.boolean("optim.decay_norms_biases_embeddings", false, "also decay norms, biases and embeddings");
  s.number("optim.grad_clip", 1.0, "clip the global gradient norm to this (0: off)").minimum = 0;

  s.choice("schedule.type", "cosine", {"constant", "cosine", "linear", "wsd"}, "decay after warmup");
  s.integer("schedule.warmup_steps", 0, "linear warmup steps").minimum = 0;
  s.number("schedule.min_lr", 3e-5, "the floor the decay ends at").minimum = 0;
  s.number("schedule.decay_fraction", 0.2, "wsd: fraction of the steps spent decaying").minimum = 0;

  s.integer("steps", std::nullopt, "optimizer steps (or give tokens)").minimum = 1;
  s.integer("tokens", std::nullopt, "token budget: steps = tokens / (micro_batch * grad_accum * seq_len)").minimum = 1;
  s.integer("seed", 1, "seed of initialization and data order");
  s.choice("device", "auto", {"auto", "cpu", "cuda"}, "where to train (auto: CUDA when a GPU is visible)");
  s.choice("precision", "auto", {"auto", "bf16", "fp32"},
           "CUDA: bf16 weights and activations with fp32 master weights (auto), or fp32 throughout");
  s.choice("train.recompute", "none", {"none", "attention", "full"},
           "recompute activations in backward instead of keeping them: less memory, up to one more forward");
  s.integer("max_bad_steps", 5, "stop after this many NaN/Inf losses in a row").minimum = 1;

  s.integer("eval.every", 100, "evaluate every N steps (0: only at the end)").minimum = 0;
  s.integer("eval.batches", 8, "validation micro-batches per evaluation").minimum = 1;

  s.path("checkpoint.dir", "runs/default", "run directory");
  s.integer("checkpoint.every", 500, "checkpoint every N steps (0: only at the end)").minimum = 0;
  s.integer("checkpoint.keep", 3, "keep the last K checkpoints").minimum = 1;
  s.choice("checkpoint.dtype", "BF16", {"BF16", "F16", "F32"},
           "dtype of model.safetensors (the fp32 master weights are in dsk/optimizer.bin.zst)");

  s.boolean("checkpoint.async", true,
            "write checkpoints in the background while training goes on (one in flight at a time)");

  s.integer("logging.every", 10, "append to metrics.jsonl every N steps").minimum = 1;

  s.number("moe.bias_update_speed", 0.001, "aux-loss-free balancing: routing bias step").minimum = 0;
  s.number("moe.aux_loss_alpha", 0.0001, "sequence-wise balance loss weight").minimum = 0;

  auto& zero = s.integer("dist.zero", 0, "ZeRO stage with several ranks: 0 (replicated optimizer state) or 1 (sharded)");
  zero.minimum = 0;
  zero.maximum = 1;
  s.choice("dist.grad_dtype", "auto", {"auto", "fp32", "bf16", "int8"},
           "gradients on the wire between ranks (auto: bf16 on CUDA in bf16, else fp32; int8: compressed)");
  s.number("dist.bucket_mb", 25,
           "MiB of fp32 gradients per all-reduce bucket, started as the backward finishes it (0: one bucket)")
      .minimum = 0;
  s.boolean("dist.error_feedback", true, "int8 gradients: carry each step's quantization error into the next");
  s.number("dist.timeout", 300, "seconds to wait for the other ranks, at the start and in any collective").minimum = 1;
  s.integer("dist.expert_parallel", 1,
            "deepseek_v3: split the routed experts over groups of this many ranks (1: off; divides the ranks)")
      .minimum = 1;
  return s;
}

}  // namespace

const Schema& train_schema() {
  static const Schema schema = build_schema();
  return schema;
}

Schedule schedule_from(const Config& config, std::int64_t total_steps) {
  Schedule schedule;
  schedule.shape = parse_decay_shape(config.get_string("schedule.type"), "schedule.type");
  schedule.lr = config.get_double("optim.lr");
  schedule.min_lr = config.get_double("schedule.min_lr");
  schedule.warmup_steps = config.get_int("schedule.warmup_steps");
  schedule.decay_fraction = config.get_double("schedule.decay_fraction");
  schedule.total_steps = total_steps;
  return schedule;
}

}  // namespace dsk::train

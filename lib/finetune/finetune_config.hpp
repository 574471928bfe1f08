// dsk-finetune's config: dsk-train's keys (train/train_schema.hpp) for the loop, the optimizer and
// the schedule, with the model and data keys of fine-tuning and the method's own:
//   model.base         the frozen base: a checkpoint directory, registry://name@alias or s3:// URL
//   data.train/val     instruction JSONL ({"prompt", "completion"} records)
//   peft.method        lora
//   lora.r, lora.alpha, lora.dropout, lora.target_modules, lora.target_regex, lora.rslora
//   epochs             the run's length in passes over data.train (instead of steps or tokens)
// and the flat keys users write for Hugging Face's trainers (model_name, lora_r, batch_size,
// learning_rate, warmup_steps, ...), each mapped onto the nested key it means. Giving both a flat
// key and its nested key with different values is a UsageError naming both.
#pragma once

#include <string>
#include <vector>

#include "core/config.hpp"

namespace dsk::finetune {

const Schema& finetune_schema();

// One flat key and the nested key it stands for.
struct FlatKey {
  std::string flat, nested, help;
};
const std::vector<FlatKey>& flat_keys();

// Moves every flat key given onto its nested key (model_name: a registry name unless it is a
// URL, contains a '/' or names an existing directory) and returns one line per key moved,
// "model_name -> model.base" with where it came from, for --print-config. Then the keys required
// under either name (model.base, data.train) must be there (UsageError).
std::vector<std::string> map_flat_keys(Config& config);

}  // namespace dsk::finetune

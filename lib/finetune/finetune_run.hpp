// `dsk-finetune train`: the effective config (finetune_config.hpp) -> instruction data read and
// tokenized with the base's tokenizer -> the shared training loop (train/trainer.hpp) with the
// frozen base (no gradients, no optimizer state, bf16 on CUDA), the LoRA objective and padded
// instruction batches -> RUN/adapter, the last checkpoint's adapter alone (PEFT files), ready
// for dsk-upload and PeftModel.from_pretrained.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "finetune/instruction_data.hpp"
#include "train/trainer.hpp"

namespace dsk::finetune {

struct FinetuneOutcome {
  train::TrainOutcome training;
  std::filesystem::path adapter;  // RUN/adapter
  std::string base_model;         // model.base as given
  std::string method = "lora";
  int rank = 0;
  double alpha = 0;
  int virtual_tokens = 0;  // prefix tuning
  int64_t base_parameters = 0;
};

// The tokenizer of a run: data.tokenizer, else the base checkpoint's tokenizer.json. The chat
// template that renders {"messages"} records is the one beside it (tokenizer_config.json or
// chat_template.jinja in the same directory).
std::filesystem::path tokenizer_path(const Config& config, const std::filesystem::path& base_dir);

// config is completed here (steps from epochs, eval.batches from the validation set) before the
// loop starts. Throws train::TrainingInterrupted (with the outcome) after a clean save on a signal;
// the FinetuneOutcome of that run is rebuilt by outcome_of().
FinetuneOutcome run_finetune(Config& config);
FinetuneOutcome outcome_of(const Config& config, const train::TrainOutcome& training);

}  // namespace dsk::finetune

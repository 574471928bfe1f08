// The fine-tuning objective of dsk-finetune on the shared training loop (train/objective.hpp):
// next-token cross-entropy on the completion tokens (the batches carry -100 elsewhere) of a
// frozen base with a LoRA adapter, the adapter being the whole trainable set (fp32 master, AdamW
// moments of its size only). Checkpoints hold the adapter in PEFT's format
// (adapter_config.json + adapter_model.safetensors) beside dsk/ (state, optimizer).
#pragma once

#include <string>

#include "finetune/lora.hpp"
#include "train/objective.hpp"

namespace dsk::finetune {

LoraSettings lora_settings_from(const Config& config);

class LoraObjective final : public train::Objective {
 public:
  // base_model: what adapter_config.json names as the base (model.base as given).
  LoraObjective(model::Model& model, const LoraSettings& settings, std::string base_model, uint64_t seed);

  train::TrainableSet trainable() override;
  void start_step() override;
  double forward_backward(const train::Batch& batch, int B, int T, float loss_scale) override;
  double evaluate(const train::Batch& batch, int B, int T) override;
  std::optional<train::CheckpointContent> checkpoint_content() override;

  LoraAdapter& adapter() { return adapter_; }

 private:
  model::Model& model_;
  LoraAdapter adapter_;
  std::string base_model_;
  uint64_t seed_;
  int micro_batch_ = 0;
};

// "N trainable parameters (P% of M)", PEFT's convention: M counts the base and the adapter.
double trainable_percent(size_t trainable, size_t base);

}  // namespace dsk::finetune

// The fine-tuning objective of dsk-finetune on the shared training loop (train/objective.hpp):
// next-token cross-entropy on the completion tokens (the batches carry -100 elsewhere) of a
// frozen base with an adapter (LoRA, bottleneck or prefix tuning: adapter.hpp), the adapter being
// the whole trainable set (fp32 master, AdamW moments of its size only). Checkpoints hold the adapter's
// directory (adapter_config.json + adapter_model.safetensors) beside dsk/ (state, optimizer).
#pragma once

#include <memory>
#include <string>

#include "finetune/adapter.hpp"
#include "finetune/lora.hpp"
#include "train/objective.hpp"

namespace dsk::finetune {

LoraSettings lora_settings_from(const Config& config);

// The adapter of config's peft.method on `model`, initialized from `seed`.
std::unique_ptr<Adapter> adapter_from_config(model::Model& model, const Config& config, uint64_t seed);
// The adapter saved in `dir` (LoRA or prefix tuning in PEFT's format, or a bottleneck adapter, by
// its peft_type)
// attached to `model`; DataError naming the file on anything that does not fit.
std::unique_ptr<Adapter> adapter_from_directory(const std::filesystem::path& dir, model::Model& model);

class AdapterObjective final : public train::Objective {
 public:
  // base_model: what adapter_config.json names as the base (model.base as given).
  AdapterObjective(model::Model& model, std::unique_ptr<Adapter> adapter, std::string base_model, uint64_t seed);

  train::TrainableSet trainable() override;
  void start_step() override;
  double forward_backward(const train::Batch& batch, int B, int T, float loss_scale) override;
  double evaluate(const train::Batch& batch, int B, int T) override;
  std::optional<train::CheckpointContent> checkpoint_content() override;

 private:
  model::Model& model_;
  std::unique_ptr<Adapter> adapter_;
  std::string base_model_;
  uint64_t seed_;
};

// "N trainable parameters (P% of M)", PEFT's convention: M counts the base and the adapter.
double trainable_percent(size_t trainable, size_t base);

}  // namespace dsk::finetune

#include "finetune/lora_objective.hpp"

#include "core/log.hpp"
#include "finetune/peft_format.hpp"

namespace dsk::finetune {

LoraSettings lora_settings_from(const Config& config) {
  LoraSettings s;
  s.rank = int(config.get_int("lora.r"));
  s.alpha = float(config.get_double("lora.alpha"));
  s.dropout = float(config.get_double("lora.dropout"));
  s.rslora = config.get_bool("lora.rslora");
  if (config.has("lora.target_regex"))
    s.target_regex = config.get_string("lora.target_regex");
  else
    s.target_modules = config.get_strings("lora.target_modules");
  return s;
}

double trainable_percent(size_t trainable, size_t base) {
  return 100.0 * double(trainable) / double(trainable + base);
}

LoraObjective::LoraObjective(model::Model& model, const LoraSettings& settings, std::string base_model, uint64_t seed)
    : model_(model), adapter_(model, settings, seed), base_model_(std::move(base_model)), seed_(seed) {
  log_info("LoRA r=", settings.rank, " alpha=", settings.alpha, " on ", adapter_.sites().size(), " Linears: ",
           adapter_.parameter_count(), " trainable parameters (",
           trainable_percent(adapter_.parameter_count(), model.parameter_count()), "% of ",
           adapter_.parameter_count() + model.parameter_count(), ")");
}

train::TrainableSet LoraObjective::trainable() {
  return train::TrainableSet{adapter_.master(), adapter_.working(), adapter_.grads(), {}};
}

void LoraObjective::start_step() {
  adapter_.zero_grad();
  model_.reset_expert_load();  // the step's routing statistics (metrics.jsonl), as dsk-train's
  micro_batch_ = 0;
}

// The dropout masks of a micro-batch come from its tokens and its place in the step, so a
// resumed run (the same batches again) draws the same masks.
double LoraObjective::forward_backward(const train::Batch& batch, int B, int T, float loss_scale) {
  uint64_t hash = 0xcbf29ce484222325ull ^ seed_;
  for (int32_t token : batch.tokens) hash = (hash ^ uint32_t(token)) * 0x100000001b3ull;
  adapter_.set_dropout_seed(hash + uint64_t(micro_batch_++));
  return model_.forward_backward(batch.tokens.data(), batch.targets.data(), B, T, -100, loss_scale);
}

double LoraObjective::evaluate(const train::Batch& batch, int B, int T) {
  return model_.forward(batch.tokens.data(), batch.targets.data(), B, T);
}

std::optional<train::CheckpointContent> LoraObjective::checkpoint_content() {
  train::CheckpointContent content;
  content.write_weights = [this](const std::filesystem::path& dir) { save_peft_lora(dir, model_, adapter_, base_model_); };
  content.master = [this] { return adapter_.copy_parameters(); };
  content.restore = [this](std::span<const float> values) { adapter_.set_parameters(values); };
  content.parameter_count = adapter_.parameter_count();
  return content;
}

}  // namespace dsk::finetune

#include "finetune/adapter_objective.hpp"

#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/log.hpp"
#include "finetune/peft_format.hpp"
#include "finetune/bottleneck.hpp"
#include "finetune/prefix.hpp"

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

std::unique_ptr<Adapter> adapter_from_config(model::Model& model, const Config& config, uint64_t seed) {
  if (config.get_string("peft.method") == "bottleneck")
    return std::make_unique<BottleneckAdapter>(model, bottleneck_settings_from(config), seed);
  if (config.get_string("peft.method") == "prefix")
    return std::make_unique<PrefixAdapter>(model, prefix_settings_from(config), seed);
  return std::make_unique<LoraAdapter>(model, lora_settings_from(config), seed);
}

std::unique_ptr<Adapter> adapter_from_directory(const std::filesystem::path& dir, model::Model& model) {
  const std::filesystem::path config = dir / "adapter_config.json";
  if (!std::filesystem::exists(config)) throw DataError(str(config.string(), ": no such file (not an adapter directory)"));
  const std::string text = read_file(config);
  if (text.find("\"BOTTLENECK\"") != std::string::npos) return load_bottleneck(dir, model);
  if (is_prefix_config(text)) return load_prefix(dir, model);
  const PeftLoraAdapter loaded = load_peft_lora(dir, model);
  auto adapter = std::make_unique<LoraAdapter>(model, loaded.settings, 0);
  adapter->set_parameters(loaded.values);
  return adapter;
}

double trainable_percent(size_t trainable, size_t base) {
  return 100.0 * double(trainable) / double(trainable + base);
}

AdapterObjective::AdapterObjective(model::Model& model, std::unique_ptr<Adapter> adapter, std::string base_model,
                                   uint64_t seed)
    : model_(model), adapter_(std::move(adapter)), base_model_(std::move(base_model)), seed_(seed) {
  const size_t trainable = adapter_->parameter_count();
  log_info(adapter_->describe(), ": ", trainable, " trainable parameters (",
           trainable_percent(trainable, model.parameter_count()), "% of ", trainable + model.parameter_count(), ")");
}

train::TrainableSet AdapterObjective::trainable() {
  const AdapterParameters& p = adapter_->parameters();
  return train::TrainableSet{p.master(), p.working(), p.grads(), {}};
}

void AdapterObjective::start_step() {
  adapter_->parameters().zero_grad();
  model_.reset_expert_load();  // the step's routing statistics (metrics.jsonl), as dsk-train's
}

namespace {

// The batch's packed rows (or none) for the model's passes within this scope only: generation and
// evaluation outside it see one sequence a row.
class SegmentScope {
 public:
  SegmentScope(model::Model& model, const train::Batch& batch) : model_(model) {
    model_.set_segment_starts(batch.segment_start);
  }
  ~SegmentScope() { model_.set_segment_starts({}); }
  SegmentScope(const SegmentScope&) = delete;
  SegmentScope& operator=(const SegmentScope&) = delete;

 private:
  model::Model& model_;
};

}  // namespace

// The dropout masks of a micro-batch come from its tokens and its place in the step, so a
// resumed run (the same batches again) draws the same masks, and so does a data-parallel run (the
// place is the step's, not this rank's).
double AdapterObjective::forward_backward(const train::Batch& batch, int B, int T, float loss_scale) {
  uint64_t hash = 0xcbf29ce484222325ull ^ seed_;
  for (int32_t token : batch.tokens) hash = (hash ^ uint32_t(token)) * 0x100000001b3ull;
  adapter_->set_dropout_seed(hash + uint64_t(batch.micro_in_step));
  adapter_->prepare();
  const SegmentScope packed(model_, batch);
  const double loss = model_.forward_backward(batch.tokens.data(), batch.targets.data(), B, T, -100, loss_scale);
  adapter_->finish_backward();
  return loss;
}

double AdapterObjective::evaluate(const train::Batch& batch, int B, int T) {
  adapter_->prepare();
  const SegmentScope packed(model_, batch);
  return model_.forward(batch.tokens.data(), batch.targets.data(), B, T);
}

std::optional<train::CheckpointContent> AdapterObjective::checkpoint_content() {
  train::CheckpointContent content;
  content.write_weights = [this](const std::filesystem::path& dir) { adapter_->save(dir, model_, base_model_); };
  content.master = [this] { return adapter_->parameters().copy(); };
  content.restore = [this](std::span<const float> values) { adapter_->parameters().set(values); };
  content.parameter_count = adapter_->parameter_count();
  return content;
}

}  // namespace dsk::finetune

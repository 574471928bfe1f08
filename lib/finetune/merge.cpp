#include "finetune/merge.hpp"

#include "core/error.hpp"
#include "core/fs.hpp"
#include "finetune/peft_format.hpp"
#include "finetune/prefix.hpp"

namespace dsk::finetune {

void fold_lora(std::span<float> base, const LoraSettings& settings, const std::vector<LoraSite>& sites,
               std::span<const float> adapter) {
  const int r = settings.rank;
  const double scale = settings.scale();
  for (const LoraSite& s : sites) {
    const float* A = adapter.data() + s.a_offset;  // [r, in]
    const float* B = adapter.data() + s.b_offset;  // [out, r]
    float* W = base.data() + s.base_weight;        // [out, in]
#pragma omp parallel for schedule(static)
    for (int o = 0; o < s.out; o++)
      for (int i = 0; i < s.in; i++) {
        double delta = 0;
        for (int k = 0; k < r; k++) delta += double(B[int64_t(o) * r + k]) * A[int64_t(k) * s.in + i];
        W[int64_t(o) * s.in + i] = float(W[int64_t(o) * s.in + i] + scale * delta);
      }
  }
}

MergeOutcome merge_adapter(const std::filesystem::path& base_dir, const std::filesystem::path& adapter_dir,
                           const std::filesystem::path& out, const std::string& dtype) {
  namespace fs = std::filesystem;
  const fs::path adapter_config = adapter_dir / "adapter_config.json";
  if (fs::exists(adapter_config) && is_prefix_config(read_file(adapter_config)))
    throw UsageError(str(adapter_dir.string(), ": a prefix-tuning adapter cannot be merged: its prefixes are extra "
                         "attention positions, not a change of any weight (load it with the base: dsk-finetune eval)"));
  model::Model model = model::Model::load_hf_checkpoint(base_dir, nullptr, model::ModelOptions{true});
  const PeftLoraAdapter adapter = load_peft_lora(adapter_dir, model);
  const std::vector<LoraSite> sites = lora_sites(model, adapter.settings);
  std::vector<float> weights = model.copy_parameters();
  fold_lora(weights, adapter.settings, sites, adapter.values);
  model.set_parameters(weights);
  if (out.has_parent_path()) fs::create_directories(out.parent_path());
  AtomicDirectory directory(out);
  model.save_hf_checkpoint(directory.path(), dtype);
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"})
    if (fs::exists(base_dir / name)) fs::copy_file(base_dir / name, directory.path() / name);
  directory.commit(/*replace_existing=*/true);
  MergeOutcome outcome;
  outcome.model_type = model.architecture().family == model::Family::llama   ? "llama"
                       : model.architecture().family == model::Family::qwen2 ? "qwen2"
                                                                             : "deepseek_v3";
  outcome.parameters = int64_t(model.parameter_count());
  outcome.merged_linears = sites.size();
  return outcome;
}

}  // namespace dsk::finetune

// Folding LoRA into the base weights (dsk-finetune merge): W' = W + scale * B A for every adapted
// Linear, so that the merged model computes what base + adapter computed (dropout aside, which
// only acts in training) and loads anywhere as a plain HF checkpoint.
#pragma once

#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "finetune/lora.hpp"

namespace dsk::finetune {

// base: the model's parameter values (Model::copy_parameters' layout); adapter: the adapter's
// (LoraAdapter::copy_parameters' layout for these sites). fp32 on the host, summed in double.
void fold_lora(std::span<float> base, const LoraSettings& settings, const std::vector<LoraSite>& sites,
               std::span<const float> adapter);

struct MergeOutcome {
  std::string model_type;
  int64_t parameters = 0;
  size_t merged_linears = 0;
};

// `dsk-finetune merge`: the base checkpoint directory with the PEFT LoRA adapter folded in, saved
// as a plain HF checkpoint in `out` (dtype F32, BF16 or F16) with the base's tokenizer files and
// generation_config.json; built under a temporary name and renamed when whole.
MergeOutcome merge_adapter(const std::filesystem::path& base_dir, const std::filesystem::path& adapter_dir,
                           const std::filesystem::path& out, const std::string& dtype);

}  // namespace dsk::finetune

// Folding LoRA into the base weights (dsk-finetune merge): W' = W + scale * B A for every adapted
// Linear, so that the merged model computes what base + adapter computed (dropout aside, which
// only acts in training) and loads anywhere as a plain HF checkpoint.
#pragma once

#include <span>
#include <vector>

#include "finetune/lora.hpp"

namespace dsk::finetune {

// base: the model's parameter values (Model::copy_parameters' layout); adapter: the adapter's
// (LoraAdapter::copy_parameters' layout for these sites). fp32 on the host, summed in double.
void fold_lora(std::span<float> base, const LoraSettings& settings, const std::vector<LoraSite>& sites,
               std::span<const float> adapter);

}  // namespace dsk::finetune

// PEFT's adapter directory, as `PeftModel.from_pretrained` reads it and `save_pretrained` writes it:
//   adapter_config.json         peft_type LORA, r, lora_alpha, lora_dropout, use_rslora,
//                               target_modules, base_model_name_or_path, task_type CAUSAL_LM, ...
//   adapter_model.safetensors   per adapted Linear "base_model.model.<module>.lora_A.weight" [r, in]
//                               and "... .lora_B.weight" [out, r], F32
// target_modules is written so that PEFT adapts exactly the Linears dsk adapted: the short names
// when they pick exactly those, else a regular expression (PEFT full-matches a string).
// Reading takes the adapted modules from the tensor names in the file (what PEFT actually
// adapted), so an adapter PEFT made with any target spelling loads; PEFT features dsk does not
// compute (DoRA, rank/alpha patterns, bias training, modules_to_save) are refused with a DataError.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "finetune/lora.hpp"

namespace dsk::finetune {

struct PeftLoraAdapter {
  LoraSettings settings;     // target_regex: exactly the modules the file holds tensors for
  std::string base_model;    // base_model_name_or_path (may be empty)
  std::vector<float> values;  // in the layout of lora_sites(model, settings)
};

// Writes the two files into `dir` (created; each file written to a temporary name and renamed).
void save_peft_lora(const std::filesystem::path& dir, const model::Model& model, const LoraAdapter& adapter,
                    const std::string& base_model);

// Reads an adapter for `model` (its Linears decide the shapes); DataError naming the file and the
// tensor or key on anything that does not fit.
PeftLoraAdapter load_peft_lora(const std::filesystem::path& dir, const model::Model& model);

// The target_modules value save_peft_lora writes for these sites of `model` (a JSON list or string).
std::string peft_target_modules_json(const model::Model& model, const std::vector<LoraSite>& sites);

}  // namespace dsk::finetune

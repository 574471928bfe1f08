// From an HF config.json to the model's Architecture: llama, qwen2 and deepseek_v3, as the Hub's
// repos write them (rope_theta + rope_scaling with "type" or "rope_type") and as transformers 5
// writes them (rope_parameters). Missing keys take the defaults of transformers' config classes.
// Anything the engine does not implement (another model_type or hidden_act, mlp_bias, FP8
// quantization) is a DataError naming the file and the key.
#pragma once

#include <filesystem>

#include <nlohmann/json.hpp>

#include "model/architecture.hpp"

namespace dsk::model {

Architecture architecture_from_hf_config(const nlohmann::json& config, const std::string& where);
Architecture read_hf_config(const std::filesystem::path& config_json);

// The config.json that describes `arch` (transformers 5 style: rope_parameters, dtype).
nlohmann::json hf_config_of(const Architecture& arch, const std::string& dtype);

}  // namespace dsk::model

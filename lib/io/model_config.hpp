// A Hugging Face config.json as one typed struct, for model_type llama, qwen2 and deepseek_v3.
// Field names and meanings are transformers'; a missing field takes transformers' default for
// that model_type (LlamaConfig, Qwen2Config, DeepseekV3Config; for deepseek_v3 the fields that only
// the original remote code has — scoring_func, topk_method, moe_layer_freq,
// num_nextn_predict_layers — take that code's defaults). rope scaling is read from "rope_scaling"
// or from transformers 5's "rope_parameters" (which also carries rope_theta).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace dsk::io {

// Upper bounds on config.json sizes: far above any released model, low enough that no product of
// two of them overflows 64 bits, so that a corrupt file is refused before a model is allocated
// by it (a config.json once asked for 323,948,858 routed experts).
inline constexpr int64_t kMaxVocabSize = int64_t(1) << 24;
inline constexpr int64_t kMaxWidth = int64_t(1) << 20;  // hidden, intermediate, head and LoRA-rank sizes
inline constexpr int64_t kMaxLayers = 1024;
inline constexpr int64_t kMaxHeads = 4096;
inline constexpr int64_t kMaxExperts = 4096;  // routed (or shared) experts of one layer
inline constexpr int64_t kMaxRoutedExpertsInModel = 65536;  // over every MoE layer (DeepSeek-V3: 14,848)
inline constexpr int64_t kMaxPositionEmbeddings = int64_t(1) << 30;

struct RopeScaling {
  std::string type = "default";  // default | linear | llama3 | yarn
  double factor = 1.0;
  double low_freq_factor = 1.0;    // llama3
  double high_freq_factor = 4.0;   // llama3
  int64_t original_max_position_embeddings = 0;  // llama3, yarn (0: not given)
  double beta_fast = 32.0;         // yarn
  double beta_slow = 1.0;          // yarn
  double mscale = 1.0;             // yarn (deepseek)
  double mscale_all_dim = 0.0;     // yarn (deepseek)
};

struct ModelConfig {
  std::string model_type;  // llama | qwen2 | deepseek_v3
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int64_t max_position_embeddings = 0;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // llama's o/q/k/v bias; qwen2 always has q/k/v biases (qkv_bias)
  bool qkv_bias = false;
  std::optional<int64_t> bos_token_id;
  std::optional<int64_t> eos_token_id;
  std::string torch_dtype = "bfloat16";

  // deepseek_v3
  std::optional<int64_t> q_lora_rank;  // null: q is a plain projection
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
  int64_t n_routed_experts = 0;
  int64_t n_shared_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t moe_intermediate_size = 0;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  bool norm_topk_prob = true;
  double routed_scaling_factor = 1.0;
  std::string scoring_func = "sigmoid";
  std::string topk_method = "noaux_tc";
  int64_t first_k_dense_replace = 0;
  int64_t moe_layer_freq = 1;
  bool rope_interleave = true;
  int64_t num_nextn_predict_layers = 0;
};

// Parses config.json text; `origin` names the file in errors. DataError names file and field.
ModelConfig parse_model_config(const std::string& json_text, const std::string& origin);
ModelConfig read_model_config(const std::filesystem::path& path);
// config.json text that transformers loads back as the same config.
std::string model_config_json(const ModelConfig& config);
// Checks sizes (positive, and within the bounds above) and divisibility; DataError naming origin
// and the field.
void validate_model_config(const ModelConfig& config, const std::string& origin);

}  // namespace dsk::io

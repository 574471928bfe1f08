// The resolved shape of one model: every size and switch the forward/backward pass reads, derived
// once from the HF config (io::ModelConfig) so the layer code never looks at config.json keys.
// llama and qwen2 use the GQA attention fields; deepseek_v3 uses the MLA and MoE fields.
#pragma once

#include <string>

#include "cpu/kernels.hpp"

namespace dsk::model {

enum class Family { llama, qwen2, deepseek_v3 };

// RoPE scaling as HF's modeling_rope_utils reads it from rope_parameters (or rope_scaling).
struct RopeScaling {
  std::string type = "default";  // default, linear, llama3, yarn
  double theta = 10000.0;
  double factor = 1.0;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  double original_max_position_embeddings = 0;           // llama3, yarn (0: unset)
  double beta_fast = 32, beta_slow = 1;                  // yarn
  double mscale = 0, mscale_all_dim = 0;                 // yarn (0: unset)
  double attention_factor = 0;                           // yarn (0: unset, derived)
  bool truncate = true;                                  // yarn
};

// inv_freq for rot_dim rotated dims and the cos/sin attention factor, exactly as HF computes
// them (default, linear, llama3, yarn); UsageError for other types.
kernels::cpu::Rope compute_rope(const RopeScaling& scaling, int rot_dim, double max_position_embeddings);

struct Architecture {
  Family family = Family::llama;
  int vocab = 0, hidden = 0, layers = 0, intermediate = 0;
  int heads = 0, kv_heads = 0, head_dim = 0;  // GQA (llama, qwen2)
  bool qkv_bias = false;                      // qwen2; llama with attention_bias
  bool o_bias = false;                        // llama/deepseek attention_bias
  bool tied_embeddings = false;
  float rms_eps = 1e-6f;
  double max_position_embeddings = 2048;
  RopeScaling rope_scaling;
  bool rope_interleave = false;  // deepseek_v3

  // MLA (deepseek_v3)
  int q_lora_rank = 0;  // 0: q_proj straight from the hidden state
  int kv_lora_rank = 0, qk_nope_dim = 0, qk_rope_dim = 0, v_head_dim = 0;

  // DeepSeekMoE (deepseek_v3): layers >= first_k_dense are MoE
  int first_k_dense = 0, n_routed = 0, n_shared = 0, moe_intermediate = 0;
  int top_k = 0, n_group = 1, topk_group = 1;
  bool norm_topk_prob = true;
  float routed_scaling = 1.0f;

  bool mla() const { return family == Family::deepseek_v3; }
  bool is_moe_layer(int layer) const { return family == Family::deepseek_v3 && n_routed > 0 && layer >= first_k_dense; }
  int qk_head_dim() const { return mla() ? qk_nope_dim + qk_rope_dim : head_dim; }
  int rope_dim() const { return mla() ? qk_rope_dim : head_dim; }
  // 1/sqrt(qk_head_dim), times mscale(factor, mscale_all_dim)^2 for deepseek with scaled rope.
  float softmax_scale() const;
  // Throws UsageError naming the first inconsistent size.
  void validate() const;
};

}  // namespace dsk::model

// Tiny architectures shared by the model tests: llama (GQA, llama3 RoPE), qwen2 (tied, q/k/v
// bias, MQA) and deepseek_v3 (MLA, yarn, 4 routed experts in 2 groups, 1 shared, first layer dense).
#pragma once

#include <cstdint>
#include <vector>

#include "model/architecture.hpp"

namespace dsk::model::testing {

// Two sequences of five tokens with their next-token targets, one of them ignored (-100).
struct TinyBatch {
  int B = 2, T = 5;
  std::vector<int32_t> tokens = {1, 5, 9, 2, 7, 3, 3, 11, 20, 0};
  std::vector<int32_t> targets = {5, 9, -100, 7, 1, 3, 11, 20, 0, 4};
};

inline Architecture tiny_llama() {
  Architecture a;
  a.family = Family::llama;
  a.vocab = 32;
  a.hidden = 16;
  a.layers = 2;
  a.intermediate = 24;
  a.heads = 4;
  a.kv_heads = 2;
  a.head_dim = 4;
  a.rms_eps = 1e-5f;
  a.rope_scaling.type = "llama3";
  a.rope_scaling.factor = 8;
  a.rope_scaling.original_max_position_embeddings = 16;
  return a;
}

inline Architecture tiny_qwen2() {
  Architecture a = tiny_llama();
  a.family = Family::qwen2;
  a.qkv_bias = true;
  a.tied_embeddings = true;
  a.kv_heads = 1;
  a.rope_scaling = RopeScaling{};
  return a;
}

inline Architecture tiny_deepseek(int q_lora_rank, int layers = 2) {
  Architecture a;
  a.family = Family::deepseek_v3;
  a.vocab = 32;
  a.hidden = 16;
  a.layers = layers;
  a.intermediate = 24;
  a.heads = 2;
  a.q_lora_rank = q_lora_rank;
  a.kv_lora_rank = 8;
  a.qk_nope_dim = 4;
  a.qk_rope_dim = 4;
  a.v_head_dim = 4;
  a.rope_interleave = true;
  a.first_k_dense = 1;
  a.n_routed = 4;
  a.n_shared = 1;
  a.moe_intermediate = 8;
  a.top_k = 2;
  a.n_group = 2;
  a.topk_group = 1;
  a.routed_scaling = 2.5f;
  a.rope_scaling.type = "yarn";
  a.rope_scaling.factor = 4;
  a.rope_scaling.original_max_position_embeddings = 8;
  a.rope_scaling.mscale = 1.0;
  a.rope_scaling.mscale_all_dim = 0.8;
  return a;
}

}  // namespace dsk::model::testing

// The decoder layer as forward/backward pairs over saved activations (no autograd), llm.c style:
// attention (GQA for llama/qwen2, MLA for deepseek_v3), the SwiGLU MLP and DeepSeekMoE.
// Every *_backward ACCUMULATES into its gradients (see kernels/cpu/kernels.hpp): parameter
// gradients into `grads` (same layout as the parameter buffer), the input's gradient into `dinp`.
// N = B*T positions; x, dinp are [N, C].
#pragma once

#include <cstdint>
#include <vector>

#include "model/architecture.hpp"
#include "model/parameters.hpp"
#include "tensor/tensor.hpp"

namespace dsk::model {

using tensor::Tensor;

// Keys and values of the positions seen so far, for generation: k [B, max_len, KH, Dk],
// v [B, max_len, KH, Dv] (KH = kv_heads for GQA, heads for MLA whose keys are materialised).
struct LayerCache {
  float* k = nullptr;
  float* v = nullptr;
  int max_length = 0;
  int length = 0;  // positions already in the cache
};

struct AttentionActs {
  Tensor q, k, v;            // post-RoPE q [N, H*Dqk], k [N, KH*Dqk], v [N, KH*Dv] (new positions)
  Tensor q_a, q_a_norm, q_a_rstd;          // MLA with q_lora
  Tensor kv_a, kv_latent, kv_norm, kv_rstd, kv_b;  // MLA
  Tensor k_all, v_all;       // with a cache: all Tk positions, contiguous
  Tensor out, probs;         // out [N, H*Dv], probs [B, H, T, Tk]
};

struct MlpActs {
  Tensor gate, up, act;  // [n, I]
};

struct MoeActs {
  Tensor logits, scores, weights;  // [N,E], [N,E], [N,top_k]
  std::vector<int32_t> experts;    // [N, top_k]
  std::vector<std::vector<int32_t>> rows;  // per expert: the (token * top_k + slot) routed to it
  std::vector<Tensor> inputs, outputs;     // per expert: [n_e, C]
  std::vector<MlpActs> expert_acts;
  MlpActs shared;
};

struct Dims {
  int B, T;                  // the new positions: N = B*T
  const int32_t* positions;  // [N]
  int N() const { return B * T; }
};

void attention_forward(Tensor& out, AttentionActs& acts, const Tensor& x, const float* params, const LayerParams& p,
                       const Architecture& a, const kernels::cpu::Rope& rope, const Dims& d, LayerCache* cache);
void attention_backward(float* dinp, float* grads, const Tensor& dout, AttentionActs& acts, const Tensor& x,
                        const float* params, const LayerParams& p, const Architecture& a,
                        const kernels::cpu::Rope& rope, const Dims& d);

void mlp_forward(float* out, MlpActs& acts, const float* x, int n, const float* params, const MlpParams& p);
void mlp_backward(float* dinp, float* grads, const float* dout, MlpActs& acts, const float* x, int n,
                  const float* params, const MlpParams& p);

void moe_forward(Tensor& out, MoeActs& acts, const Tensor& x, const float* params, const LayerParams& p,
                 const Architecture& a);
void moe_backward(float* dinp, float* grads, const Tensor& dout, MoeActs& acts, const Tensor& x, const float* params,
                  const LayerParams& p, const Architecture& a, const Dims& d, float aux_alpha);

// DeepSeek-V3's sequence-wise balance loss (eq. 17-20) of one MoE layer, averaged over the B
// sequences: alpha * sum_e f_e * P_e with f_e = E/(K*T) * (tokens of the sequence routed to e)
// and P_e = mean over the sequence of s_e / sum_j s_j (s = sigmoid scores).
float sequence_aux_loss(const MoeActs& acts, const Architecture& a, const Dims& d, float alpha);

}  // namespace dsk::model

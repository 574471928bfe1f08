// The model engine: one definition of the llama / qwen2 / deepseek_v3 decoder, forward and
// backward on the CPU reference kernels (kernels/cpu), the way llm.c's train_gpt2.c does it.
//
// All parameters live in one flat fp32 buffer; each HF tensor (name as the Hub stores it, e.g.
// "model.layers.3.self_attn.q_proj.weight" or "model.layers.1.mlp.experts.7.up_proj.weight") is a
// named view into it. Gradients have exactly the same layout, so an optimizer or an all-reduce
// walks one array. Gradients ACCUMULATE: backward() adds (+=) into them, zero_grad() clears them,
// so calling forward/backward k times before a step is gradient accumulation.
//
//   Model model(read_hf_config("config.json"), 1);     // random init, normal(0, 0.02), norms = 1
//   Model model = Model::load_hf_checkpoint(dir);      // or the weights of an HF checkpoint
//   float loss = model.forward(tokens, targets, B, T); // tokens, targets: [B,T] row-major
//   model.backward();                                  // += d(loss)/d(params) into gradients()
//   ... optimizer on model.parameters() / model.gradients(); model.zero_grad();
//
//   KvCache cache = model.new_kv_cache(B, max_len);    // generation:
//   model.forward_cached(cache, prompt, B, T0);        // prefill, logits() is [B,T0,V]
//   model.forward_cached(cache, next, B, 1);           // one token at a time, logits() is [B,1,V]
//
// Loss is the mean of the softmax cross-entropy over targets != ignore_index (HF's convention;
// targets are already the next tokens: no shift happens inside).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/architecture.hpp"

namespace dsk::model {

// One named tensor in the flat parameter (or gradient) buffer.
struct ParamView {
  std::string name;            // HF name
  std::vector<int64_t> shape;  // HF shape, row-major (a Linear weight is [out, in])
  size_t offset = 0;           // in floats, into parameters() / gradients()
  size_t numel = 0;
  bool trainable = true;       // false for buffers kept with the weights (e_score_correction_bias):
                               // their gradient stays 0 and an optimizer must leave them alone
};

// Keys and values of every layer for positions [0, length) of each of `batch` sequences. For MLA
// the per-head keys and values are kept expanded (not the compressed latent).
struct KvCache {
  int batch = 0;
  int max_length = 0;
  int length = 0;                      // positions already filled
  std::vector<std::vector<float>> k;   // per layer: [B, max_length, kv_heads, k_dim]
  std::vector<std::vector<float>> v;   // per layer: [B, max_length, kv_heads, v_dim]
};

// Routed-expert statistics of MoE layers since the last reset_expert_load().
struct ExpertLoad {
  std::vector<int> layers;                  // indices of the MoE layers
  std::vector<std::vector<int64_t>> counts; // per MoE layer: tokens routed to each expert
};

class Model {
 public:
  // Random init with `seed`: Linear and embedding weights ~ normal(0, init_std), biases 0,
  // RMSNorm weights 1, e_score_correction_bias 0 (HF's _init_weights with initializer_range).
  // The Architecture comes from an HF config.json through read_hf_config (hf_config.hpp).
  Model(const Architecture& arch, uint64_t seed, float init_std = 0.02f);
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;

  // HF checkpoint directory: config.json + model.safetensors, or model.safetensors.index.json with
  // shards, expert weights per expert as the Hub stores them. F32/BF16/F16 tensors become fp32. A
  // missing or unexpected tensor, or a wrong shape, is a DataError naming it (lm_head.weight of a
  // tied model and DeepSeek's MTP layers past num_hidden_layers are skipped, as HF does).
  static Model load_hf_checkpoint(const std::filesystem::path& dir);
  // Writes config.json and model.safetensors (sharded with an index past max_shard_bytes), each
  // file to a temporary name renamed when whole. dtype: "F32", "BF16" or "F16".
  void save_hf_checkpoint(const std::filesystem::path& dir, const std::string& dtype = "BF16",
                          size_t max_shard_bytes = size_t(5) << 30) const;

  const Architecture& architecture() const;

  std::span<float> parameters();
  std::span<const float> parameters() const;
  std::span<float> gradients();
  const std::vector<ParamView>& parameter_views() const;
  const ParamView& view(const std::string& name) const;  // UsageError when unknown
  std::span<float> parameter(const std::string& name);
  std::span<float> gradient(const std::string& name);
  size_t parameter_count() const;

  // tokens, targets: [B,T] row-major. targets may be null (logits only, returns 0); positions
  // whose target is ignore_index count for nothing. Returns the mean loss (plus the sequence-wise
  // aux loss when enabled). logits() is then [B,T,V]. Saves the activations backward() needs.
  float forward(const int32_t* tokens, const int32_t* targets, int B, int T, int ignore_index = -100);
  std::span<const float> logits() const;

  // d(loss)/d(params) of the last forward (which must have had targets), added into gradients().
  void backward();
  void zero_grad();

  // Generation: appends T positions per sequence to `cache` and computes their logits (no saved
  // activations, no backward). Matches forward() on the same whole sequence.
  KvCache new_kv_cache(int B, int max_length) const;
  std::span<const float> forward_cached(KvCache& cache, const int32_t* tokens, int B, int T);

  // MoE (deepseek_v3). Auxiliary-loss-free balancing: after a step, every MoE layer's
  // e_score_correction_bias[e] += speed * sign(mean_load - load[e]) with the counts gathered since
  // the last reset. The sequence-wise aux loss (alpha * sum_e f_e * P_e per sequence, DeepSeek-V3
  // eq. 17-20) is added to forward()'s loss when alpha > 0.
  const ExpertLoad& expert_load() const;
  void reset_expert_load();
  void update_expert_bias(float speed);
  void set_sequence_aux_loss(float alpha);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  explicit Model(std::unique_ptr<Impl> impl);
};

}  // namespace dsk::model

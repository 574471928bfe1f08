// The model engine: one definition of the llama / qwen2 / deepseek_v3 decoder, forward and
// backward on the op interface (tensor/ops.hpp), so the same code runs on the CPU reference
// backend and on CUDA, the way llm.c's train_gpt2.c / train_gpt2.cu do it.
//
// All parameters live in one flat fp32 buffer (the master weights); each HF tensor (name as the
// Hub stores it, e.g. "model.layers.3.self_attn.q_proj.weight") is a named view into it. The
// layers read a working copy in the backend's activation dtype (the same memory on the CPU and in
// fp32; bf16 on CUDA by default), refreshed by the optimizer. Gradients are f32 with the same
// layout and ACCUMULATE: forward_backward() adds (+=) into them, zero_grad() clears them, so k
// calls before a step are gradient accumulation. Activations live in arenas planned for a batch
// shape before its first step; nothing is allocated while the shape stays the same.
//
//   Model model(read_hf_config("config.json"), 1);           // random init on the CPU
//   Model model = Model::load_hf_checkpoint(dir, ops);       // or an HF checkpoint, on `ops`
//   float loss = model.forward_backward(tokens, targets, B, T);  // += d(loss)/d(params)
//   float val = model.forward(tokens, targets, B, T);        // loss only
//   std::vector<float> logits = model.logits(tokens, B, T);  // [B,T,V] (tests, small batches)
//
//   KvCache cache = model.new_kv_cache(B, max_len);          // generation:
//   model.forward_cached(cache, prompt, B, T0);              // prefill: logits of the last position [B,V]
//   model.forward_cached(cache, next, B, 1);                 // one token at a time
//
// Loss is the mean of the softmax cross-entropy over targets != ignore_index (HF's convention;
// targets are already the next tokens: no shift happens inside), computed by the fused chunked
// LM head so that [B*T, V] logits never exist during training. The loss lives outside the layers:
// forward_hidden / backward_from_hidden let another loss (distillation) drive the same model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/architecture.hpp"
#include "tensor/arena.hpp"
#include "tensor/ops.hpp"

namespace dsk::model {

struct PagedPlan;  // model/paged_forward.hpp
struct PagedStep;
struct PagedWorkspace;

// A range of the flat buffers, in floats.
struct FlatSpan {
  size_t offset = 0, numel = 0;
};

// One named tensor in the flat parameter (or gradient) buffer.
struct ParamView {
  std::string name;            // HF name
  std::vector<int64_t> shape;  // HF shape, row-major (a Linear weight is [out, in])
  size_t offset = 0;           // in floats, into parameters() / gradients()
  size_t numel = 0;
  bool trainable = true;       // false for buffers kept with the weights (e_score_correction_bias):
                               // their gradient stays 0 and an optimizer must leave them alone
};

// Keys and values of every layer for positions [0, length) of each of `batch` sequences, in the
// model's backend memory. For MLA the per-head keys and values are kept expanded (not the
// compressed latent).
struct KvCache {
  int batch = 0;
  int max_length = 0;
  int length = 0;                // positions already filled
  std::vector<tensor::Buf> k, v;  // per layer: [B, max_length, kv_heads * k_dim] (and v_dim)
  tensor::Buf k_all, v_all;       // where attention reads the filled positions contiguously
  std::unique_ptr<tensor::Arena> arena;
};

// Routed-expert statistics of MoE layers since the last reset_expert_load().
struct ExpertLoad {
  std::vector<int> layers;                  // indices of the MoE layers
  std::vector<std::vector<int64_t>> counts; // per MoE layer: tokens routed to each expert
};

// Activations recomputed in backward instead of kept from forward (train.recompute): none;
// attention (each layer's attention internals: q, k, v, the MLA latents, attention's output);
// full (everything but the layer inputs and the MoE routing decisions, which are kept, not redone).
// Gradients are bit-identical either way; memory falls, and a step costs up to one more forward.
enum class Recompute { none, attention, full };
Recompute parse_recompute(const std::string& name);  // UsageError for other names

class LinearExtension;  // layers.hpp
class RowExchange;      // expert_dispatch.hpp
class AttentionPrefix;  // layers.hpp

// How the parameters are held. frozen_base: the model is a fixed base under trainable adapters
// (dsk-finetune): no gradient buffer at all (gradient_buffer() is empty, backward only carries
// d(loss)/d(activations) down to the adapters), and on a backend whose working dtype is not f32
// no fp32 master copy either unless the routing biases need it (deepseek_v3), so the weights cost
// their working dtype alone (bf16 on CUDA). copy_parameters() then reads the working copy back.
//
// Expert parallelism (expert_ranks > 1): the model holds the weights of only its share of every
// MoE layer's routed experts, [expert_rank * E / expert_ranks, (expert_rank + 1) * E / expert_ranks),
// from the start, as drop_weights() and drop_gradients() would leave a whole model: start-up never
// holds the others' experts. Random init gives the held experts the values a whole model of the
// same seed gives them; load_hf_checkpoint reads only their tensors. n_routed_experts must be a
// multiple of expert_ranks (UsageError); a model without routed experts ignores it.
struct ModelOptions {
  bool frozen_base = false;
  int expert_rank = 0, expert_ranks = 1;
};

class Model {
 public:
  // Random init with `seed`: Linear and embedding weights ~ normal(0, init_std), biases 0,
  // RMSNorm weights 1, e_score_correction_bias 0 (HF's _init_weights with initializer_range).
  // The Architecture comes from an HF config.json through read_hf_config (hf_config.hpp).
  // ops: the backend (tensor/device.hpp); null means the CPU reference.
  Model(const Architecture& arch, uint64_t seed, float init_std = 0.02f, std::shared_ptr<tensor::Ops> ops = nullptr,
        ModelOptions options = {});
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;

  // HF checkpoint directory: config.json + model.safetensors, or model.safetensors.index.json with
  // shards, expert weights per expert as the Hub stores them. F32/BF16/F16 tensors become fp32. A
  // missing or unexpected tensor, or a wrong shape, is a DataError naming it (lm_head.weight of a
  // tied model and DeepSeek's MTP layers past num_hidden_layers are skipped, as HF does).
  static Model load_hf_checkpoint(const std::filesystem::path& dir, std::shared_ptr<tensor::Ops> ops = nullptr,
                                  ModelOptions options = {});
  // Writes config.json and model.safetensors (sharded with an index past max_shard_bytes), each
  // file to a temporary name renamed when whole. dtype: "F32", "BF16" or "F16".
  void save_hf_checkpoint(const std::filesystem::path& dir, const std::string& dtype = "BF16",
                          size_t max_shard_bytes = size_t(5) << 30) const;
  // The same from a host copy of the parameters (copy_parameters()) taken earlier: reads only the
  // model's immutable description, so a background thread may write while training goes on.
  void save_hf_checkpoint(const std::filesystem::path& dir, std::span<const float> values,
                          const std::string& dtype = "BF16", size_t max_shard_bytes = size_t(5) << 30) const;

  const Architecture& architecture() const;
  tensor::Ops& ops() const;
  const std::shared_ptr<tensor::Ops>& shared_ops() const;

  // The flat buffers in backend memory: master weights (f32), working copy (act), gradients (f32).
  tensor::Buf master();
  tensor::Buf working();
  tensor::Buf gradient_buffer();
  // Host copies, for checkpoints and tests (wait for the device). set_parameters refreshes the
  // working copy.
  std::vector<float> copy_parameters() const;
  void set_parameters(std::span<const float> values);
  std::vector<float> copy_gradients() const;
  // Host views of the same buffers: the CPU backend only (InternalError on CUDA).
  std::span<float> parameters();
  std::span<const float> parameters() const;
  std::span<float> gradients();
  std::span<float> parameter(const std::string& name);
  std::span<float> gradient(const std::string& name);

  const std::vector<ParamView>& parameter_views() const;
  const ParamView& view(const std::string& name) const;  // UsageError when unknown
  size_t parameter_count() const;

  // tokens, targets: [B,T] row-major, host memory. Positions whose target is ignore_index count
  // for nothing. forward returns the mean loss (plus the sequence-wise aux loss when enabled);
  // forward_backward also adds loss_scale * d(loss)/d(params) into the gradients.
  float forward(const int32_t* tokens, const int32_t* targets, int B, int T, int ignore_index = -100);
  float forward_backward(const int32_t* tokens, const int32_t* targets, int B, int T, int ignore_index = -100,
                         float loss_scale = 1.0f);
  // Packed rows for the passes that follow (forward, forward_backward, logits, forward_hidden):
  // segment_start [B*T] gives, for each position, the position in its row where its example
  // begins (AttentionShape::segment_start); attention stays within each example and RoPE positions
  // restart at 0 with each. Examples occupy consecutive positions (UsageError at the next pass
  // otherwise, or when its size is not B*T). An empty span: one sequence per row again.
  void set_segment_starts(std::span<const int32_t> segment_start);
  // All logits [B,T,V] on the host (tests and small batches: they do exist at once here).
  std::vector<float> logits(const int32_t* tokens, int B, int T);
  void zero_grad();
  // Expert parallelism: the gradients no backward here writes (the other ranks' routed experts,
  // which the exchange keeps from running here) are not held at all. The gradient buffer then
  // holds the others' in order: gradient_buffer().numel is parameter_count() less them, and
  // gradient_offset(), gradient_stages() and lm_head_gradient() index it so; copy_gradients()
  // gives 0 there and gradient(name) refuses them. Ascending and disjoint (InternalError
  // otherwise); reallocates the gradients, zeroed.
  void drop_gradients(std::vector<FlatSpan> dropped);
  // Where the gradient of parameter element `offset` is in gradient_buffer() (offset itself
  // unless drop_gradients); InternalError for a dropped one.
  size_t gradient_offset(size_t offset) const;
  // The same for weights no pass here reads (expert parallelism: the other ranks' experts; not
  // generation, which runs every expert): master() and working() hold the rest in order,
  // weight_offset() and parameters() index them so, copy_parameters() gives 0 there and
  // set_parameters() skips them. Reallocates the weights, keeping their values, and resets the
  // expert-load counts.
  void drop_weights(std::vector<FlatSpan> dropped);
  size_t weight_offset(size_t offset) const;
  // What drop_weights (or ModelOptions' expert share) took out, ascending; empty: every weight held.
  const std::vector<FlatSpan>& dropped_weights() const;
  // The values of the held weights only (parameter_count() less dropped_weights()), in order;
  // refreshes the working copy.
  void set_held_parameters(std::span<const float> held);

  // For losses other than next-token cross-entropy: run to the final normed hidden state
  // (hidden() [B*T, C], act), put d(loss)/d(hidden) into hidden_gradient() (zeroed by
  // forward_hidden when training), then backward_from_hidden(). The LM head's weight is
  // lm_head_weight() (act) and its gradient lm_head_gradient() (f32).
  void forward_hidden(const int32_t* tokens, int B, int T, bool training);
  tensor::Buf hidden();
  tensor::Buf hidden_gradient();
  void backward_from_hidden();
  tensor::Buf lm_head_weight();
  tensor::Buf lm_head_gradient();

  // Backward in stages, so that a caller can act on gradients as soon as they are final (data
  // parallelism starts each bucket's all-reduce while the layers below still run backward).
  // Backward finishes them in this order: stage 0 the head (the final norm, and the LM head
  // unless it is tied to the embedding), stages 1..L the decoder layers L-1 down to 0, stage
  // L+1 the embedding (with a tied LM head). Each stage is one contiguous range of the flat
  // gradient buffer, and the ranges tile it. Once a backward has called the hook with a stage,
  // nothing in that backward adds to the stage's gradients again (device work is queued, not
  // done: the hook sees the backend's stream at the point where the stage is final).
  struct GradientStage {
    std::string name;   // "head", "model.layers.7", "embedding"
    size_t offset = 0;  // in floats, into gradient_buffer()
    size_t numel = 0;
  };
  std::vector<GradientStage> gradient_stages() const;
  // Called by every backward (forward_backward, backward_from_hidden) after each stage's last
  // gradient op is queued, with the stage's index; empty: none. Set it around the backward that
  // should trigger it (the last micro-batch of a step) and clear it after.
  using BackwardHook = std::function<void(int stage)>;
  void set_backward_hook(BackwardHook hook);

  // Generation: appends T positions per sequence to `cache` and returns the logits (host, f32) of
  // the last new position of each sequence [B,V], or of all of them [B,T,V] with all_positions.
  // No saved activations, no backward. Matches forward() on the same whole sequence.
  KvCache new_kv_cache(int B, int max_length) const;
  std::vector<float> forward_cached(KvCache& cache, const int32_t* tokens, int B, int T, bool all_positions = false);

  // MoE (deepseek_v3). Auxiliary-loss-free balancing: after a step, every MoE layer's
  // e_score_correction_bias[e] += speed * sign(mean_load - load[e]) with the counts gathered since
  // the last reset (on the device: no host round trip). The sequence-wise aux loss (alpha * sum_e
  // f_e * P_e per sequence, DeepSeek-V3 eq. 17-20) is added to the loss when alpha > 0.
  const ExpertLoad& expert_load() const;  // copies the counts to the host
  // The counts where the model keeps them (i64 [MoE layers, E], backend memory; empty for a dense
  // model): data parallelism sums them over the ranks before the bias update.
  tensor::Buf expert_load_counts();
  void reset_expert_load();
  void update_expert_bias(float speed);
  void set_sequence_aux_loss(float alpha);
  // Takes effect at the next training forward (its activation arena is planned anew).
  void set_recompute(Recompute mode);
  // Expert parallelism (expert_dispatch.hpp): from the next pass on, this rank runs only its share
  // of every MoE layer's routed experts, over the tokens of all ranks, exchanging rows through
  // `exchange` (not owned; null: every expert here). Generation with a KV cache keeps to the local
  // copy of every expert (none after drop_weights). UsageError when n_routed_experts is not a
  // multiple of the ranks.
  void set_expert_exchange(RowExchange* exchange);

  // Adds `extension` (layers.hpp; LoRA) beside the dense Linears from the next pass on; null
  // removes it. The model does not own it; it must outlive its use.
  void set_linear_extension(LinearExtension* extension);
  // Adds `prefix` (layers.hpp; prefix tuning) to every layer's attention from the next pass on;
  // null removes it. Sequences then start at position P (as HF's after a cache of P), and a new
  // KV cache starts with the prefix in it (length P, max_length + P). Not owned. The paged
  // serving path refuses a model with a prefix.
  void set_attention_prefix(AttentionPrefix* prefix);
  bool frozen_base() const;
  // Serving (model/paged_forward.hpp): a paged KV pool with the activations of a step planned
  // for `plan`, and one step of a ragged batch over it: the logits (host, f32) of step.logit_rows,
  // [rows, V]. Each token's logits match forward_cached's on the same sequence.
  PagedWorkspace new_paged_workspace(const PagedPlan& plan) const;
  std::vector<float> forward_paged(PagedWorkspace& workspace, const PagedStep& step);
  // The same, returning only each row's next token, greedy or sampled on the device (the logits
  // stay there): step.temperatures and step.noise_seeds, paged_forward.hpp.
  std::vector<int32_t> forward_paged_tokens(PagedWorkspace& workspace, const PagedStep& step);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  explicit Model(std::unique_ptr<Impl> impl);
  // Allocated but not filled: the caller sets every held weight (load_hf_checkpoint).
  static Model unfilled(const Architecture& arch, std::shared_ptr<tensor::Ops> ops, ModelOptions options);
};

}  // namespace dsk::model

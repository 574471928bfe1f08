// Prefix tuning (Li and Liang 2021) as PEFT computes it: every layer's attention sees P learned
// key and value positions before the sequence's own (the model's AttentionPrefix, layers.hpp:
// prefix keys get no RoPE, the sequence starts at position P, as HF does with PEFT's
// past_key_values). The table of prefixes, [P, L * (k_row + v_row)] with layer l's block being
// its keys [KVH, Dk] then its values [KVH, Dv] (for llama and qwen2 exactly PEFT's
// prompt_embeddings: [P, num_layers * 2 * token_dim], token_dim = kv_heads * head_dim), is
//   - the trainable set itself (projection off: PEFT's prefix_projection false), or
//   - the output of PEFT's reparameterisation (projection on: prefix_projection true):
//       table = W2 tanh(W1 E + b1) + b2,   E [P, token_dim] (an embedding of the P virtual
//       tokens), W1 [enc, token_dim], W2 [L * (k_row + v_row), enc];
//     recomputed from the trainable set before the passes of a step (prepare) and folded away at
//     save: the adapter directory holds only the table, as PEFT saves prompt_embeddings.
// The base gets no gradient; the prefixes' gradients come from attention's dK/dV of the first P
// key rows summed over the batch (in the activation dtype), then through the MLP when there is
// one, into the f32 gradients (Ops::embedding_backward of the rows 0..P-1: +=, so micro-batches
// accumulate).
//
// Format (dsk-formats(5), PREFIX TUNING): adapter_config.json with peft_type PREFIX_TUNING,
// num_virtual_tokens, token_dim, num_layers, num_attention_heads (the K/V heads, as PEFT sets them
// for grouped-query attention), num_transformer_submodules 1, encoder_hidden_size,
// prefix_projection false; adapter_model.safetensors with prompt_embeddings (F32). MLA
// (deepseek_v3) keys and values differ in width, which PEFT's layout cannot say: there peft_type is
// MLA_PREFIX_TUNING with key_dim and value_dim per head, the same tensor name and block layout.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>

#include "core/config.hpp"
#include "finetune/adapter.hpp"

namespace dsk::finetune {

struct PrefixSettings {
  int virtual_tokens = 20;      // P: PEFT's num_virtual_tokens
  bool projection = false;      // PEFT's prefix_projection: the reparameterisation MLP in training
  int encoder_hidden_size = 0;  // the MLP's hidden width; 0: token_dim
};

PrefixSettings prefix_settings_from(const Config& config);

// Widths of the prefix table of a model.
struct PrefixGeometry {
  bool mla = false;  // deepseek_v3: keys and values differ in width (dsk's MLA_PREFIX_TUNING layout)
  int layers = 0, heads = 0;  // K/V heads
  int key_dim = 0, value_dim = 0;  // per head
  int token_dim = 0;  // the embedding width of the reparameterisation (PEFT's token_dim for GQA)
  int key_row() const { return heads * key_dim; }
  int value_row() const { return heads * value_dim; }
  int layer_width() const { return key_row() + value_row(); }
  int width() const { return layers * layer_width(); }
};

PrefixGeometry prefix_geometry(const model::Architecture& arch);

// Offsets in the trainable buffers: the table itself (at 0), or with projection E (at 0), W1, b1,
// W2, b2.
struct PrefixLayout {
  size_t embedding = 0, w1 = 0, b1 = 0, w2 = 0, b2 = 0, total = 0;
};

class PrefixAdapter final : public Adapter, public model::AttentionPrefix {
 public:
  // UsageError for P < 1 or an encoder size < 1. Initialised as PEFT's PrefixEncoder is by torch:
  // embeddings normal(0, 1); Linears uniform(+-1/sqrt(in)), biases alike; from `seed`. Attaches
  // itself to `model` (set_attention_prefix) and detaches in the destructor.
  PrefixAdapter(model::Model& model, PrefixSettings settings, uint64_t seed);
  ~PrefixAdapter() override;
  PrefixAdapter(const PrefixAdapter&) = delete;
  PrefixAdapter& operator=(const PrefixAdapter&) = delete;

  const PrefixSettings& settings() const { return settings_; }
  const PrefixGeometry& geometry() const { return geometry_; }
  using Adapter::parameters;
  const AdapterParameters& parameters() const override { return parameters_; }
  // The table [P, width] as the adapter saves it (the MLP's output when projecting), host f32.
  std::vector<float> folded_table() const;

  void prepare() override;
  void finish_backward() override;
  void save(const std::filesystem::path& dir, const model::Model& model, const std::string& base_model) const override;
  std::string describe() const override;

  // model::LinearExtension: prefix tuning adds nothing beside the Linears.
  void plan(tensor::Ops&, int, bool) override {}
  bool extends(size_t) const override { return false; }
  void forward(tensor::Ops&, size_t, tensor::Buf, tensor::Buf, int) override;
  tensor::Buf backward(tensor::Ops&, size_t, tensor::Buf, tensor::Buf, tensor::Buf, int) override;

  // model::AttentionPrefix
  int length() const override { return settings_.virtual_tokens; }
  void plan(tensor::Ops& ops, int B, int T, bool training) override;
  std::pair<tensor::Buf, tensor::Buf> extend(tensor::Ops& ops, size_t layer, tensor::Buf k, tensor::Buf v, int B,
                                             int T) override;
  std::pair<tensor::Buf, tensor::Buf> gradients(tensor::Ops& ops, int B, int T) override;
  void backward(tensor::Ops& ops, size_t layer, tensor::Buf dk, tensor::Buf dv, int B, int T) override;
  void write_cache(tensor::Ops& ops, size_t layer, tensor::Buf k_cache, tensor::Buf v_cache, int B,
                   int max_length) override;

 private:
  void carve_fixed(tensor::Arena& arena);
  void carve_rows(tensor::Arena& arena, int rows, bool training);
  int encoder() const { return settings_.encoder_hidden_size > 0 ? settings_.encoder_hidden_size : geometry_.token_dim; }
  int layer_index(size_t o_weight) const { return layer_of_.at(o_weight); }
  // Layer l's P keys (values) at the start of each of B sequences of `out` [B, S, row].
  void copy_prefix(tensor::Ops& ops, tensor::Buf out, int B, int S, int layer, bool values) const;
  tensor::Buf w(size_t offset, int64_t n) const { return parameters_.working().slice(int64_t(offset), n); }
  tensor::Buf g(size_t offset, int64_t n) const { return parameters_.grads().slice(int64_t(offset), n); }

  model::Model& model_;
  PrefixSettings settings_;
  PrefixGeometry geometry_;
  std::unordered_map<size_t, int> layer_of_;  // o_proj weight offset -> layer
  PrefixLayout layout_;
  AdapterParameters parameters_;
  // Fixed buffers: the rows 0..P-1 (i32), and with projection the MLP's activations and the
  // table it makes; dtable [P, width] collects the layers' prefix gradients of a training pass.
  std::unique_ptr<tensor::Arena> fixed_;
  tensor::Buf rows_, embedded_, hidden_, activated_, table_, dtable_, dactivated_, dhidden_, dembedded_;
  // Per batch shape: the extended keys and values [B, P + T, row] and their gradients.
  std::unique_ptr<tensor::Arena> extended_arena_;
  int planned_rows_ = 0;
  bool planned_training_ = false;
  tensor::Buf k_all_, v_all_, dk_all_, dv_all_;
};

// Reads a prefix-tuning adapter (PEFT's or dsk's MLA layout) for `model` into a new adapter
// attached to it; DataError naming the file and key or tensor on anything that does not fit.
std::unique_ptr<PrefixAdapter> load_prefix(const std::filesystem::path& dir, model::Model& model);

// Whether `config_text` (an adapter_config.json) is a prefix-tuning adapter's.
bool is_prefix_config(const std::string& config_text);

}  // namespace dsk::finetune

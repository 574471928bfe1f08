// LoRA (Hu et al. 2021, an Adapter: adapter.hpp) beside the model engine's dense Linears, as PEFT computes it:
//   y = x W^T + b + scale * dropout(x) A^T B^T,   A [r, in], B [out, r],
//   scale = alpha / r (alpha / sqrt(r) with rsLoRA).
// The base weights stay frozen (the model is loaded with ModelOptions::frozen_base: no gradient
// and no optimizer state for them); the adapter has its own flat buffers: fp32 master weights
// and gradients, a working copy in the backend's activation dtype, all sites one after another
// (A then B of each, in the model's parameter order). It plugs into the layer code as a
// LinearExtension (model/layers.hpp), found by the base weight's offset, so the base code path
// is untouched when no adapter is attached.
//
// The dropout mask is counter-based (Ops::dropout_forward): a function of the seed given for
// the pass (set_dropout_seed) and the site, so backward and activation recomputation see the very
// same mask and a resumed run draws the masks it would have drawn.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "finetune/adapter.hpp"

namespace dsk::finetune {

struct LoraSettings {
  int rank = 8;
  float alpha = 8;
  float dropout = 0;
  bool rslora = false;
  // PEFT's target_modules: module names matched whole or as the last dotted parts
  // ("q_proj", "self_attn.o_proj"), or "all-linear" (every dense Linear but the LM head).
  std::vector<std::string> target_modules;
  // PEFT's target_modules given as one string: a regular expression the whole module name must match.
  std::optional<std::string> target_regex;

  float scale() const;
};

// One adapted Linear.
struct LoraSite {
  std::string module;  // HF module name: "model.layers.3.self_attn.q_proj"
  size_t base_weight;  // the base weight's offset in the model's parameter buffer
  int in = 0, out = 0;
  size_t a_offset = 0, b_offset = 0;  // in the adapter's buffers: A [rank, in], B [out, rank]
};

// The Linears of `model` that LoRA with these targets adapts, in parameter order. Routed experts
// and the MoE router are not dense Linears of the engine and are never picked. UsageError when
// nothing matches (naming the targets and some module names that exist).
std::vector<LoraSite> lora_sites(const model::Model& model, const LoraSettings& settings);

// The short names (last dotted part) of the modules that were adapted, sorted: what
// adapter_config.json's target_modules lists for "all-linear" or a pattern.
std::vector<std::string> adapted_module_names(const std::vector<LoraSite>& sites);

class LoraAdapter final : public Adapter {
 public:
  // Sites from lora_sites(); the weights initialized as PEFT does by default (A: Kaiming-uniform,
  // bound 1/sqrt(in), from `seed`; B: zero, so the adapted model starts as the base). Attaches
  // itself to `model` (set_linear_extension) and detaches in the destructor.
  LoraAdapter(model::Model& model, LoraSettings settings, uint64_t seed);
  ~LoraAdapter() override;
  LoraAdapter(const LoraAdapter&) = delete;
  LoraAdapter& operator=(const LoraAdapter&) = delete;

  const LoraSettings& settings() const { return settings_; }
  const std::vector<LoraSite>& sites() const { return sites_; }

  // The flat buffers (A then B of each site, in the sites' order).
  using Adapter::parameters;
  const AdapterParameters& parameters() const override { return parameters_; }
  std::vector<float> copy_parameters() const { return parameters_.copy(); }
  void set_parameters(std::span<const float> values) { parameters_.set(values); }
  std::vector<float> copy_gradients() const { return parameters_.copy_gradients(); }
  void zero_grad() { parameters_.zero_grad(); }

  void set_dropout_seed(uint64_t seed) override { dropout_seed_ = seed; }
  void save(const std::filesystem::path& dir, const model::Model& model, const std::string& base_model) const override;
  std::string describe() const override;

  // model::LinearExtension
  void plan(tensor::Ops& ops, int max_rows, bool training) override;
  bool extends(size_t weight_offset) const override;
  void forward(tensor::Ops& ops, size_t weight_offset, tensor::Buf out, tensor::Buf x, int n) override;
  tensor::Buf backward(tensor::Ops& ops, size_t weight_offset, tensor::Buf dx, tensor::Buf dout, tensor::Buf x,
                       int n) override;

 private:
  // Activations of one plan: per site what backward needs (training), and shared scratch.
  struct Plan {
    int rows = 0;
    std::unique_ptr<tensor::Arena> arena;
    std::vector<tensor::Buf> u;        // per site [rows, r]: scale * x A^T, or dropout(x) A^T
    std::vector<tensor::Buf> dropped;  // per site [rows, in]: scale * dropout(x) (training, dropout > 0)
    tensor::Buf du, dscaled, ddropped;  // backward scratch: [rows, r], [rows, r], [rows, max in]
  };
  void carve(tensor::Arena& arena, Plan& plan, int rows, bool training) const;
  tensor::Buf a_working(const LoraSite& s) const;
  tensor::Buf b_working(const LoraSite& s) const;
  uint64_t site_seed(size_t site) const;

  model::Model& model_;
  LoraSettings settings_;
  std::vector<LoraSite> sites_;
  std::unordered_map<size_t, size_t> site_of_;  // base weight offset -> site
  int max_in_ = 0;
  AdapterParameters parameters_;
  tensor::Buf working_;
  Plan training_, inference_;
  Plan* current_ = &inference_;
  bool training_pass_ = false;
  uint64_t dropout_seed_ = 0;
};

}  // namespace dsk::finetune

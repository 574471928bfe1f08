// Bottleneck adapters (Houlsby et al. 2019) on the output of a sublayer, before the residual add:
//   z' = z + up(silu(down(z))),   down: [m, C] + bias [m],  up: [C, m] + bias [C],
// where z is the output of attention (its o_proj) and/or of the dense MLP (its down_proj), C the
// hidden size, m the bottleneck size (or C / reduction_factor). up starts at zero, so the adapted
// model starts as the base (the identity). In DeepSeekMoE layers the MLP's output is the experts'
// sum, not one Linear: there only the attention placement applies. An Adapter (adapter.hpp) on the
// engine's LinearExtension, with its own format (dsk-formats(5), ADAPTERS):
//   adapter_config.json         peft_type BOTTLENECK, adapter_size, placement, non_linearity silu
//   adapter_model.safetensors   base_model.model.<module>.adapter_down.weight / .bias,
//                               base_model.model.<module>.adapter_up.weight / .bias (F32)
// SiLU is computed by the SwiGLU op with a second input of ones (silu(h) * 1).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/config.hpp"
#include "finetune/adapter.hpp"

namespace dsk::finetune {

struct BottleneckSettings {
  int size = 0;                                        // m; 0: hidden / reduction_factor
  int reduction_factor = 16;
  std::vector<std::string> placement = {"attention", "mlp"};
};

BottleneckSettings bottleneck_settings_from(const Config& config);

struct BottleneckSite {
  std::string module;  // "model.layers.3.self_attn.o_proj"
  size_t base_weight;  // the base Linear's weight offset
  size_t down = 0, down_bias = 0, up = 0, up_bias = 0;  // offsets in the adapter's buffers
};

class BottleneckAdapter final : public Adapter {
 public:
  // UsageError for an unknown placement or a size that is not in [1, hidden].
  BottleneckAdapter(model::Model& model, BottleneckSettings settings, uint64_t seed);
  ~BottleneckAdapter() override;
  BottleneckAdapter(const BottleneckAdapter&) = delete;
  BottleneckAdapter& operator=(const BottleneckAdapter&) = delete;

  int size() const { return m_; }
  const BottleneckSettings& settings() const { return settings_; }
  const std::vector<BottleneckSite>& sites() const { return sites_; }
  using Adapter::parameters;
  const AdapterParameters& parameters() const override { return parameters_; }
  void save(const std::filesystem::path& dir, const model::Model& model, const std::string& base_model) const override;
  std::string describe() const override;

  void plan(tensor::Ops& ops, int max_rows, bool training) override;
  bool extends(size_t weight_offset) const override { return site_of_.count(weight_offset) > 0; }
  void forward(tensor::Ops& ops, size_t weight_offset, tensor::Buf out, tensor::Buf x, int n) override;
  tensor::Buf backward(tensor::Ops& ops, size_t weight_offset, tensor::Buf dx, tensor::Buf dout, tensor::Buf x,
                       int n) override;

 private:
  struct Plan {
    int rows = 0;
    std::unique_ptr<tensor::Arena> arena;
    std::vector<tensor::Buf> z, h, a;  // per site (training) or one set (inference): [rows,C], [rows,m], [rows,m]
    tensor::Buf ones, dz, da, dh, dones;
  };
  void carve(tensor::Arena& arena, Plan& plan, int rows, bool training) const;
  tensor::Buf slice(tensor::Buf b, size_t offset, int64_t count) const { return b.slice(int64_t(offset), count); }

  model::Model& model_;
  BottleneckSettings settings_;
  int C_ = 0, m_ = 0;
  std::vector<BottleneckSite> sites_;
  std::unordered_map<size_t, size_t> site_of_;
  AdapterParameters parameters_;
  Plan training_, inference_;
  Plan* current_ = &inference_;
  bool training_pass_ = false;
};

// Reads a bottleneck adapter directory for `model` into a new adapter attached to it; DataError
// naming the file and key or tensor on anything that does not fit.
std::unique_ptr<BottleneckAdapter> load_bottleneck(const std::filesystem::path& dir, model::Model& model);

}  // namespace dsk::finetune

// What a fine-tuning method trains beside a frozen base (LoRA: lora.hpp; bottleneck adapters:
// bottleneck.hpp; prefix tuning: prefix.hpp, which is the model's AttentionPrefix instead and
// extends no Linear): a LinearExtension of the model (model/layers.hpp) with its own flat
// parameter buffers in the backend's memory, fp32 master weights and gradients and a working copy
// in the activation dtype (AdapterParameters), saved in its own directory format.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <utility>
#include <string>
#include <vector>

#include "model/layers.hpp"
#include "model/model.hpp"
#include "tensor/arena.hpp"

namespace dsk::finetune {

// The flat buffers of an adapter: master (f32), working (act; the master itself when act is f32),
// grads (f32), one allocation.
class AdapterParameters {
 public:
  AdapterParameters(tensor::Ops& ops, size_t count, const std::string& name);
  size_t count() const { return count_; }
  tensor::Buf master() const { return master_; }
  tensor::Buf working() const { return working_; }
  tensor::Buf grads() const { return grads_; }
  std::vector<float> copy() const;
  void set(std::span<const float> values);  // refreshes the working copy
  std::vector<float> copy_gradients() const;
  void zero_grad();

 private:
  tensor::Ops& ops_;
  size_t count_;
  tensor::Arena arena_;
  tensor::Buf master_, working_, grads_;
};

// The activations of an adapter for up to `rows` rows: `arena` is carved anew (carve runs twice,
// as arenas plan) only when more rows are asked for than it holds, so nothing is allocated while
// the batch shape stays. Returns whether it was.
bool plan_rows(tensor::Ops& ops, std::unique_ptr<tensor::Arena>& arena, int& planned_rows, int rows,
               const std::string& name, const std::function<void(tensor::Arena&)>& carve);

class Adapter : public model::LinearExtension {
 public:
  virtual const AdapterParameters& parameters() const = 0;
  AdapterParameters& parameters() { return const_cast<AdapterParameters&>(std::as_const(*this).parameters()); }
  size_t parameter_count() const { return parameters().count(); }
  // The seed of the dropout masks of the next training passes (methods without dropout ignore it).
  virtual void set_dropout_seed(uint64_t seed) { (void)seed; }
  // Before the passes that follow an update of the trainable set: a method whose weights are
  // derived from it (prefix tuning's reparameterisation) computes them. After a training pass:
  // their gradients flow back into the trainable set's. Others ignore both.
  virtual void prepare() {}
  virtual void finish_backward() {}
  // Writes the adapter's directory (adapter_config.json + adapter_model.safetensors) into `dir`.
  virtual void save(const std::filesystem::path& dir, const model::Model& model, const std::string& base_model) const = 0;
  virtual std::string describe() const = 0;  // "LoRA r=8 alpha=16 on 14 Linears"
};

}  // namespace dsk::finetune

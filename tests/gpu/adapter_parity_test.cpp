// Adapters on CUDA against the same on the CPU reference, on a frozen base: LoRA
// (lib/finetune/lora.hpp, all-linear, with and without dropout: the masks are the same bits on both
// backends), bottleneck adapters (lib/finetune/bottleneck.hpp, after attention and the MLP) and
// prefix tuning (lib/finetune/prefix.hpp, with and without the reparameterisation MLP), on a small
// llama and deepseek_v3 (MLA, MoE).
//   precision fp32 (TF32 off): logits (also through a KV cache) and the adapter's gradients <= 1e-4
//   of the largest value, the loss <= 1e-5 relative.
//   precision bf16: the loss within 1%, the adapter's gradients within 5e-2 (L2, relative).
// Also: the bf16 frozen base holds its weights in bf16 only (no fp32 master, no gradients).
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "relative_error.hpp"
#include "finetune/bottleneck.hpp"
#include "finetune/lora.hpp"
#include "finetune/prefix.hpp"
#include "model/hf_config.hpp"
#include "model/model.hpp"
#include "core/error.hpp"
#include "tensor/device.hpp"

using namespace dsk;
using namespace dsk::finetune;

using dsk::gpu_tests::max_relative_error;

namespace {

model::Architecture small_llama() {
  model::Architecture a;
  a.family = model::Family::llama;
  a.vocab = 256;
  a.hidden = 64;
  a.layers = 2;
  a.intermediate = 96;
  a.heads = 4;
  a.kv_heads = 2;
  a.head_dim = 16;
  a.rms_eps = 1e-5f;
  return a;
}

model::Architecture small_deepseek() {
  model::Architecture a;
  a.family = model::Family::deepseek_v3;
  a.vocab = 256;
  a.hidden = 64;
  a.layers = 2;
  a.intermediate = 96;
  a.heads = 4;
  a.q_lora_rank = 32;
  a.kv_lora_rank = 32;
  a.qk_nope_dim = 16;
  a.qk_rope_dim = 16;
  a.v_head_dim = 16;
  a.first_k_dense = 1;
  a.n_routed = 4;
  a.n_shared = 1;
  a.moe_intermediate = 32;
  a.top_k = 2;
  a.n_group = 1;
  a.topk_group = 1;
  return a;
}

double l2_relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); i++) {
    if (!std::isfinite(got[i])) return INFINITY;
    diff += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    norm += double(want[i]) * want[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-30));
}

using AdapterFactory = std::function<std::unique_ptr<Adapter>(model::Model&)>;

void compare(const model::Architecture& arch, const std::string& precision, const std::string& what,
             const AdapterFactory& make_adapter) {
  INFO("family " << int(arch.family) << ", precision " << precision << ", " << what);
  const int B = 2, T = 24;
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<int> token(0, arch.vocab - 1);
  std::vector<int32_t> tokens(B * T), targets(B * T);
  for (auto& t : tokens) t = token(rng);
  for (size_t i = 0; i < targets.size(); i++) targets[i] = i % 5 == 0 ? -100 : token(rng);

  model::Model cpu(arch, 7, 0.05f, nullptr, model::ModelOptions{true});
  model::Model gpu(arch, 7, 0.05f, tensor::make_ops("cuda", precision), model::ModelOptions{true});
  CHECK(gpu.gradient_buffer().empty());
  if (precision == "bf16" && arch.n_routed == 0) CHECK(gpu.master().empty());
  std::unique_ptr<Adapter> cpu_adapter = make_adapter(cpu), gpu_adapter = make_adapter(gpu);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> values(cpu_adapter->parameter_count());
  for (float& v : values) v = normal(rng);
  cpu_adapter->parameters().set(values);
  gpu_adapter->parameters().set(values);
  cpu_adapter->prepare();  // derived weights (prefix tuning's MLP) from the values just set
  gpu_adapter->prepare();
  const bool fp32 = precision == "fp32";

  const double logits_error = max_relative_error(gpu.logits(tokens.data(), B, T), cpu.logits(tokens.data(), B, T));
  if (fp32) CHECK(logits_error <= 1e-4);
  // Generation's path: a KV cache (holding prefix tuning's prefix from the start), the last logits.
  model::KvCache cpu_cache = cpu.new_kv_cache(B, T), gpu_cache = gpu.new_kv_cache(B, T);
  const double cached_error = max_relative_error(gpu.forward_cached(gpu_cache, tokens.data(), B, T),
                                                 cpu.forward_cached(cpu_cache, tokens.data(), B, T));
  INFO("cached logits error " << cached_error);
  if (fp32) CHECK(cached_error <= 1e-4);
  cpu_adapter->set_dropout_seed(11);
  gpu_adapter->set_dropout_seed(11);
  const float cpu_loss = cpu.forward_backward(tokens.data(), targets.data(), B, T);
  const float gpu_loss = gpu.forward_backward(tokens.data(), targets.data(), B, T);
  cpu_adapter->finish_backward();
  gpu_adapter->finish_backward();
  INFO("loss cpu " << cpu_loss << " gpu " << gpu_loss << ", logits error " << logits_error);
  CHECK(std::fabs(gpu_loss - cpu_loss) <= (fp32 ? 1e-5 : 1e-2) * std::fabs(cpu_loss));
  const std::vector<float> cpu_grads = cpu_adapter->parameters().copy_gradients();
  const std::vector<float> gpu_grads = gpu_adapter->parameters().copy_gradients();
  if (fp32)
    CHECK(max_relative_error(gpu_grads, cpu_grads) <= 1e-4);
  else
    CHECK(l2_relative_error(gpu_grads, cpu_grads) <= 5e-2);
}

AdapterFactory lora(float dropout) {
  return [dropout](model::Model& model) -> std::unique_ptr<Adapter> {
    LoraSettings settings;
    settings.rank = 8;
    settings.alpha = 16;
    settings.dropout = dropout;
    settings.target_modules = {"all-linear"};
    return std::make_unique<LoraAdapter>(model, settings, 1);
  };
}

AdapterFactory bottleneck() {
  return [](model::Model& model) -> std::unique_ptr<Adapter> {
    return std::make_unique<BottleneckAdapter>(model, BottleneckSettings{16, 16, {"attention", "mlp"}}, 1);
  };
}

AdapterFactory prefix(bool projection) {
  return [projection](model::Model& model) -> std::unique_ptr<Adapter> {
    return std::make_unique<PrefixAdapter>(model, PrefixSettings{5, projection, 32}, 1);
  };
}

}  // namespace

TEST_CASE("CUDA LoRA forward and backward match the CPU reference") {
  if (!tensor::cuda_available()) return;
  for (const std::string precision : {"fp32", "bf16"})
    for (const float dropout : {0.0f, 0.1f}) {
      compare(small_llama(), precision, str("LoRA dropout ", dropout), lora(dropout));
      compare(small_deepseek(), precision, str("LoRA dropout ", dropout), lora(dropout));
    }
}

TEST_CASE("CUDA bottleneck adapters match the CPU reference") {
  if (!tensor::cuda_available()) return;
  for (const std::string precision : {"fp32", "bf16"}) {
    compare(small_llama(), precision, "bottleneck", bottleneck());
    compare(small_deepseek(), precision, "bottleneck", bottleneck());
  }
}

TEST_CASE("CUDA prefix tuning matches the CPU reference") {
  if (!tensor::cuda_available()) return;
  for (const std::string precision : {"fp32", "bf16"})
    for (const bool projection : {false, true}) {
      compare(small_llama(), precision, str("prefix projection ", projection), prefix(projection));
      compare(small_deepseek(), precision, str("prefix projection ", projection), prefix(projection));
    }
}

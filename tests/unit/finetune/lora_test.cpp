// LoRA on the CPU reference: the adapted model against the merged one (forward), the adapter's
// gradients against central finite differences (with and without dropout), target matching and
// the frozen base's missing gradient buffer.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

#include "../model/tiny_models.hpp"
#include "core/error.hpp"
#include "finetune/lora.hpp"
#include "finetune/merge.hpp"

using namespace dsk;
using namespace dsk::finetune;
using namespace dsk::model::testing;

namespace {

using Batch = model::testing::TinyBatch;

model::Model frozen(const model::Architecture& arch) {
  return model::Model(arch, 7, 0.2f, nullptr, model::ModelOptions{true});
}

LoraSettings settings(std::vector<std::string> targets, float dropout = 0, bool rslora = false) {
  LoraSettings s;
  s.rank = 3;
  s.alpha = 5;
  s.dropout = dropout;
  s.rslora = rslora;
  s.target_modules = std::move(targets);
  return s;
}

std::vector<float> random_values(size_t n, uint64_t seed, float scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

float max_abs_difference(const std::vector<float>& a, const std::vector<float>& b) {
  float worst = 0;
  for (size_t i = 0; i < a.size(); i++) worst = std::max(worst, std::fabs(a[i] - b[i]));
  return worst;
}

// The adapted model's logits equal the base's with B = 0, and those of the model with the adapter
// folded in (W + scale B A) once A and B are random.
void check_adapted_equals_merged(const model::Architecture& arch, const LoraSettings& lora) {
  Batch batch;
  model::Model base = frozen(arch);
  const std::vector<float> plain = base.logits(batch.tokens.data(), batch.B, batch.T);
  LoraAdapter adapter(base, lora, 3);
  CHECK(max_abs_difference(base.logits(batch.tokens.data(), batch.B, batch.T), plain) == 0.0f);

  const std::vector<float> values = random_values(adapter.parameter_count(), 11, 0.3f);
  adapter.set_parameters(values);
  const std::vector<float> adapted = base.logits(batch.tokens.data(), batch.B, batch.T);
  CHECK(max_abs_difference(adapted, plain) > 1e-3f);

  model::Model merged(arch, 7, 0.2f);
  std::vector<float> weights = base.copy_parameters();
  fold_lora(weights, lora, adapter.sites(), values);
  merged.set_parameters(weights);
  CHECK(max_abs_difference(merged.logits(batch.tokens.data(), batch.B, batch.T), adapted) <= 1e-4f);
}

// d(loss)/d(adapter) against central differences of the training-mode loss (the same dropout
// masks for the same seed), eps 1e-2, |analytic - numeric| <= 2e-3 + 5e-2 |numeric|.
void check_adapter_gradients(const model::Architecture& arch, const LoraSettings& lora) {
  Batch batch;
  model::Model base = frozen(arch);
  LoraAdapter adapter(base, lora, 3);
  std::vector<float> values = random_values(adapter.parameter_count(), 5, 0.3f);
  adapter.set_parameters(values);
  adapter.set_dropout_seed(42);
  adapter.zero_grad();
  base.forward_backward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T);
  const std::vector<float> analytic = adapter.copy_gradients();
  auto training_loss = [&] {
    const float loss = base.forward_backward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T);
    return double(loss);
  };
  const float eps = 1e-2f;
  int checked = 0;
  for (const LoraSite& s : adapter.sites()) {
    for (size_t i : {s.a_offset, s.a_offset + size_t(lora.rank) * s.in - 1, s.b_offset, s.b_offset + 1}) {
      const float saved = values[i];
      values[i] = saved + eps;
      adapter.set_parameters(values);
      const double plus = training_loss();
      values[i] = saved - eps;
      adapter.set_parameters(values);
      const double minus = training_loss();
      values[i] = saved;
      adapter.set_parameters(values);
      const double numeric = (plus - minus) / (2 * eps);
      INFO(s.module << "[" << i << "] analytic " << analytic[i] << " numeric " << numeric);
      CHECK(std::fabs(analytic[i] - numeric) <= 2e-3 + 5e-2 * std::fabs(numeric));
      checked++;
    }
  }
  CHECK(checked >= 16);
}

}  // namespace

TEST_CASE("a frozen base has no gradient buffer and still passes gradients down") {
  model::Model base = frozen(tiny_llama());
  CHECK(base.gradient_buffer().empty());
  CHECK(base.frozen_base());
  Batch batch;
  CHECK(std::isfinite(base.forward_backward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T)));
}

TEST_CASE("LoRA forward equals the merged model (llama, qwen2, deepseek_v3 with and without q_lora)") {
  check_adapted_equals_merged(tiny_llama(), settings({"all-linear"}));
  check_adapted_equals_merged(tiny_qwen2(), settings({"q_proj", "v_proj", "down_proj"}, 0, true));
  check_adapted_equals_merged(tiny_deepseek(4), settings({"all-linear"}));
  check_adapted_equals_merged(tiny_deepseek(0), settings({"q_proj", "kv_b_proj", "o_proj", "up_proj"}));
}

TEST_CASE("LoRA gradients match finite differences, with and without dropout") {
  check_adapter_gradients(tiny_llama(), settings({"all-linear"}));
  check_adapter_gradients(tiny_llama(), settings({"q_proj", "o_proj", "gate_proj"}, 0.3f));
  check_adapter_gradients(tiny_deepseek(4), settings({"all-linear"}, 0.2f, true));
}

TEST_CASE("LoRA gradients are the same with activation recomputation") {
  Batch batch;
  std::vector<std::vector<float>> gradients;
  for (model::Recompute mode : {model::Recompute::none, model::Recompute::full}) {
    model::Model base = frozen(tiny_llama());
    base.set_recompute(mode);
    LoraAdapter adapter(base, settings({"all-linear"}, 0.25f), 3);
    adapter.set_parameters(random_values(adapter.parameter_count(), 5, 0.3f));
    adapter.set_dropout_seed(9);
    base.forward_backward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T);
    gradients.push_back(adapter.copy_gradients());
  }
  CHECK(gradients[0] == gradients[1]);
}

TEST_CASE("target modules follow PEFT's rules") {
  model::Model base = frozen(tiny_llama());  // 2 layers
  CHECK(lora_sites(base, settings({"q_proj", "v_proj"})).size() == 4);
  CHECK(lora_sites(base, settings({"self_attn.o_proj"})).size() == 2);
  CHECK(lora_sites(base, settings({"all-linear"})).size() == 14);
  LoraSettings regex = settings({});
  regex.target_regex = R"(model\.layers\.1\..*(q|k)_proj)";
  const auto sites = lora_sites(base, regex);
  REQUIRE(sites.size() == 2);
  CHECK(sites[0].module == "model.layers.1.self_attn.q_proj");
  CHECK(adapted_module_names(sites) == std::vector<std::string>{"k_proj", "q_proj"});
  CHECK_THROWS_AS(lora_sites(base, settings({"proj"})), UsageError);  // a suffix must be whole dotted parts
  CHECK_THROWS_AS(lora_sites(base, settings({"lm_head"})), UsageError);
  model::Model moe = frozen(tiny_deepseek(4));
  for (const LoraSite& s : lora_sites(moe, settings({"all-linear"}))) {
    CHECK(s.module.find(".mlp.experts.") == std::string::npos);
    CHECK(!s.module.ends_with(".mlp.gate"));
  }
  CHECK(settings({"q_proj"}).scale() == doctest::Approx(5.0 / 3));
  CHECK(settings({"q_proj"}, 0, true).scale() == doctest::Approx(5.0 / std::sqrt(3.0)));
}

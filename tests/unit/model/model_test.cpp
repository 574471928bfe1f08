// Whole-model checks that need no fixture: gradients against central finite differences, the
// += gradient convention, the KV-cache path against the full forward, MoE load and bias update.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "model/model.hpp"
#include "tiny_models.hpp"

using namespace dsk::model;
using namespace dsk::model::testing;

namespace {

using Batch = TinyBatch;

// Central differences on a few entries of every tensor; fp32 forward, so eps = 1e-2 and the
// tolerance |analytic - numeric| <= 2e-3 + 5e-2 * |numeric|.
void check_model_gradients(Model& model, float aux_alpha = 0) {
  Batch batch;
  model.set_sequence_aux_loss(aux_alpha);
  model.zero_grad();
  model.forward_backward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T);
  std::vector<float> analytic(model.gradients().begin(), model.gradients().end());
  auto params = model.parameters();
  const float eps = 1e-2f;
  int checked = 0;
  for (const ParamView& v : model.parameter_views()) {
    if (!v.trainable) continue;
    for (size_t i : {size_t(0), v.numel / 2, v.numel - 1}) {
      float& p = params[v.offset + i];
      float saved = p;
      p = saved + eps;
      double plus = model.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T);
      p = saved - eps;
      double minus = model.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T);
      p = saved;
      double numeric = (plus - minus) / (2 * eps);
      INFO(v.name << "[" << i << "] analytic " << analytic[v.offset + i] << " numeric " << numeric);
      CHECK(std::fabs(analytic[v.offset + i] - numeric) <= 2e-3 + 5e-2 * std::fabs(numeric));
      checked++;
    }
  }
  CHECK(checked > 20);
}

// Prefill the first 3 positions, then one token at a time: each step's logits must equal the
// full forward's at that position (max abs difference <= 1e-5 * max |logit| + 1e-6).
void check_kv_cache(Model& model) {
  Batch batch;
  int B = batch.B, T = batch.T, V = model.architecture().vocab;
  std::vector<float> full = model.logits(batch.tokens.data(), B, T);
  float scale = 0;
  for (float f : full) scale = std::max(scale, std::fabs(f));

  KvCache cache = model.new_kv_cache(B, T), cache2 = model.new_kv_cache(B, T);
  {
    std::vector<int32_t> first2;
    for (int b = 0; b < B; b++)
      for (int t = 0; t < 3; t++) first2.push_back(batch.tokens[b * T + t]);
    model.forward_cached(cache2, first2.data(), B, 3);
  }
  int prefill = 3;
  std::vector<int32_t> first;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < prefill; t++) first.push_back(batch.tokens[b * T + t]);
  auto compare = [&](std::span<const float> got, int t0, int steps) {
    for (int b = 0; b < B; b++)
      for (int t = 0; t < steps; t++)
        for (int v = 0; v < V; v++) {
          float want = full[((size_t)b * T + t0 + t) * V + v];
          float have = got[((size_t)b * steps + t) * V + v];
          REQUIRE(std::fabs(want - have) <= 1e-5f * scale + 1e-6f);
        }
  };
  compare(model.forward_cached(cache, first.data(), B, prefill, true), 0, prefill);
  for (int t = prefill; t < T; t++) {
    std::vector<int32_t> next = {batch.tokens[t], batch.tokens[T + t]};
    compare(model.forward_cached(cache, next.data(), B, 1, true), t, 1);
    // Without all_positions: the last position only, the same numbers.
    if (t == prefill) CHECK(model.forward_cached(cache2, next.data(), B, 1).size() == size_t(B) * V);
  }
  CHECK(cache.length == T);
  std::vector<int32_t> one = {0, 0};
  CHECK_THROWS_AS(model.forward_cached(cache, one.data(), B, 1), dsk::UsageError);
}

}  // namespace

TEST_CASE("llama (GQA, llama3 rope): gradients match finite differences") {
  Model model(tiny_llama(), 7, 0.2f);
  check_model_gradients(model);
}

TEST_CASE("qwen2 (tied embeddings, qkv bias, MQA): gradients match finite differences") {
  Model model(tiny_qwen2(), 8, 0.2f);
  for (auto& v : model.parameter_views())  // give the zero-initialised biases a value
    if (v.name.ends_with(".bias"))
      for (size_t i = 0; i < v.numel; i++) model.parameters()[v.offset + i] = 0.1f * (float)((i % 5) - 2.0);
  CHECK_THROWS_AS(model.view("lm_head.weight"), dsk::UsageError);
  check_model_gradients(model);
}

TEST_CASE("deepseek_v3 (MLA with q_lora, yarn, MoE, sequence aux loss): gradients match finite differences") {
  Model model(tiny_deepseek(6), 9, 0.2f);
  check_model_gradients(model, 0.1f);
}

TEST_CASE("deepseek_v3 without q_lora: gradients match finite differences") {
  Model model(tiny_deepseek(0), 10, 0.2f);
  check_model_gradients(model);
}

TEST_CASE("backward accumulates: two backward passes give twice the gradient") {
  Model model(tiny_llama(), 11, 0.2f);
  Batch batch;
  model.forward_backward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T);
  std::vector<float> once(model.gradients().begin(), model.gradients().end());
  model.forward_backward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T);
  for (size_t i = 0; i < once.size(); i += 97) CHECK(model.gradients()[i] == doctest::Approx(2 * once[i]));
  model.zero_grad();
  CHECK(model.gradients()[5] == 0.0f);
}

TEST_CASE("KV-cache generation matches the full forward") {
  SUBCASE("llama") {
    Model model(tiny_llama(), 12, 0.2f);
    check_kv_cache(model);
  }
  SUBCASE("qwen2") {
    Model model(tiny_qwen2(), 13, 0.2f);
    check_kv_cache(model);
  }
  SUBCASE("deepseek_v3") {
    Model model(tiny_deepseek(6), 14, 0.2f);
    check_kv_cache(model);
  }
}

TEST_CASE("expert load counts every routed token and the bias moves against the load") {
  Model model(tiny_deepseek(0), 15, 0.2f);
  Batch batch;
  model.logits(batch.tokens.data(), batch.B, batch.T);
  const ExpertLoad& load = model.expert_load();
  REQUIRE(load.layers == std::vector<int>{1});
  int64_t total = 0;
  for (int64_t c : load.counts[0]) total += c;
  CHECK(total == batch.B * batch.T * 2);
  std::vector<int64_t> counts = load.counts[0];
  model.update_expert_bias(0.01f);
  auto bias = model.parameter("model.layers.1.mlp.gate.e_score_correction_bias");
  double mean = total / 4.0;
  for (int e = 0; e < 4; e++) {
    float expected = counts[e] < mean ? 0.01f : counts[e] > mean ? -0.01f : 0.0f;
    CHECK(bias[e] == doctest::Approx(expected));
  }
  model.reset_expert_load();
  CHECK(model.expert_load().counts[0][0] == 0);
}

TEST_CASE("bad inputs are usage errors") {
  Model model(tiny_llama(), 16, 0.2f);
  std::vector<int32_t> tokens = {1, 99};
  CHECK_THROWS_AS(model.logits(tokens.data(), 1, 2), dsk::UsageError);
  CHECK_THROWS_AS(model.backward_from_hidden(), dsk::UsageError);
  Architecture bad = tiny_llama();
  bad.kv_heads = 3;
  CHECK_THROWS_AS(Model(bad, 1), dsk::UsageError);
}

TEST_CASE("recompute (attention, full) gives the very gradients of keeping every activation") {
  for (const Architecture& arch : {tiny_llama(), tiny_deepseek(6)}) {
    Batch batch;
    std::vector<std::vector<float>> grads;
    std::vector<float> losses;
    for (Recompute mode : {Recompute::none, Recompute::attention, Recompute::full}) {
      Model model(arch, 21, 0.2f);
      model.set_sequence_aux_loss(0.1f);
      model.set_recompute(mode);
      losses.push_back(model.forward_backward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T));
      grads.emplace_back(model.gradients().begin(), model.gradients().end());
      if (arch.mla()) {
        int64_t routed = 0;
        for (int64_t c : model.expert_load().counts[0]) routed += c;
        CHECK(routed == batch.B * batch.T * arch.top_k);  // replayed layers route nothing again
      }
    }
    CHECK(losses[1] == losses[0]);
    CHECK(losses[2] == losses[0]);
    CHECK(grads[1] == grads[0]);
    CHECK(grads[2] == grads[0]);
  }
  CHECK(parse_recompute("full") == Recompute::full);
  CHECK_THROWS_AS(parse_recompute("some"), dsk::UsageError);
}

TEST_CASE("backward stages tile the gradients and are final when the hook sees them") {
  for (const Architecture& arch : {tiny_llama(), tiny_qwen2(), tiny_deepseek(6)}) {
    CAPTURE(int(arch.family));
    Model model(arch, 23, 0.2f);
    const std::vector<Model::GradientStage> stages = model.gradient_stages();
    REQUIRE(stages.size() == size_t(arch.layers) + 2);
    CHECK(stages.front().name == "head");
    CHECK(stages[1].name == "model.layers." + std::to_string(arch.layers - 1));
    CHECK(stages.back().name == "embedding");
    // Sorted by offset they cover [0, parameter_count()) without gap or overlap.
    std::vector<Model::GradientStage> by_offset = stages;
    std::sort(by_offset.begin(), by_offset.end(), [](auto& a, auto& b) { return a.offset < b.offset; });
    size_t next = 0;
    for (const auto& stage : by_offset) {
      CHECK(stage.offset == next);
      CHECK(stage.numel > 0);
      next = stage.offset + stage.numel;
    }
    CHECK(next == model.parameter_count());

    // What each stage holds when the hook is called is what it holds at the end of backward.
    Batch batch;
    std::vector<int> order;
    std::vector<std::vector<float>> seen(stages.size());
    model.set_backward_hook([&](int stage) {
      order.push_back(stage);
      auto grads = model.gradients().subspan(stages[size_t(stage)].offset, stages[size_t(stage)].numel);
      seen[size_t(stage)].assign(grads.begin(), grads.end());
    });
    const float loss = model.forward_backward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T);
    for (size_t s = 0; s < stages.size(); s++) {
      CHECK(order.at(s) == int(s));
      auto grads = model.gradients().subspan(stages[s].offset, stages[s].numel);
      CHECK(seen[s] == std::vector<float>(grads.begin(), grads.end()));
    }
    // The hook observes and changes nothing: the same loss and gradients without it.
    Model plain(arch, 23, 0.2f);
    CHECK(plain.forward_backward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T) == loss);
    CHECK(std::vector<float>(plain.gradients().begin(), plain.gradients().end()) ==
          std::vector<float>(model.gradients().begin(), model.gradients().end()));
    model.set_backward_hook({});
    order.clear();
    model.forward_backward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T);
    CHECK(order.empty());
  }
}

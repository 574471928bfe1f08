// Prefix tuning on the CPU reference. The defining check: prefixes set to the keys and values the
// base computes for a context c (its KV cache after c) make the adapted model on x give the base's
// logits on c + x at x's positions, for GQA (llama, qwen2) and MLA (deepseek_v3), with and without
// a KV cache: HF's past_key_values semantics (no RoPE on the prefix, x at positions P..). Then
// gradients of the table and of every part of the reparameterisation MLP against central finite
// differences, recomputation alike, folding at save giving the same logits, and bad files.
// The PEFT case exports dsk-saved prefix adapters with their logits to
// DSK_BUILD_DIR/peft-export/prefix-<model>/, which tests/fixtures/make_peft_fixtures.py --check
// loads with PeftModel.from_pretrained on the GPU machine (scripts/device/finetune-gpu.sh).
#include <doctest/doctest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

#include "../io/scratch_dir.hpp"
#include "../model/f32_safetensors.hpp"
#include "../model/tiny_models.hpp"
#include "adapter_testing.hpp"
#include "core/error.hpp"
#include "core/fs.hpp"
#include "finetune/adapter_objective.hpp"
#include "finetune/merge.hpp"
#include "finetune/prefix.hpp"

using namespace dsk;
using namespace dsk::finetune;
using Batch = model::testing::TinyBatch;

namespace {

using dsk::finetune::testing::frozen;
using dsk::finetune::testing::random_values;

// The table [P, L * (k_row + v_row)] of the keys and values `base` caches for `context`.
std::vector<float> table_of_context(model::Model& base, const std::vector<int32_t>& context) {
  const PrefixGeometry g = prefix_geometry(base.architecture());
  const int P = int(context.size());
  model::KvCache cache = base.new_kv_cache(1, P);
  base.forward_cached(cache, context.data(), 1, P);
  std::vector<float> table(size_t(P) * g.width());
  for (int l = 0; l < g.layers; l++)
    for (int p = 0; p < P; p++) {
      float* row = table.data() + size_t(p) * g.width() + size_t(l) * g.layer_width();
      std::copy_n(cache.k[l].as<float>() + size_t(p) * g.key_row(), g.key_row(), row);
      std::copy_n(cache.v[l].as<float>() + size_t(p) * g.value_row(), g.value_row(), row + g.key_row());
    }
  return table;
}

void check_context_equivalence(const model::Architecture& arch) {
  model::Model base = frozen(arch);
  const std::vector<int32_t> context = {4, 17, 8};
  const std::vector<int32_t> x = {1, 5, 9, 2, 7};
  const int32_t next = 3;
  const int P = int(context.size()), T = int(x.size()), V = arch.vocab;
  std::vector<int32_t> whole = context;
  whole.insert(whole.end(), x.begin(), x.end());
  whole.push_back(next);
  const std::vector<float> expected = base.logits(whole.data(), 1, P + T + 1);  // the base alone
  auto expected_at = [&](int position, int v) { return expected[size_t(position) * V + v]; };
  const std::vector<float> table = table_of_context(base, context);

  PrefixAdapter adapter(base, PrefixSettings{P, false, 0}, 1);
  adapter.parameters().set(table);
  const std::vector<float> got = base.logits(x.data(), 1, T);
  REQUIRE(got.size() == size_t(T) * V);
  for (int t = 0; t < T; t++)
    for (int v = 0; v < V; v++) {
      INFO("position " << t << " logit " << v);
      REQUIRE(got[size_t(t) * V + v] == doctest::Approx(expected_at(P + t, v)).epsilon(1e-4).scale(1.0));
    }
  // Generation: the cache starts with the prefix (P positions); then x, then one more token.
  model::KvCache cache = base.new_kv_cache(1, T + 1);
  CHECK(cache.length == P);
  const std::vector<float> last = base.forward_cached(cache, x.data(), 1, T);
  const std::vector<float> after = base.forward_cached(cache, &next, 1, 1);
  for (int v = 0; v < V; v++) {
    CHECK(last[v] == doctest::Approx(expected_at(P + T - 1, v)).epsilon(1e-4).scale(1.0));
    CHECK(after[v] == doctest::Approx(expected_at(P + T, v)).epsilon(1e-4).scale(1.0));
  }
}

// Central differences of the loss against the adapter's analytic gradient at a few entries of each
// of `parts` (offset, count) of the trainable set.
void check_gradients(model::Model& base, PrefixAdapter& adapter, const std::vector<std::pair<size_t, size_t>>& parts) {
  Batch batch;
  std::vector<float> values = random_values(adapter.parameter_count(), 5, 0.5f);
  adapter.parameters().set(values);
  adapter.parameters().zero_grad();
  adapter.prepare();
  base.forward_backward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T);
  adapter.finish_backward();
  const std::vector<float> analytic = adapter.parameters().copy_gradients();
  auto loss_at = [&](size_t i, float value) {
    const float saved = values[i];
    values[i] = value;
    adapter.parameters().set(values);
    adapter.prepare();
    const double loss = base.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T);
    values[i] = saved;
    return loss;
  };
  const float eps = 1e-2f;
  int nonzero = 0;
  for (auto [offset, count] : parts)
    for (size_t i : {offset, offset + count / 3, offset + count / 2 + 1, offset + count - 1}) {
      const double numeric = (loss_at(i, values[i] + eps) - loss_at(i, values[i] - eps)) / (2 * eps);
      INFO("entry " << i << " analytic " << analytic[i] << " numeric " << numeric);
      CHECK(std::fabs(analytic[i] - numeric) <= 2e-3 + 5e-2 * std::fabs(numeric));
      nonzero += std::fabs(numeric) > 1e-4;
    }
  adapter.parameters().set(values);
  CHECK(nonzero >= int(parts.size()) * 2);
}

}  // namespace

TEST_CASE("prefix attention is attention over a cached context's keys and values (llama, qwen2, deepseek_v3)") {
  check_context_equivalence(model::testing::tiny_llama());
  check_context_equivalence(model::testing::tiny_qwen2());
  check_context_equivalence(model::testing::tiny_deepseek(0));
  check_context_equivalence(model::testing::tiny_deepseek(4));
}

TEST_CASE("prefix sizes: PEFT's prompt_embeddings for GQA, the expanded MLA layout for deepseek_v3") {
  model::Model llama = frozen(model::testing::tiny_llama());
  PrefixAdapter gqa(llama, PrefixSettings{3, false, 0}, 1);
  CHECK(gqa.geometry().token_dim == 2 * 4);  // kv_heads * head_dim, as PEFT sets it for GQA
  CHECK(gqa.parameter_count() == size_t(3) * 2 * 2 * 8);  // P x num_layers * 2 * token_dim
  model::Model deepseek = frozen(model::testing::tiny_deepseek(4));
  PrefixAdapter mla(deepseek, PrefixSettings{3, true, 5}, 1);
  CHECK(mla.geometry().width() == 2 * 2 * (8 + 4));
  CHECK(mla.parameter_count() == size_t(3 * 16 + 5 * 16 + 5 + 48 * 5 + 48));
  CHECK_THROWS_AS(PrefixAdapter(llama, PrefixSettings{0, false, 0}, 1), UsageError);
}

TEST_CASE("prefix gradients match finite differences, with and without the reparameterisation") {
  {
    model::Model base = frozen(model::testing::tiny_llama());
    PrefixAdapter adapter(base, PrefixSettings{3, false, 0}, 1);
    const size_t W = size_t(adapter.geometry().width());
    check_gradients(base, adapter, {{0, W}, {W, W}, {2 * W, W}});
  }
  for (const model::Architecture& arch : {model::testing::tiny_qwen2(), model::testing::tiny_deepseek(4)}) {
    model::Model base = frozen(arch);
    PrefixAdapter adapter(base, PrefixSettings{2, true, 6}, 1);
    const PrefixGeometry& g = adapter.geometry();
    const size_t P = 2, D = size_t(g.token_dim), E = 6, W = size_t(g.width());
    const size_t w1 = P * D, b1 = w1 + E * D, w2 = b1 + E, b2 = w2 + W * E;
    check_gradients(base, adapter, {{0, P * D}, {w1, E * D}, {b1, E}, {w2, W * E}, {b2, W}});
  }
}

TEST_CASE("prefix gradients are the same with recomputation and add up over micro-batches") {
  Batch batch;
  std::vector<std::vector<float>> gradients;
  for (model::Recompute mode : {model::Recompute::none, model::Recompute::attention, model::Recompute::full}) {
    model::Model base = frozen(model::testing::tiny_deepseek(4));
    base.set_recompute(mode);
    PrefixAdapter adapter(base, PrefixSettings{3, true, 4}, 3);
    for (int pass = 0; pass < 2; pass++) {
      adapter.prepare();
      base.forward_backward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T);
      adapter.finish_backward();
      if (pass == 0) gradients.push_back(adapter.parameters().copy_gradients());
    }
    const std::vector<float> twice = adapter.parameters().copy_gradients();
    for (size_t i = 0; i < twice.size(); i += 7) CHECK(twice[i] == doctest::Approx(2 * gradients.back()[i]));
  }
  CHECK(gradients[0] == gradients[1]);
  CHECK(gradients[0] == gradients[2]);
}

TEST_CASE("a reparameterised prefix folds at save: the same logits from the saved table, PEFT's config") {
  Batch batch;
  model::Model base = frozen(model::testing::tiny_llama());
  const auto dir = scratch_dir("prefix") / "adapter";
  std::vector<float> logits;
  {
    PrefixAdapter adapter(base, PrefixSettings{4, true, 8}, 1);
    adapter.parameters().set(random_values(adapter.parameter_count(), 9, 0.5f));
    adapter.prepare();
    logits = base.logits(batch.tokens.data(), batch.B, batch.T);
    adapter.save(dir, base, "base-dir");
  }
  const nlohmann::json config = nlohmann::json::parse(read_file(dir / "adapter_config.json"));
  CHECK(config["peft_type"] == "PREFIX_TUNING");
  CHECK(config["prefix_projection"] == false);
  CHECK(config["num_virtual_tokens"] == 4);
  CHECK(config["token_dim"] == 8);
  CHECK(config["num_layers"] == 2);
  CHECK(config["num_attention_heads"] == 2);
  CHECK(config["num_transformer_submodules"] == 1);
  {
    std::unique_ptr<Adapter> loaded = adapter_from_directory(dir, base);
    CHECK(loaded->parameter_count() == size_t(4) * 2 * 2 * 8);
    CHECK(loaded->describe().find("4 virtual tokens") != std::string::npos);
    CHECK(base.logits(batch.tokens.data(), batch.B, batch.T) == logits);
  }
  CHECK(base.logits(batch.tokens.data(), batch.B, batch.T) != logits);  // detached with the adapter

  model::Model qwen = frozen(model::testing::tiny_qwen2());  // one K/V head: token_dim 4, not 8
  CHECK_THROWS_WITH_AS(adapter_from_directory(dir, qwen), doctest::Contains("\"num_attention_heads\" is 2"), DataError);
  model::Model deepseek = frozen(model::testing::tiny_deepseek(4));
  CHECK_THROWS_WITH_AS(adapter_from_directory(dir, deepseek), doctest::Contains("for llama/qwen2 models"), DataError);
  CHECK_THROWS_WITH_AS(merge_adapter("unused-base", dir, dir.parent_path() / "merged", "F32"),
                       doctest::Contains("cannot be merged"), UsageError);
  write_file_atomic(dir / "adapter_config.json",
                    R"({"peft_type": "PREFIX_TUNING", "num_virtual_tokens": 5, "token_dim": 8, "num_layers": 2,
                        "num_attention_heads": 2})");
  CHECK_THROWS_WITH_AS(adapter_from_directory(dir, base), doctest::Contains("has shape [4,32], expected [5,32]"),
                       DataError);
  write_file_atomic(dir / "adapter_config.json", R"({"peft_type": "PREFIX_TUNING", "num_layers": 2})");
  CHECK_THROWS_AS(adapter_from_directory(dir, base), DataError);
}

TEST_CASE("an MLA prefix saves in dsk's layout and reads back") {
  Batch batch;
  model::Model base = frozen(model::testing::tiny_deepseek(0));
  const auto dir = scratch_dir("prefix-mla") / "adapter";
  std::vector<float> logits;
  {
    PrefixAdapter adapter(base, PrefixSettings{2, false, 0}, 1);
    adapter.save(dir, base, "base-dir");
    logits = base.logits(batch.tokens.data(), batch.B, batch.T);
  }
  const nlohmann::json config = nlohmann::json::parse(read_file(dir / "adapter_config.json"));
  CHECK(config["peft_type"] == "MLA_PREFIX_TUNING");
  CHECK(config["key_dim"] == 8);
  CHECK(config["value_dim"] == 4);
  std::unique_ptr<Adapter> loaded = adapter_from_directory(dir, base);
  CHECK(base.logits(batch.tokens.data(), batch.B, batch.T) == logits);
}

TEST_CASE("a PEFT adapter saved by dsk: prefix tuning, folded, exported for PEFT (llama, qwen2)") {
  namespace fs = std::filesystem;
  using nlohmann::json;
  const fs::path models = fs::path(DSK_SOURCE_DIR) / "tests/fixtures/models";
  for (const std::string model_case : {"llama", "qwen2"}) {
    CAPTURE(model_case);
    const fs::path checkpoint = models / model_case / "checkpoint";
    model::Model base = model::Model::load_hf_checkpoint(checkpoint, nullptr, model::ModelOptions{true});
    const json tokens_json = json::parse(read_file(models / model_case / "fixture.json"))["tokens"];
    const int B = int(tokens_json.size()), T = int(tokens_json[0].size());
    std::vector<int32_t> tokens;
    for (auto& row : tokens_json)
      for (auto& id : row) tokens.push_back(id.get<int32_t>());
    const fs::path dir = scratch_dir("prefix-peft-" + model_case) / "adapter";
    std::vector<float> logits;
    {
      PrefixAdapter adapter(base, PrefixSettings{3, true, 16}, 11);  // PEFT's init, through the MLP
      adapter.prepare();
      logits = base.logits(tokens.data(), B, T);
      adapter.save(dir, base, checkpoint.string());
    }
    {
      std::unique_ptr<Adapter> loaded = adapter_from_directory(dir, base);
      CHECK(base.logits(tokens.data(), B, T) == logits);
    }
    const fs::path out = fs::path(DSK_BUILD_DIR) / "peft-export" / ("prefix-" + model_case);
    fs::remove_all(out);
    fs::create_directories(out);
    fs::copy(dir, out / "adapter");
    model::testing::write_f32_safetensors(out / "logits.safetensors",
                                          {{"logits", {{B, T, int64_t(logits.size()) / (B * T)}, logits}}});
    write_file_atomic(out / "export.json", json{{"base", checkpoint.string()}, {"tokens", tokens_json}}.dump(2));
  }
}

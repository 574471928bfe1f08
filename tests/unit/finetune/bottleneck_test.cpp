// Bottleneck adapters on the CPU reference: the identity at initialization, gradients of every
// part against central finite differences (llama; deepseek_v3, whose MoE layers get the attention
// placement only), recomputation alike, and the saved directory read back.
#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "../io/scratch_dir.hpp"
#include "../model/tiny_models.hpp"
#include "adapter_testing.hpp"
#include "core/error.hpp"
#include "core/fs.hpp"
#include "finetune/adapter_objective.hpp"
#include "finetune/bottleneck.hpp"

using namespace dsk;
using namespace dsk::finetune;
using Batch = model::testing::TinyBatch;

namespace {

using dsk::finetune::testing::frozen;
using dsk::finetune::testing::random_values;

void check_gradients(const model::Architecture& arch, BottleneckSettings settings) {
  Batch batch;
  model::Model base = frozen(arch);
  BottleneckAdapter adapter(base, settings, 3);
  std::vector<float> values = random_values(adapter.parameter_count(), 5);
  adapter.parameters().set(values);
  base.forward_backward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T);
  const std::vector<float> analytic = adapter.parameters().copy_gradients();
  const float eps = 1e-2f;
  int checked = 0;
  const size_t C = size_t(arch.hidden), m = size_t(adapter.size());
  for (const BottleneckSite& s : adapter.sites()) {
    for (size_t i : {s.down, s.down + m * C - 1, s.down_bias, s.up, s.up + 1, s.up_bias + C - 1}) {
      const float saved = values[i];
      values[i] = saved + eps;
      adapter.parameters().set(values);
      const double plus = base.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T);
      values[i] = saved - eps;
      adapter.parameters().set(values);
      const double minus = base.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T);
      values[i] = saved;
      adapter.parameters().set(values);
      const double numeric = (plus - minus) / (2 * eps);
      INFO(s.module << "[" << i << "] analytic " << analytic[i] << " numeric " << numeric);
      CHECK(std::fabs(analytic[i] - numeric) <= 2e-3 + 5e-2 * std::fabs(numeric));
      checked++;
    }
  }
  CHECK(checked >= 12);
}

}  // namespace

TEST_CASE("bottleneck adapters start as the identity") {
  Batch batch;
  model::Model base = frozen(model::testing::tiny_llama());
  const std::vector<float> plain = base.logits(batch.tokens.data(), batch.B, batch.T);
  BottleneckAdapter adapter(base, BottleneckSettings{4, 16, {"attention", "mlp"}}, 1);
  CHECK(adapter.sites().size() == 4);
  CHECK(adapter.parameter_count() == 4 * (2 * 4 * 16 + 4 + 16));
  CHECK(base.logits(batch.tokens.data(), batch.B, batch.T) == plain);
  adapter.parameters().set(random_values(adapter.parameter_count(), 2));
  CHECK(base.logits(batch.tokens.data(), batch.B, batch.T) != plain);
}

TEST_CASE("bottleneck adapter gradients match finite differences") {
  check_gradients(model::testing::tiny_llama(), BottleneckSettings{4, 16, {"attention", "mlp"}});
  check_gradients(model::testing::tiny_deepseek(4), BottleneckSettings{0, 4, {"attention", "mlp"}});
  model::Model moe = frozen(model::testing::tiny_deepseek(4));
  BottleneckAdapter adapter(moe, BottleneckSettings{4, 16, {"mlp"}}, 1);
  CHECK(adapter.sites().size() == 1);  // the dense first layer; the MoE layer's output is no one Linear
}

TEST_CASE("bottleneck gradients are the same with recomputation") {
  Batch batch;
  std::vector<std::vector<float>> gradients;
  for (model::Recompute mode : {model::Recompute::none, model::Recompute::full}) {
    model::Model base = frozen(model::testing::tiny_llama());
    base.set_recompute(mode);
    BottleneckAdapter adapter(base, BottleneckSettings{4, 16, {"attention", "mlp"}}, 3);
    adapter.parameters().set(random_values(adapter.parameter_count(), 5));
    base.forward_backward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T);
    gradients.push_back(adapter.parameters().copy_gradients());
  }
  CHECK(gradients[0] == gradients[1]);
}

TEST_CASE("a bottleneck adapter saved and read back; bad settings and files") {
  Batch batch;
  model::Model base = frozen(model::testing::tiny_llama());
  const auto dir = scratch_dir("bottleneck") / "adapter";
  std::vector<float> logits;
  {
    BottleneckAdapter adapter(base, BottleneckSettings{4, 16, {"attention"}}, 1);
    adapter.parameters().set(random_values(adapter.parameter_count(), 9));
    adapter.save(dir, base, "base-dir");
    logits = base.logits(batch.tokens.data(), batch.B, batch.T);
  }
  {
    std::unique_ptr<Adapter> loaded = adapter_from_directory(dir, base);
    CHECK(loaded->describe().find("size 4 after attention") != std::string::npos);
    CHECK(base.logits(batch.tokens.data(), batch.B, batch.T) == logits);
  }
  CHECK_THROWS_AS(BottleneckAdapter(base, BottleneckSettings{17, 16, {"mlp"}}, 1), UsageError);
  CHECK_THROWS_AS(BottleneckAdapter(base, BottleneckSettings{4, 16, {"ffn"}}, 1), UsageError);
  write_file_atomic(dir / "adapter_config.json",
                    R"({"peft_type": "BOTTLENECK", "adapter_size": 4, "placement": ["attention", "mlp"]})");
  CHECK_THROWS_WITH_AS(adapter_from_directory(dir, base), doctest::Contains("missing tensor"), DataError);
  write_file_atomic(dir / "adapter_config.json", R"({"peft_type": "BOTTLENECK", "placement": ["attention"]})");
  CHECK_THROWS_AS(adapter_from_directory(dir, base), DataError);
}
